//! `DHs`, our current ratchet key pair, with its public key cached.
//!
//! The public key goes into the header of every message sent in a chain, but it changes only
//! with the key pair, so it is computed (one X25519 base-point multiply) at most once per key
//! pair: on the first message sent with it. A key pair that never sends (the responder's signed
//! prekey, or a restored session that only receives) never pays for it.

use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;

use crate::dh::public_of;

/// An X25519 ratchet key pair. The secret is zeroized on drop (by [`StaticSecret`]); the cached
/// public key is not secret.
///
/// The fields are private to this module and the secret is set only when the pair is made, so
/// the cached public key is always `public_of(secret)`: it cannot disagree with the secret.
pub(crate) struct RatchetKeyPair {
    secret: StaticSecret,
    /// `public_of(secret)`, once computed.
    public: Option<[u8; 32]>,
}

impl RatchetKeyPair {
    /// A fresh key pair (draws exactly what `StaticSecret::random_from_rng` draws).
    pub(crate) fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(StaticSecret::random_from_rng(rng))
    }

    /// Wraps a secret; its public key is computed when first needed.
    pub(crate) fn from_secret(secret: StaticSecret) -> Self {
        Self {
            secret,
            public: None,
        }
    }

    /// The secret half.
    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public half, computed on the first call and cached.
    pub(crate) fn public(&mut self) -> [u8; 32] {
        *self.public.get_or_insert_with(|| public_of(&self.secret))
    }

    /// The cached public key, if computed yet (for tests).
    #[cfg(test)]
    pub(crate) fn cached_public(&self) -> Option<[u8; 32]> {
        self.public
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn public_is_computed_once_and_matches_the_secret() {
        let mut pair = RatchetKeyPair::random(&mut ChaCha20Rng::seed_from_u64(1));
        assert_eq!(pair.cached_public(), None);
        let expected = public_of(pair.secret());
        assert_eq!(pair.public(), expected);
        assert_eq!(pair.cached_public(), Some(expected));
        assert_eq!(pair.public(), expected);
    }

    #[test]
    fn random_draws_like_static_secret() {
        let a = RatchetKeyPair::random(&mut ChaCha20Rng::seed_from_u64(2));
        let b = StaticSecret::random_from_rng(&mut ChaCha20Rng::seed_from_u64(2));
        assert_eq!(a.secret().to_bytes(), b.to_bytes());
    }
}
