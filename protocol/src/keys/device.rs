//! Device keys: an X25519 identity key and an Ed25519 signing key (SPEC.md §3.1).

use core::fmt;

use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::account::verify_ed25519;
use super::fmt_key_prefix;
use crate::dh::{NonContributoryKey, dh, public_of};

/// A device identifier: 16 random bytes chosen by the device and certified by its account key.
/// The relay addresses mailboxes by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// A fresh random device id.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl fmt::Display for DeviceId {
    /// Lower-case hex, 32 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A device's X25519 identity public key (`IK` in SPEC.md): used in key agreement and as the
/// recipient key of sealed envelopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentityPublicKey([u8; 32]);

impl IdentityPublicKey {
    /// Wraps 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_key_prefix(f, "IdentityPublicKey", &self.0)
    }
}

/// A device's Ed25519 signing public key: signs prekeys and relay authentication.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceSigningPublicKey([u8; 32]);

impl DeviceSigningPublicKey {
    /// Wraps 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verifies an Ed25519 signature by this key with `verify_strict`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        verify_ed25519(&self.0, message, signature)
    }
}

impl fmt::Debug for DeviceSigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_key_prefix(f, "DeviceSigningPublicKey", &self.0)
    }
}

/// A device's long-term secret keys. Zeroized on drop; `Debug` shows only public keys.
pub struct DeviceKeyPair {
    identity: StaticSecret,
    /// `public_of(identity)`, computed once in `DeviceKeyPair::new` (the only constructor of
    /// this struct; `identity` is never reassigned), so it cannot disagree with the secret.
    identity_public: IdentityPublicKey,
    signing: SigningKey,
}

impl DeviceKeyPair {
    /// Generates new device keys.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let identity = StaticSecret::random_from_rng(rng);
        Self::new(identity, SigningKey::generate(rng))
    }

    /// Pairs the secrets with the identity public key, computed here once.
    fn new(identity: StaticSecret, signing: SigningKey) -> Self {
        Self {
            identity_public: IdentityPublicKey(public_of(&identity)),
            identity,
            signing,
        }
    }

    /// Restores device keys from their 64-byte secret form (identity secret, then signing seed).
    pub fn from_secret_bytes(secret: &[u8; 64]) -> Self {
        let mut identity = Zeroizing::new([0u8; 32]);
        let mut signing = Zeroizing::new([0u8; 32]);
        identity.copy_from_slice(&secret[..32]);
        signing.copy_from_slice(&secret[32..]);
        Self::new(
            StaticSecret::from(*identity),
            SigningKey::from_bytes(&signing),
        )
    }

    /// The 64-byte secret form, for encrypted local storage only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.identity.as_bytes());
        out[32..].copy_from_slice(self.signing.as_bytes());
        out
    }

    /// The X25519 identity public key (cached: no computation).
    pub fn identity_public(&self) -> IdentityPublicKey {
        self.identity_public
    }

    /// The Ed25519 signing public key (cached by [`SigningKey`]: no computation).
    pub fn signing_public(&self) -> DeviceSigningPublicKey {
        DeviceSigningPublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message` with the device signing key. Callers in this crate always prefix the
    /// message with a domain-separation label.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// X25519 of the identity secret with `public`.
    pub(crate) fn identity_dh(
        &self,
        public: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, NonContributoryKey> {
        dh(&self.identity, public)
    }
}

impl fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeyPair")
            .field("identity", &self.identity_public())
            .field("signing", &self.signing_public())
            .finish_non_exhaustive()
    }
}
