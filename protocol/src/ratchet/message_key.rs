//! Message keys and per-message AEAD (SPEC.md §6.4).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::consts::labels;
use crate::kdf::{hkdf_sha256, split_key_nonce};

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

    /// key || nonce = HKDF-SHA256(salt = 32 zero bytes, ikm = MK, info = "Kith-v1 message keys").
    fn cipher(&self) -> (ChaCha20Poly1305, Nonce) {
        let okm = hkdf_sha256::<44>(&[0u8; 32], &self.key, labels::MESSAGE_KEYS_INFO);
        let (key, nonce) = split_key_nonce(&okm);
        (ChaCha20Poly1305::new(&Key::from(*key)), Nonce::from(nonce))
    }

    /// ChaCha20-Poly1305 encryption under this key; consumes the key.
    pub(crate) fn encrypt(self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (cipher, nonce) = self.cipher();
        // ChaCha20-Poly1305 fails only for inputs over 256 GiB; plaintexts are capped at
        // MAX_PLAINTEXT_LEN before reaching here.
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
    pub(crate) fn decrypt(
        &self,
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AeadFailure> {
        let (cipher, nonce) = self.cipher();
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map_err(|_| AeadFailure)
    }
}
