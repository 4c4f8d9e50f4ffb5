//! The per-message AEAD shared by the Double Ratchet (SPEC.md §6.4) and sender keys (§14.5):
//! ChaCha20-Poly1305 under `key ‖ nonce = HKDF-SHA256(salt = 32 zero bytes, ikm = seed, info)`
//! (32 + 12 bytes). Each seed is used for one message only, so the derived nonce never repeats
//! under a key.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

use crate::kdf::{hkdf_sha256, split_key_nonce};

fn cipher(seed: &[u8; 32], info: &[u8]) -> (ChaCha20Poly1305, Nonce) {
    let okm = hkdf_sha256::<44>(&[0u8; 32], seed, info);
    let (key, nonce) = split_key_nonce(&okm);
    (ChaCha20Poly1305::new(&Key::from(*key)), Nonce::from(nonce))
}

/// Encrypts `plaintext` with the key and nonce derived from `seed` and `info`.
pub(crate) fn seal(
    seed: &[u8; 32],
    info: &[u8],
    associated_data: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let (cipher, nonce) = cipher(seed, info);
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

/// Decrypts `ciphertext`; `None` when the AEAD rejects it.
pub(crate) fn open(
    seed: &[u8; 32],
    info: &[u8],
    associated_data: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let (cipher, nonce) = cipher(seed, info);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: associated_data,
            },
        )
        .ok()
}
