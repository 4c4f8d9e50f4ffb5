//! Message keys and per-message AEAD (SPEC.md §6.4).

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::aead;
use crate::consts::labels;

/// `MK` for message number `index`. Encrypting consumes it: a message key is used once.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey {
    key: [u8; 32],
    index: u32,
}

/// The AEAD rejected the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

impl MessageKey {
    pub(crate) fn new(key: [u8; 32], index: u32) -> Self {
        Self { key, index }
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// ChaCha20-Poly1305 under `HKDF(MK, "Kith-v1 message keys")`; consumes the key.
    pub(crate) fn encrypt(self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        aead::seal(
            &self.key,
            labels::MESSAGE_KEYS_INFO,
            associated_data,
            plaintext,
        )
    }

    /// Decryption; the key is kept so that a failed attempt leaves state unchanged.
    pub(crate) fn decrypt(
        &self,
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AeadFailure> {
        aead::open(
            &self.key,
            labels::MESSAGE_KEYS_INFO,
            associated_data,
            ciphertext,
        )
        .ok_or(AeadFailure)
    }
}
