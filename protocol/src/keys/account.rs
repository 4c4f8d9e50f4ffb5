//! The account key: Ed25519, long-term, one per person (SPEC.md §3.1).

use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{DeviceCertificate, DeviceId, DeviceKeyPair, fmt_key_prefix};

/// An account's Ed25519 signing key. It certifies the account's devices and never leaves the
/// device that created it unless the user exports it. Zeroized on drop.
pub struct AccountKeyPair {
    signing: SigningKey,
}

impl AccountKeyPair {
    /// Generates a new account key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// Restores an account key from its 32-byte secret seed.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret seed, for encrypted local storage only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public account key.
    pub fn public_key(&self) -> AccountPublicKey {
        AccountPublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Certifies `device` as device `device_id` of this account, created at `created_at`
    /// (seconds since the Unix epoch).
    pub fn certify_device(
        &self,
        device_id: DeviceId,
        device: &DeviceKeyPair,
        created_at: u64,
    ) -> DeviceCertificate {
        DeviceCertificate::sign(self, device_id, device, created_at)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for AccountKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKeyPair")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// A public account key (Ed25519). Safety numbers are computed over it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountPublicKey([u8; 32]);

impl AccountPublicKey {
    /// Wraps 32 bytes. Whether they are a valid Ed25519 point is checked when a signature is
    /// verified.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verifies `signature` over `message` with `verify_strict` (rejects small-order keys and
    /// non-canonical signatures).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        verify_ed25519(&self.0, message, signature)
    }
}

impl fmt::Debug for AccountPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_key_prefix(f, "AccountPublicKey", &self.0)
    }
}

/// Strict Ed25519 verification shared by account and device keys.
pub(crate) fn verify_ed25519(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    if key.is_weak() {
        return false;
    }
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}
