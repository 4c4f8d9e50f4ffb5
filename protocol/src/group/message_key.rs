//! Group message keys and per-message AEAD (SPEC.md §14.5).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::consts::labels;
use crate::kdf::{hkdf_sha256, split_key_nonce};

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

    /// key || nonce = HKDF-SHA256(salt = 32 zero bytes, ikm = seed,
    /// info = "Kith-v1 group message keys") → 32 + 12 bytes.
    fn cipher(&self) -> (ChaCha20Poly1305, Nonce) {
        let okm = hkdf_sha256::<44>(&[0u8; 32], &self.seed, labels::GROUP_MESSAGE_KEYS_INFO);
        let (key, nonce) = split_key_nonce(&okm);
        (ChaCha20Poly1305::new(&Key::from(*key)), Nonce::from(nonce))
    }

    /// ChaCha20-Poly1305 encryption under this key; consumes the key.
    pub(super) fn encrypt(self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (cipher, nonce) = self.cipher();
        // Fails only for inputs over 256 GiB; plaintexts are capped at MAX_PLAINTEXT_LEN.
        #[allow(clippy::expect_used)]
        cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .expect("plaintext length is bounded")
    }

    /// Decryption; the key is kept so that a failed attempt leaves state unchanged.
    pub(super) fn decrypt(
        &self,
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let (cipher, nonce) = self.cipher();
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}
