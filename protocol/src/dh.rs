//! X25519 with the contributory check (SPEC.md §3.2).

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The peer's X25519 key is of small order: the shared secret would not depend on our key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("non-contributory X25519 key")]
pub struct NonContributoryKey;

/// X25519(`secret`, `public`), rejecting an all-zero (non-contributory) result.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, NonContributoryKey> {
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
