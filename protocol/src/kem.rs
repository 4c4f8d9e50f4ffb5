//! The post-quantum KEM behind a small internal trait (SPEC.md §3.3).
//!
//! ml-kem has not been independently audited, so Kith keeps it behind this trait and only ever
//! uses it combined with X25519 (a break of the KEM alone does not break a session).

use ml_kem::{
    Decapsulate, DecapsulationKey, Encapsulate, EncapsulationKey, Generate, KeyExport, MlKem768,
    array::Array,
};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// ML-KEM-768 encapsulation (public) key length.
pub(crate) const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length.
pub(crate) const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of a decapsulation key in its seed form (FIPS 203 `d || z`).
pub(crate) const KEM_SEED_LEN: usize = 64;

/// The public key was not a valid ML-KEM-768 encapsulation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidKemKey;

/// An encapsulation: the ciphertext for the peer and the shared secret.
pub(crate) type Encapsulation = (Box<[u8; KEM_CIPHERTEXT_LEN]>, Zeroizing<[u8; 32]>);

/// A key-encapsulation mechanism as Kith uses it: keys are stored as seeds.
pub(crate) trait Kem {
    /// Generates a key pair, returning the secret seed and the public key.
    fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
    ) -> (Zeroizing<[u8; KEM_SEED_LEN]>, Box<[u8; KEM_PUBLIC_KEY_LEN]>);
    /// Public key of a seed.
    fn public_key(seed: &[u8; KEM_SEED_LEN]) -> Box<[u8; KEM_PUBLIC_KEY_LEN]>;
    /// Encapsulates a fresh secret to `public`.
    fn encapsulate<R: CryptoRng + ?Sized>(
        public: &[u8; KEM_PUBLIC_KEY_LEN],
        rng: &mut R,
    ) -> Result<Encapsulation, InvalidKemKey>;
    /// Decapsulates `ciphertext` (implicit rejection: a wrong ciphertext yields an unrelated
    /// secret, which then fails authentication further on).
    fn decapsulate(
        seed: &[u8; KEM_SEED_LEN],
        ciphertext: &[u8; KEM_CIPHERTEXT_LEN],
    ) -> Zeroizing<[u8; 32]>;
}

/// ML-KEM-768 (FIPS 203) from the RustCrypto `ml-kem` crate.
pub(crate) struct MlKem768Kem;

impl Kem for MlKem768Kem {
    fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
    ) -> (Zeroizing<[u8; KEM_SEED_LEN]>, Box<[u8; KEM_PUBLIC_KEY_LEN]>) {
        let dk = DecapsulationKey::<MlKem768>::generate_from_rng(rng);
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LEN]);
        seed.copy_from_slice(&dk.to_bytes());
        let public = Self::public_key(&seed);
        (seed, public)
    }

    fn public_key(seed: &[u8; KEM_SEED_LEN]) -> Box<[u8; KEM_PUBLIC_KEY_LEN]> {
        let dk = DecapsulationKey::<MlKem768>::from_seed(Array::from(*seed));
        let mut out = Box::new([0u8; KEM_PUBLIC_KEY_LEN]);
        out.copy_from_slice(&dk.encapsulation_key().to_bytes());
        out
    }

    fn encapsulate<R: CryptoRng + ?Sized>(
        public: &[u8; KEM_PUBLIC_KEY_LEN],
        rng: &mut R,
    ) -> Result<Encapsulation, InvalidKemKey> {
        let ek =
            EncapsulationKey::<MlKem768>::new(&Array::from(*public)).map_err(|_| InvalidKemKey)?;
        let (ct, ss) = ek.encapsulate_with_rng(rng);
        let mut ciphertext = Box::new([0u8; KEM_CIPHERTEXT_LEN]);
        ciphertext.copy_from_slice(&ct);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&ss);
        Ok((ciphertext, secret))
    }

    fn decapsulate(
        seed: &[u8; KEM_SEED_LEN],
        ciphertext: &[u8; KEM_CIPHERTEXT_LEN],
    ) -> Zeroizing<[u8; 32]> {
        let dk = DecapsulationKey::<MlKem768>::from_seed(Array::from(*seed));
        let ss = dk.decapsulate(&Array::from(*ciphertext));
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&ss);
        secret
    }
}
