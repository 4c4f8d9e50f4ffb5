//! Group message keys and per-message AEAD (SPEC.md §14.5).

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead;
use crate::consts::labels;

/// The message seed of one iteration. Encrypting consumes it: a message key is used once.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct GroupMessageKey {
    seed: [u8; 32],
    iteration: u32,
}

impl GroupMessageKey {
    pub(super) fn new(seed: [u8; 32], iteration: u32) -> Self {
        Self { seed, iteration }
    }

    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.seed
    }

    pub(super) fn iteration(&self) -> u32 {
        self.iteration
    }

    /// ChaCha20-Poly1305 under `HKDF(seed, "Kith-v1 group message keys")`; consumes the key.
    pub(super) fn encrypt(self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        aead::seal(
            &self.seed,
            labels::GROUP_MESSAGE_KEYS_INFO,
            associated_data,
            plaintext,
        )
    }

    /// Decryption; the key is kept so that a failed attempt leaves state unchanged.
    pub(super) fn decrypt(
        &self,
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        aead::open(
            &self.seed,
            labels::GROUP_MESSAGE_KEYS_INFO,
            associated_data,
            ciphertext,
        )
        .map(Zeroizing::new)
    }
}
