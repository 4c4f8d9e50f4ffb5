//! The group message (SPEC.md §14.6).

use core::fmt;

use serde::{Deserialize, Serialize};

use super::id::GroupId;
use crate::consts::{GROUP_MESSAGE_VERSION, MAX_PLAINTEXT_LEN, labels};
use crate::encoding::{self, BoundedBytes, DecodeError, array};
use crate::keys::{AccountPublicKey, DeviceId, DeviceSigningPublicKey};

/// Bound of a group message's ciphertext: the largest plaintext plus the Poly1305 tag.
pub(crate) const MAX_GROUP_CIPHERTEXT_LEN: usize = MAX_PLAINTEXT_LEN + 16;

/// Decode limit of a [`GroupMessage`]: the ciphertext plus at most 152 bytes of header,
/// length prefix and signature, rounded up.
pub(crate) const MAX_GROUP_MESSAGE_LEN: usize = MAX_GROUP_CIPHERTEXT_LEN + 256;

/// The fields before the ciphertext.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct GroupMessageHeader {
    pub(super) group_id: GroupId,
    pub(super) epoch: u64,
    pub(super) sender_account: AccountPublicKey,
    pub(super) sender_device: DeviceId,
    pub(super) key_id: u32,
    pub(super) iteration: u32,
}

impl GroupMessageHeader {
    /// The AEAD associated data: `version || header`, the message's bytes before the
    /// ciphertext.
    pub(super) fn associated_data(&self) -> Vec<u8> {
        encoding::encode_versioned(GROUP_MESSAGE_VERSION, self)
    }
}

/// One message to a group, encrypted once under the sender's sender key and signed with its
/// signing key.
///
/// ```text
/// GroupMessage = version:u8 (= GROUP_MESSAGE_VERSION = 1) || group_id:[16] || epoch:varint u64
///                || sender_account:[32] || sender_device:[16] || key_id:varint u32
///                || iteration:varint u32
///                || ciphertext:varint len (≤ MAX_PLAINTEXT_LEN + 16) || bytes
///                || signature:[64]
/// AD           = the bytes before the ciphertext's length (version || header)
/// signature    = Ed25519(sender key's signing key,
///                        "Kith-v1 group message" || the bytes before the signature)
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    pub(super) header: GroupMessageHeader,
    pub(crate) ciphertext: BoundedBytes<MAX_GROUP_CIPHERTEXT_LEN>,
    #[serde(with = "array")]
    pub(crate) signature: [u8; 64],
}

/// The signed part of a message, in order.
#[derive(Serialize)]
struct SignedPart<'a> {
    header: &'a GroupMessageHeader,
    ciphertext: &'a BoundedBytes<MAX_GROUP_CIPHERTEXT_LEN>,
}

impl GroupMessage {
    /// The group the message is for.
    pub fn group_id(&self) -> GroupId {
        self.header.group_id
    }

    /// The epoch of the group state the sender key belongs to.
    pub fn epoch(&self) -> u64 {
        self.header.epoch
    }

    /// The sending account (authenticated only by the peer sender key that decrypts it).
    pub fn sender_account(&self) -> &AccountPublicKey {
        &self.header.sender_account
    }

    /// The sending device.
    pub fn sender_device(&self) -> DeviceId {
        self.header.sender_device
    }

    /// The id of the sender key.
    pub fn key_id(&self) -> u32 {
        self.header.key_id
    }

    /// The message's iteration in the sender-key chain.
    pub fn iteration(&self) -> u32 {
        self.header.iteration
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode_versioned(GROUP_MESSAGE_VERSION, self)
    }

    /// Decodes a group message, rejecting other versions, input over the limit, trailing
    /// bytes and non-canonical encodings.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode_versioned(bytes, GROUP_MESSAGE_VERSION, MAX_GROUP_MESSAGE_LEN)
    }

    /// `"Kith-v1 group message" || version || header || ciphertext (length-prefixed)`.
    pub(super) fn signed_bytes(
        header: &GroupMessageHeader,
        ciphertext: &BoundedBytes<MAX_GROUP_CIPHERTEXT_LEN>,
    ) -> Vec<u8> {
        let part =
            encoding::encode_versioned(GROUP_MESSAGE_VERSION, &SignedPart { header, ciphertext });
        [labels::GROUP_MESSAGE, &part].concat()
    }

    /// Whether the signature verifies under `signing_key` (strict Ed25519, as for every
    /// signature in Kith; the device-key type only lends its verification).
    pub(super) fn signature_is_valid(&self, signing_key: &[u8; 32]) -> bool {
        let signed = Self::signed_bytes(&self.header, &self.ciphertext);
        DeviceSigningPublicKey::from_bytes(*signing_key).verify(&signed, &self.signature)
    }
}

impl fmt::Debug for GroupMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupMessage")
            .field("group_id", &self.header.group_id)
            .field("epoch", &self.header.epoch)
            .field("sender_account", &self.header.sender_account)
            .field("sender_device", &self.header.sender_device)
            .field("key_id", &self.header.key_id)
            .field("iteration", &self.header.iteration)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}
