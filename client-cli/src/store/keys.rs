//! The keys derived from the data key, and what they do: hide groups, seal values.
//!
//! ```text
//! value key = HKDF-SHA256(salt = none, ikm = data key, info = "kith-store-v1 value key")
//! index key = HKDF-SHA256(salt = none, ikm = data key, info = "kith-store-v1 index key")
//!
//! stored key   = table:u8 ‖ HMAC-SHA256(index key, table ‖ u32be(len(group)) ‖ group)[..16] ‖ item
//! stored value = nonce:[24] ‖ XChaCha20-Poly1305(value key, nonce, plaintext,
//!                                                 AD = "kith-store-v1" ‖ stored key)
//! ```

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::StoreError;
use super::vault::{NONCE_LEN, TAG_LEN, cipher};

/// A 32-byte secret key, wiped on drop.
pub(super) type DataKey = Zeroizing<[u8; 32]>;

/// HKDF info of the value key.
const VALUE_KEY_INFO: &[u8] = b"kith-store-v1 value key";
/// HKDF info of the index key.
const INDEX_KEY_INFO: &[u8] = b"kith-store-v1 index key";
/// Prefix of the associated data of every stored value.
const VALUE_AD_PREFIX: &[u8] = b"kith-store-v1";
/// Length of the truncated group hash.
const GROUP_HASH_LEN: usize = 16;
/// Length of `table ‖ group hash`, the prefix of every stored key of a group.
pub(super) const GROUP_PREFIX_LEN: usize = 1 + GROUP_HASH_LEN;

/// The keys that seal values and hide groups. Both are wiped on drop.
pub(super) struct StoreKeys {
    /// XChaCha20-Poly1305 under the value key (zeroizes its key on drop).
    value: XChaCha20Poly1305,
    /// The 32-byte HMAC-SHA256 key of the group hash, zero-padded to SHA-256's 64-byte block
    /// (exactly what HMAC does with a short key), so `KeyInit::new` takes it infallibly.
    index: Zeroizing<[u8; 64]>,
}

impl StoreKeys {
    /// Derives the value key and index key from the data key.
    pub(super) fn derive(data_key: &DataKey) -> Result<Self, StoreError> {
        let hkdf = Hkdf::<Sha256>::new(None, &data_key[..]);
        let expand = |info: &[u8]| -> Result<DataKey, StoreError> {
            let mut okm = DataKey::default();
            hkdf.expand(info, &mut okm[..])
                .map_err(|_| StoreError::Io(std::io::Error::other("key derivation failed")))?;
            Ok(okm)
        };
        let value_key = expand(VALUE_KEY_INFO)?;
        let index_key = expand(INDEX_KEY_INFO)?;
        let mut index = Zeroizing::new([0; 64]);
        index[..32].copy_from_slice(&index_key[..]);
        Ok(Self {
            value: cipher(&value_key),
            index,
        })
    }

    /// `table ‖ HMAC(index key, table ‖ u32be(len(group)) ‖ group)[..16]`.
    pub(super) fn group_prefix(&self, table: u8, group: &[u8]) -> Vec<u8> {
        // A group longer than u32::MAX bytes cannot be stored by sled anyway; the encoding
        // stays injective because the group is the last field of the MAC input.
        let len = u32::try_from(group.len()).unwrap_or(u32::MAX);
        let mut mac = <Hmac<Sha256> as KeyInit>::new((&*self.index).into());
        mac.update(&[table]);
        mac.update(&len.to_be_bytes());
        mac.update(group);
        let hash = mac.finalize().into_bytes();
        let mut prefix = Vec::with_capacity(GROUP_PREFIX_LEN);
        prefix.push(table);
        prefix.extend_from_slice(&hash[..GROUP_HASH_LEN]);
        prefix
    }

    /// The stored key of `(table, group, item)`.
    pub(super) fn stored_key(&self, table: u8, group: &[u8], item: &[u8]) -> Vec<u8> {
        let mut key = self.group_prefix(table, group);
        key.extend_from_slice(item);
        key
    }

    /// Seals `plaintext` for `stored_key`: `nonce ‖ ciphertext ‖ tag`.
    pub(super) fn seal(&self, stored_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE_LEN] = random()?;
        // Encrypted in place in a buffer of the final size: no unwiped plaintext copy remains.
        let mut out = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .value
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &value_ad(stored_key),
                (&mut out[NONCE_LEN..]).into(),
            )
            .map_err(|_| {
                StoreError::Io(std::io::Error::other("the value is too large to store"))
            })?;
        out.extend_from_slice(&tag);
        Ok(std::mem::take(&mut *out))
    }

    /// Opens a stored value of `stored_key`; any tampering is [`StoreError::Corrupt`].
    pub(super) fn open(
        &self,
        stored_key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let body_len = sealed
            .len()
            .checked_sub(NONCE_LEN + TAG_LEN)
            .ok_or(StoreError::Corrupt)?;
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(body_len);
        let nonce = XNonce::try_from(nonce).map_err(|_| StoreError::Corrupt)?;
        let tag = Tag::try_from(tag).map_err(|_| StoreError::Corrupt)?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.value
            .decrypt_inout_detached(
                &nonce,
                &value_ad(stored_key),
                (&mut plaintext[..]).into(),
                &tag,
            )
            .map_err(|_| StoreError::Corrupt)?;
        Ok(plaintext)
    }
}

/// `"kith-store-v1" ‖ stored key`.
fn value_ad(stored_key: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(VALUE_AD_PREFIX.len() + stored_key.len());
    ad.extend_from_slice(VALUE_AD_PREFIX);
    ad.extend_from_slice(stored_key);
    ad
}

/// `N` bytes from the operating system's random number generator.
pub(super) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|_| {
        StoreError::Io(std::io::Error::other(
            "the system random number generator failed",
        ))
    })?;
    Ok(bytes)
}
