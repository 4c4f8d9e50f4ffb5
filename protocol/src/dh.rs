//! X25519 with the contributory check (SPEC.md §3.2).

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The peer's X25519 key is unusable: not canonically encoded (top bit set, or a value ≥ p),
/// or of small order (the shared secret would not depend on our key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("non-contributory or non-canonical X25519 key")]
pub struct NonContributoryKey;

/// Whether `public` is the canonical encoding of a field element: the top bit is clear and the
/// value is below p = 2^255 − 19 (little-endian). X25519 itself ignores the top bit and reduces
/// mod p, so without this check two encodings give the same shared secret, and a peer could
/// alter a key's bytes (e.g. a prekey message's base key) without changing the result.
fn is_canonical(public: &[u8; 32]) -> bool {
    if public[31] & 0x80 != 0 {
        return false;
    }
    // ≥ p exactly when the value is 2^255 − 19 … 2^255 − 1: byte 31 = 0x7f, bytes 1..31 = 0xff,
    // byte 0 ≥ 0xed.
    let at_least_p =
        public[31] == 0x7f && public[1..31].iter().all(|&b| b == 0xff) && public[0] >= 0xed;
    !at_least_p
}

/// X25519(`secret`, `public`), rejecting a non-canonical `public` and an all-zero
/// (non-contributory) result.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, NonContributoryKey> {
    if !is_canonical(public) {
        return Err(NonContributoryKey);
    }
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(NonContributoryKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// The X25519 public key of `secret`.
pub(crate) fn public_of(secret: &StaticSecret) -> [u8; 32] {
    PublicKey::from(secret).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encodings() {
        let mut p = [0xff; 32];
        p[31] = 0x7f;
        p[0] = 0xed; // p itself
        assert!(!is_canonical(&p));
        p[0] = 0xec; // p − 1
        assert!(is_canonical(&p));
        let mut top = [9u8; 32];
        assert!(is_canonical(&top));
        top[31] |= 0x80;
        assert!(!is_canonical(&top));
    }

    #[test]
    fn top_bit_variant_of_a_valid_key_is_rejected() {
        let secret = StaticSecret::from([7u8; 32]);
        let mut public = public_of(&StaticSecret::from([9u8; 32]));
        assert!(dh(&secret, &public).is_ok());
        public[31] |= 0x80;
        assert_eq!(dh(&secret, &public), Err(NonContributoryKey));
    }
}
