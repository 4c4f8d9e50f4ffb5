//! A device's own sender key and its distribution (SPEC.md §14.5).

use core::fmt;

use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::GroupEncryptError;
use super::chain::SenderChainKey;
use super::id::GroupId;
use super::message::{GroupMessage, GroupMessageHeader};
use super::secret::Secret32;
use crate::consts::{MAX_PLAINTEXT_LEN, SENDER_KEY_STATE_VERSION};
use crate::encoding::{self, BoundedBytes, DecodeError};
use crate::keys::{AccountPublicKey, DeviceId};

/// Decode limit of a persisted [`OwnSenderKey`].
const MAX_OWN_SENDER_KEY_LEN: usize = 256;

/// What a member device sends every other member device, over their 1:1 sessions, so they
/// can decrypt its group messages of one epoch (as [`crate::Body::SenderKey`]). Holds the
/// chain key: zeroized on drop, `Debug` shows only ids.
///
/// ```text
/// SenderKeyDistribution = group_id:[16] || epoch:varint u64 || key_id:varint u32
///                         || iteration:varint u32 || chain_key:[32] || signing_key:[32]
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderKeyDistribution {
    pub(super) group_id: GroupId,
    pub(super) epoch: u64,
    pub(super) key_id: u32,
    pub(super) iteration: u32,
    pub(super) chain_key: Secret32,
    pub(crate) signing_key: [u8; 32],
}

impl SenderKeyDistribution {
    /// The group.
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// The epoch of the group state the key is for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sender key's id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The first iteration the receiver will be able to decrypt.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }
}

impl fmt::Debug for SenderKeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeyDistribution")
            .field("group_id", &self.group_id)
            .field("epoch", &self.epoch)
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// This device's sender key for one group and epoch: encrypts and signs its group messages.
/// Zeroized on drop; persist it with [`OwnSenderKey::to_bytes`], encrypted. Not `Clone`: two
/// copies would encrypt two messages under the same message key.
#[derive(Serialize, Deserialize)]
pub struct OwnSenderKey {
    group_id: GroupId,
    epoch: u64,
    key_id: u32,
    chain_key: Secret32,
    iteration: u32,
    signing_seed: Secret32,
}

impl OwnSenderKey {
    /// A fresh sender key: draws `key_id` (4 bytes, little-endian), the chain key (32 bytes)
    /// and the signing key's seed (32 bytes), in this order.
    pub fn generate<R: CryptoRng + ?Sized>(group_id: GroupId, epoch: u64, rng: &mut R) -> Self {
        let mut key_id = [0u8; 4];
        rng.fill_bytes(&mut key_id);
        Self {
            group_id,
            epoch,
            key_id: u32::from_le_bytes(key_id),
            chain_key: Secret32::random(rng),
            iteration: 0,
            signing_seed: Secret32::random(rng),
        }
    }

    /// The group.
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sender key's id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(self.signing_seed.as_bytes())
    }

    fn chain(&self) -> SenderChainKey {
        SenderChainKey::new(*self.chain_key.as_bytes(), self.iteration)
    }

    /// The distribution at the current iteration: a receiver can decrypt this device's
    /// messages from the next one it sends.
    pub fn distribution(&self) -> SenderKeyDistribution {
        SenderKeyDistribution {
            group_id: self.group_id,
            epoch: self.epoch,
            key_id: self.key_id,
            iteration: self.iteration,
            chain_key: self.chain_key.clone(),
            signing_key: self.signing_key().verifying_key().to_bytes(),
        }
    }

    /// Encrypts `plaintext` (an encoded [`crate::Content`]) as the message of the current
    /// iteration, from `sender` (this account and device), and advances the chain.
    pub fn encrypt(
        &mut self,
        sender: (&AccountPublicKey, DeviceId),
        plaintext: &[u8],
    ) -> Result<GroupMessage, GroupEncryptError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(GroupEncryptError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let chain = self.chain();
        let next = chain.next().ok_or(GroupEncryptError::ChainExhausted)?;
        let header = GroupMessageHeader {
            group_id: self.group_id,
            epoch: self.epoch,
            sender_account: *sender.0,
            sender_device: sender.1,
            key_id: self.key_id,
            iteration: chain.iteration(),
        };
        let ciphertext = chain
            .message_key()
            .encrypt(&header.associated_data(), plaintext);
        self.chain_key = Secret32::new(*next.as_bytes());
        self.iteration = next.iteration();
        // The ciphertext is at most MAX_PLAINTEXT_LEN + 16 bytes, checked above.
        let ciphertext = BoundedBytes::new(ciphertext).ok_or(GroupEncryptError::TooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        })?;
        let signed = GroupMessage::signed_bytes(&header, &ciphertext);
        let signature = self.signing_key().sign(&signed).to_bytes();
        Ok(GroupMessage {
            header,
            ciphertext,
            signature,
        })
    }

    /// The versioned byte form, zeroized on drop. Contains secrets.
    ///
    /// ```text
    /// OwnSenderKey = version:u8 (= SENDER_KEY_STATE_VERSION) || group_id:[16]
    ///                || epoch:varint u64 || key_id:varint u32 || chain_key:[32]
    ///                || iteration:varint u32 || signing_seed:[32]
    /// ```
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encoding::encode_versioned_zeroizing(SENDER_KEY_STATE_VERSION, self)
    }

    /// Restores a sender key from [`OwnSenderKey::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode_versioned(bytes, SENDER_KEY_STATE_VERSION, MAX_OWN_SENDER_KEY_LEN)
    }
}

impl fmt::Debug for OwnSenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnSenderKey")
            .field("group_id", &self.group_id)
            .field("epoch", &self.epoch)
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}
