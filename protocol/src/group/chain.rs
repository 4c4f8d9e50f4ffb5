//! The sender-key chain (SPEC.md §14.5): Signal's sender-key KDF.
//!
//! ```text
//! seed_i  = HMAC-SHA256(CK_i, 0x01)      the message seed of iteration i
//! CK_i+1  = HMAC-SHA256(CK_i, 0x02)
//! ```

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::message_key::GroupMessageKey;
use crate::kdf::hmac_sha256;

/// Input byte of HMAC-SHA256(CK, ·) that derives the message seed.
const MESSAGE_SEED: u8 = 0x01;
/// Input byte of HMAC-SHA256(CK, ·) that derives the next chain key.
const CHAIN_KEY_SEED: u8 = 0x02;

/// `CK_i` with its iteration `i` (the iteration of the message whose key it derives next).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct SenderChainKey {
    key: [u8; 32],
    iteration: u32,
}

impl SenderChainKey {
    pub(super) fn new(key: [u8; 32], iteration: u32) -> Self {
        Self { key, iteration }
    }

    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub(super) fn iteration(&self) -> u32 {
        self.iteration
    }

    /// `seed_i = HMAC-SHA256(CK_i, 0x01)`.
    pub(super) fn message_key(&self) -> GroupMessageKey {
        GroupMessageKey::new(*hmac_sha256(&self.key, &[MESSAGE_SEED]), self.iteration)
    }

    /// `CK_i+1 = HMAC-SHA256(CK_i, 0x02)`; `None` when the iteration would overflow.
    pub(super) fn next(&self) -> Option<Self> {
        Some(Self {
            key: *hmac_sha256(&self.key, &[CHAIN_KEY_SEED]),
            iteration: self.iteration.checked_add(1)?,
        })
    }
}
