//! Passphrase → key (Argon2id), the header, and the wrapped data key (XChaCha20-Poly1305).
//!
//! ```text
//! passphrase, salt, params ──Argon2id v0x13──▶ KEK (32 bytes)
//! data key (32 random bytes) ──XChaCha20-Poly1305(KEK, nonce, AD = header[0..29])──▶ wrapped
//! data key ──HKDF-SHA256──▶ value key, index key   (see `keys.rs`)
//! ```
//!
//! The header, stored unencrypted under `kith-header` in sled's default tree, is 101 bytes:
//!
//! ```text
//! offset  len  field
//!      0    1  format version (1)
//!      1    4  Argon2id memory in KiB, u32 big-endian
//!      5    4  Argon2id passes, u32 big-endian
//!      9    4  Argon2id lanes, u32 big-endian
//!     13   16  salt
//!     29   24  wrap nonce
//!     53   48  wrapped data key (32-byte ciphertext ‖ 16-byte tag)
//! ```
//!
//! Bytes 0..29 are the associated data of the wrap: changing the parameters or the salt makes
//! unwrapping fail ([`StoreError::WrongPassphrase`]). Parameters outside [`KdfParams::is_sane`]
//! are rejected as [`StoreError::Corrupt`] *before* Argon2id runs, so a tampered header cannot
//! make the client allocate unbounded memory.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::error::StoreError;
use super::keys::{DataKey, StoreKeys, random};

/// The header format version written by this code.
const VERSION: u8 = 1;
/// Length of the Argon2id salt.
const SALT_LEN: usize = 16;
/// Length of the XChaCha20-Poly1305 nonce.
pub(super) const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub(super) const TAG_LEN: usize = 16;
/// Length of the data key.
const KEY_LEN: usize = 32;
/// Length of the wrapped data key.
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
/// Length of the header bytes that are the associated data of the wrap.
const AD_LEN: usize = 1 + 12 + SALT_LEN;
/// Length of the whole header.
const HEADER_LEN: usize = AD_LEN + NONCE_LEN + WRAPPED_LEN;

/// Memory bounds in KiB: 8 KiB to 4 GiB.
const MEMORY_KIB: std::ops::RangeInclusive<u32> = 8..=4 * 1024 * 1024;
/// Pass bounds.
const ITERATIONS: std::ops::RangeInclusive<u32> = 1..=100;
/// Lane bounds.
const PARALLELISM: std::ops::RangeInclusive<u32> = 1..=16;

/// The local-store passphrase. Zeroized on drop, never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase typed by the user.
    pub fn new(passphrase: String) -> Self {
        Self(Zeroizing::new(passphrase))
    }

    /// The passphrase's UTF-8 bytes, for Argon2id.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Argon2id parameters, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Whether the parameters are within the bounds this client accepts: memory 8 KiB–4 GiB
    /// and at least 8 KiB per lane, 1–100 passes, 1–16 lanes.
    pub(crate) fn is_sane(&self) -> bool {
        MEMORY_KIB.contains(&self.memory_kib)
            && ITERATIONS.contains(&self.iterations)
            && PARALLELISM.contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism
    }

    /// Derives the key-encryption key from `passphrase` and `salt`.
    fn derive_kek(&self, passphrase: &Passphrase, salt: &[u8]) -> Result<DataKey, StoreError> {
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|_| StoreError::InvalidKdfParams)?;
        let mut kek = DataKey::default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut kek[..])
            .map_err(argon2_error)?;
        Ok(kek)
    }
}

/// Maps an Argon2 failure after the parameters were checked (out of memory, in practice).
fn argon2_error(error: argon2::Error) -> StoreError {
    match error {
        argon2::Error::OutOfMemory => StoreError::Io(std::io::ErrorKind::OutOfMemory.into()),
        other => StoreError::Io(std::io::Error::other(format!("Argon2id failed: {other}"))),
    }
}

/// The decoded header.
pub(super) struct Header {
    /// Argon2id parameters.
    params: KdfParams,
    /// Argon2id salt.
    salt: [u8; SALT_LEN],
    /// Nonce of the wrap.
    nonce: [u8; NONCE_LEN],
    /// The wrapped data key.
    wrapped: [u8; WRAPPED_LEN],
}

impl Header {
    /// A new header for a fresh random data key locked by `passphrase`, and the store keys.
    pub(super) fn create(
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<(Self, StoreKeys), StoreError> {
        if !params.is_sane() {
            return Err(StoreError::InvalidKdfParams);
        }
        let mut header = Self {
            params,
            salt: random()?,
            nonce: random()?,
            wrapped: [0; WRAPPED_LEN],
        };
        let data_key = DataKey::new(random()?);
        let kek = params.derive_kek(passphrase, &header.salt)?;
        let mut buffer = Zeroizing::new(*data_key);
        let tag = cipher(&kek)
            .encrypt_inout_detached(
                &XNonce::from(header.nonce),
                &header.ad(),
                (&mut buffer[..]).into(),
            )
            .map_err(|_| StoreError::Io(std::io::Error::other("sealing the data key failed")))?;
        header.wrapped[..KEY_LEN].copy_from_slice(&buffer[..]);
        header.wrapped[KEY_LEN..].copy_from_slice(&tag);
        let keys = StoreKeys::derive(&data_key)?;
        Ok((header, keys))
    }

    /// Unwraps the data key with `passphrase` and derives the store keys.
    pub(super) fn unlock(&self, passphrase: &Passphrase) -> Result<StoreKeys, StoreError> {
        let kek = self.params.derive_kek(passphrase, &self.salt)?;
        let mut data_key = DataKey::default();
        data_key.copy_from_slice(&self.wrapped[..KEY_LEN]);
        let tag = chacha20poly1305::Tag::from(self.wrapped_tag());
        cipher(&kek)
            .decrypt_inout_detached(
                &XNonce::from(self.nonce),
                &self.ad(),
                (&mut data_key[..]).into(),
                &tag,
            )
            .map_err(|_| StoreError::WrongPassphrase)?;
        StoreKeys::derive(&data_key)
    }

    /// The tag half of the wrapped key.
    fn wrapped_tag(&self) -> [u8; TAG_LEN] {
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&self.wrapped[KEY_LEN..]);
        tag
    }

    /// The associated data of the wrap: version, parameters and salt.
    fn ad(&self) -> [u8; AD_LEN] {
        let mut ad = [0; AD_LEN];
        ad[0] = VERSION;
        ad[1..5].copy_from_slice(&self.params.memory_kib.to_be_bytes());
        ad[5..9].copy_from_slice(&self.params.iterations.to_be_bytes());
        ad[9..13].copy_from_slice(&self.params.parallelism.to_be_bytes());
        ad[13..].copy_from_slice(&self.salt);
        ad
    }

    /// The header's bytes (layout in the module doc).
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..AD_LEN].copy_from_slice(&self.ad());
        out[AD_LEN..AD_LEN + NONCE_LEN].copy_from_slice(&self.nonce);
        out[AD_LEN + NONCE_LEN..].copy_from_slice(&self.wrapped);
        out
    }

    /// Parses and bounds-checks a header.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.first() {
            None => return Err(StoreError::Corrupt),
            Some(&VERSION) => {}
            Some(&found) => return Err(StoreError::UnsupportedVersion { found }),
        }
        let bytes: &[u8; HEADER_LEN] = bytes.try_into().map_err(|_| StoreError::Corrupt)?;
        let params = KdfParams {
            memory_kib: be_u32(bytes, 1),
            iterations: be_u32(bytes, 5),
            parallelism: be_u32(bytes, 9),
        };
        if !params.is_sane() {
            return Err(StoreError::Corrupt);
        }
        let mut header = Self {
            params,
            salt: [0; SALT_LEN],
            nonce: [0; NONCE_LEN],
            wrapped: [0; WRAPPED_LEN],
        };
        header.salt.copy_from_slice(&bytes[13..AD_LEN]);
        header
            .nonce
            .copy_from_slice(&bytes[AD_LEN..AD_LEN + NONCE_LEN]);
        header.wrapped.copy_from_slice(&bytes[AD_LEN + NONCE_LEN..]);
        Ok(header)
    }
}

/// The big-endian u32 at `at`.
fn be_u32(bytes: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

/// XChaCha20-Poly1305 under a 32-byte key.
pub(super) fn cipher(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
    let key: &Key = key.into();
    XChaCha20Poly1305::new(key)
}
