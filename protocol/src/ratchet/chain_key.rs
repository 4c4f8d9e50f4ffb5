//! Chain key and `KDF_CK` (SPEC.md §6.3).

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::message_key::MessageKey;
use crate::kdf::hmac_sha256;

/// Input byte of HMAC-SHA256(CK, ·) that derives the message key.
const MESSAGE_KEY_SEED: u8 = 0x01;
/// Input byte of HMAC-SHA256(CK, ·) that derives the next chain key.
const CHAIN_KEY_SEED: u8 = 0x02;

/// `CK` with its index `N` (the number of the message whose key it derives next).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    key: [u8; 32],
    index: u32,
}

impl ChainKey {
    pub(crate) fn new(key: [u8; 32], index: u32) -> Self {
        Self { key, index }
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// `MK = HMAC-SHA256(CK, 0x01)`, for message number `index`.
    pub(super) fn message_key(&self) -> MessageKey {
        MessageKey::new(*hmac_sha256(&self.key, &[MESSAGE_KEY_SEED]), self.index)
    }

    /// `CK' = HMAC-SHA256(CK, 0x02)`; `None` when the index would overflow.
    pub(super) fn next(&self) -> Option<ChainKey> {
        let index = self.index.checked_add(1)?;
        Some(ChainKey {
            key: *hmac_sha256(&self.key, &[CHAIN_KEY_SEED]),
            index,
        })
    }
}
