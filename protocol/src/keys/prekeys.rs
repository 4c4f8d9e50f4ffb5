//! Prekeys: signed X25519, one-time X25519 and ML-KEM-768 (SPEC.md §3.5).

use core::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::{DeviceKeyPair, DeviceSigningPublicKey, fmt_key_prefix};
use crate::consts::labels;
use crate::dh::public_of;
use crate::kem::{KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN, Kem, MlKem768Kem};

/// A prekey identifier, chosen by the device, unique per device and prekey kind.
pub type PrekeyId = u32;

/// A signed X25519 prekey (`SPK`), as published.
///
/// ```text
/// SignedPrekey = id:varint u32 || public:[32] || signature:[64]
/// signature = Ed25519(device signing key, "Kith-v1 signed prekey" || id:u32 BE || public)
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPrekey {
    id: PrekeyId,
    public: [u8; 32],
    #[serde(with = "crate::encoding::array")]
    signature: [u8; 64],
}

fn signed_prekey_message(id: PrekeyId, public: &[u8; 32]) -> Vec<u8> {
    [labels::SIGNED_PREKEY, &id.to_be_bytes(), public].concat()
}

impl SignedPrekey {
    /// The id.
    pub fn id(&self) -> PrekeyId {
        self.id
    }

    /// The X25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// Whether the signature verifies under `signer`.
    pub fn verify(&self, signer: &DeviceSigningPublicKey) -> bool {
        signer.verify(
            &signed_prekey_message(self.id, &self.public),
            &self.signature,
        )
    }
}

impl fmt::Debug for SignedPrekey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedPrekey {{ id: {}, ", self.id)?;
        fmt_key_prefix(f, "public", &self.public)?;
        write!(f, " }}")
    }
}

/// The secret half of a signed prekey, kept by the device. Zeroized on drop.
pub struct SignedPrekeySecret {
    secret: StaticSecret,
    public: SignedPrekey,
}

impl SignedPrekeySecret {
    /// Generates a signed prekey with id `id`, signed by `device`.
    pub fn generate<R: CryptoRng + ?Sized>(
        id: PrekeyId,
        device: &DeviceKeyPair,
        rng: &mut R,
    ) -> Self {
        Self::from_secret_bytes(id, device, &StaticSecret::random_from_rng(rng).to_bytes())
    }

    /// Restores from the 32-byte secret (re-signs; Ed25519 signing is deterministic).
    pub fn from_secret_bytes(id: PrekeyId, device: &DeviceKeyPair, secret: &[u8; 32]) -> Self {
        let secret = StaticSecret::from(*secret);
        let public = public_of(&secret);
        let signature = device.sign(&signed_prekey_message(id, &public));
        Self {
            secret,
            public: SignedPrekey {
                id,
                public,
                signature,
            },
        }
    }

    /// The 32-byte secret, for encrypted local storage only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public, signed form.
    pub fn public(&self) -> &SignedPrekey {
        &self.public
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for SignedPrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPrekeySecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A one-time X25519 prekey (`OPK`), as published. Unsigned, as in X3DH/PQXDH: a forged one
/// only costs the forward-secrecy bonus it would have added.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePrekey {
    id: PrekeyId,
    public: [u8; 32],
}

impl OneTimePrekey {
    /// The id.
    pub fn id(&self) -> PrekeyId {
        self.id
    }

    /// The X25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }
}

impl fmt::Debug for OneTimePrekey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OneTimePrekey {{ id: {}, ", self.id)?;
        fmt_key_prefix(f, "public", &self.public)?;
        write!(f, " }}")
    }
}

/// The secret half of a one-time prekey. Zeroized on drop; delete it after its first use.
pub struct OneTimePrekeySecret {
    secret: StaticSecret,
    public: OneTimePrekey,
}

impl OneTimePrekeySecret {
    /// Generates a one-time prekey with id `id`.
    pub fn generate<R: CryptoRng + ?Sized>(id: PrekeyId, rng: &mut R) -> Self {
        Self::from_secret_bytes(id, &StaticSecret::random_from_rng(rng).to_bytes())
    }

    /// Restores from the 32-byte secret.
    pub fn from_secret_bytes(id: PrekeyId, secret: &[u8; 32]) -> Self {
        let secret = StaticSecret::from(*secret);
        let public = OneTimePrekey {
            id,
            public: public_of(&secret),
        };
        Self { secret, public }
    }

    /// The 32-byte secret, for encrypted local storage only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public form.
    pub fn public(&self) -> &OneTimePrekey {
        &self.public
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for OneTimePrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePrekeySecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Whether an ML-KEM prekey is used once or is the device's last-resort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KemPrekeyKind {
    /// Reused until replaced; handed out when no one-time KEM prekey is left.
    LastResort,
    /// Handed out once, deleted by the device after use.
    OneTime,
}

impl KemPrekeyKind {
    fn tag(self) -> u8 {
        match self {
            Self::LastResort => 0,
            Self::OneTime => 1,
        }
    }
}

/// An ML-KEM-768 encapsulation key (1184 bytes), encoded as raw bytes without a length.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey(Box<[u8; KEM_PUBLIC_KEY_LEN]>);

impl KemPublicKey {
    /// The 1184 bytes.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_key_prefix(f, "KemPublicKey", &self.0[..])
    }
}

impl Serialize for KemPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::encoding::array::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for KemPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::encoding::array::deserialize::<D, KEM_PUBLIC_KEY_LEN>(deserializer)
            .map(|a| Self(Box::new(a)))
    }
}

/// A signed ML-KEM-768 prekey (`PQPK`), as published. Both kinds are signed (PQXDH).
///
/// ```text
/// KemPrekey = id:varint u32 || kind:u8 (0 last resort, 1 one-time) || public:[1184] || signature:[64]
/// signature = Ed25519(device signing key, "Kith-v1 kem prekey" || id:u32 BE || kind:u8 || public)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KemPrekey {
    id: PrekeyId,
    kind: KemPrekeyKind,
    public: KemPublicKey,
    #[serde(with = "crate::encoding::array")]
    signature: [u8; 64],
}

fn kem_prekey_message(
    id: PrekeyId,
    kind: KemPrekeyKind,
    public: &[u8; KEM_PUBLIC_KEY_LEN],
) -> Vec<u8> {
    [labels::KEM_PREKEY, &id.to_be_bytes(), &[kind.tag()], public].concat()
}

impl KemPrekey {
    /// The id.
    pub fn id(&self) -> PrekeyId {
        self.id
    }

    /// Last-resort or one-time.
    pub fn kind(&self) -> KemPrekeyKind {
        self.kind
    }

    /// The encapsulation key.
    pub fn public_key(&self) -> &KemPublicKey {
        &self.public
    }

    /// Whether the signature verifies under `signer`.
    pub fn verify(&self, signer: &DeviceSigningPublicKey) -> bool {
        signer.verify(
            &kem_prekey_message(self.id, self.kind, &self.public.0),
            &self.signature,
        )
    }
}

/// The secret half of an ML-KEM prekey, stored as its 64-byte seed. Zeroized on drop.
pub struct KemPrekeySecret {
    seed: Zeroizing<[u8; KEM_SEED_LEN]>,
    public: KemPrekey,
}

impl KemPrekeySecret {
    /// Generates an ML-KEM-768 prekey of `kind` with id `id`, signed by `device`.
    pub fn generate<R: CryptoRng + ?Sized>(
        id: PrekeyId,
        kind: KemPrekeyKind,
        device: &DeviceKeyPair,
        rng: &mut R,
    ) -> Self {
        let (seed, _) = MlKem768Kem::generate(rng);
        Self::from_secret_bytes(id, kind, device, &seed)
    }

    /// Restores from the 64-byte seed.
    pub fn from_secret_bytes(
        id: PrekeyId,
        kind: KemPrekeyKind,
        device: &DeviceKeyPair,
        seed: &[u8; KEM_SEED_LEN],
    ) -> Self {
        let public = KemPublicKey(MlKem768Kem::public_key(seed));
        let signature = device.sign(&kem_prekey_message(id, kind, &public.0));
        Self {
            seed: Zeroizing::new(*seed),
            public: KemPrekey {
                id,
                kind,
                public,
                signature,
            },
        }
    }

    /// The 64-byte seed, for encrypted local storage only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; KEM_SEED_LEN]> {
        self.seed.clone()
    }

    /// The public, signed form.
    pub fn public(&self) -> &KemPrekey {
        &self.public
    }

    pub(crate) fn seed(&self) -> &[u8; KEM_SEED_LEN] {
        &self.seed
    }
}

impl fmt::Debug for KemPrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemPrekeySecret")
            .field("id", &self.public.id)
            .field("kind", &self.public.kind)
            .finish_non_exhaustive()
    }
}
