//! Another member device's sender key, on the receiving side (SPEC.md §14.5–14.6).
//!
//! Decryption is staged like the Double Ratchet's (§6.7): the signature is checked first,
//! keys are derived into temporaries, and the state changes only after the AEAD accepted the
//! message, so a forged, replayed or corrupted message leaves the key exactly as it was.

use core::fmt;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::GroupDecryptError;
use super::chain::SenderChainKey;
use super::id::GroupId;
use super::message::GroupMessage;
use super::message_key::GroupMessageKey;
use super::secret::Secret32;
use super::sender_key::SenderKeyDistribution;
use crate::consts::{MAX_GROUP_SKIP, MAX_GROUP_SKIPPED_KEYS, SENDER_KEY_STATE_VERSION};
use crate::encoding::{self, BoundedVec, DecodeError};
use crate::keys::{AccountPublicKey, DeviceId};

/// Decode limit of a persisted [`PeerSenderKey`]: 2000 skipped keys of at most 37 bytes, plus
/// the fixed fields.
const MAX_PEER_SENDER_KEY_LEN: usize = 128 * 1024;

/// A sender key received from another member device. Zeroized on drop; persist it with
/// [`PeerSenderKey::to_bytes`], encrypted.
pub struct PeerSenderKey {
    group_id: GroupId,
    epoch: u64,
    key_id: u32,
    sender_account: AccountPublicKey,
    sender_device: DeviceId,
    signing_key: [u8; 32],
    chain: SenderChainKey,
    /// Keys of skipped iterations, oldest first, at most `MAX_GROUP_SKIPPED_KEYS`.
    skipped: VecDeque<GroupMessageKey>,
}

/// What a successful decryption changes, applied only after the AEAD accepted the message.
enum Staged {
    /// A stored skipped key was used: remove it.
    Skipped(usize),
    /// The chain advanced past the message, skipping these keys.
    Advanced(Vec<GroupMessageKey>, SenderChainKey),
}

impl PeerSenderKey {
    /// Accepts a distribution received over the 1:1 session with `sender_device` of
    /// `sender_account` (as authenticated by its sealed sender certificate). The caller checks
    /// first that the account is a member of the verified group state of that group and epoch
    /// (SPEC.md §14.8).
    pub fn from_distribution(
        distribution: &SenderKeyDistribution,
        sender_account: AccountPublicKey,
        sender_device: DeviceId,
    ) -> Self {
        Self {
            group_id: distribution.group_id,
            epoch: distribution.epoch,
            key_id: distribution.key_id,
            sender_account,
            sender_device,
            signing_key: distribution.signing_key,
            chain: SenderChainKey::new(*distribution.chain_key.as_bytes(), distribution.iteration),
            skipped: VecDeque::new(),
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

    /// The sending account.
    pub fn sender_account(&self) -> &AccountPublicKey {
        &self.sender_account
    }

    /// The sending device.
    pub fn sender_device(&self) -> DeviceId {
        self.sender_device
    }

    /// Number of stored skipped keys.
    pub fn skipped_len(&self) -> usize {
        self.skipped.len()
    }

    /// Verifies and decrypts `message`. Checks, in order: that it is for this key (group,
    /// epoch, sender, key id), the signature, then derives the key (a stored skipped key, or
    /// the chain advanced by at most `MAX_GROUP_SKIP`) and checks the AEAD. On any error the
    /// key is unchanged.
    pub fn decrypt(
        &mut self,
        message: &GroupMessage,
    ) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        if !self.is_for(message) {
            return Err(GroupDecryptError::WrongSenderKey);
        }
        if !message.signature_is_valid(&self.signing_key) {
            return Err(GroupDecryptError::Authentication);
        }
        let (staged, key) = self.stage(message.iteration())?;
        let associated_data = message.header.associated_data();
        let plaintext = key
            .decrypt(&associated_data, message.ciphertext.as_slice())
            .ok_or(GroupDecryptError::Authentication)?;
        self.commit(staged);
        Ok(plaintext)
    }

    fn is_for(&self, message: &GroupMessage) -> bool {
        let header = &message.header;
        header.group_id == self.group_id
            && header.epoch == self.epoch
            && header.key_id == self.key_id
            && header.sender_account == self.sender_account
            && header.sender_device == self.sender_device
    }

    /// Derives the key of `iteration` without changing state.
    fn stage(&self, iteration: u32) -> Result<(Staged, GroupMessageKey), GroupDecryptError> {
        if let Some(position) = self.skipped.iter().position(|k| k.iteration() == iteration) {
            let key = self.skipped[position].clone();
            return Ok((Staged::Skipped(position), key));
        }
        let current = self.chain.iteration();
        if iteration < current {
            return Err(GroupDecryptError::Duplicate);
        }
        if iteration - current > MAX_GROUP_SKIP {
            return Err(GroupDecryptError::TooFarAhead);
        }
        let mut skipped = Vec::new();
        let mut chain = self.chain.clone();
        while chain.iteration() < iteration {
            skipped.push(chain.message_key());
            chain = chain.next().ok_or(GroupDecryptError::TooFarAhead)?;
        }
        let key = chain.message_key();
        let next = chain.next().ok_or(GroupDecryptError::TooFarAhead)?;
        Ok((Staged::Advanced(skipped, next), key))
    }

    fn commit(&mut self, staged: Staged) {
        match staged {
            Staged::Skipped(position) => {
                self.skipped.remove(position);
            }
            Staged::Advanced(skipped, next) => {
                for key in skipped {
                    if self.skipped.len() == MAX_GROUP_SKIPPED_KEYS {
                        self.skipped.pop_front();
                    }
                    self.skipped.push_back(key);
                }
                self.chain = next;
            }
        }
    }
}

impl fmt::Debug for PeerSenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSenderKey")
            .field("group_id", &self.group_id)
            .field("epoch", &self.epoch)
            .field("key_id", &self.key_id)
            .field("sender_account", &self.sender_account)
            .field("sender_device", &self.sender_device)
            .field("iteration", &self.chain.iteration())
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// The persisted form of a [`PeerSenderKey`].
///
/// ```text
/// PeerSenderKey = version:u8 (= SENDER_KEY_STATE_VERSION) || group_id:[16] || epoch:varint u64
///                 || key_id:varint u32 || sender_account:[32] || sender_device:[16]
///                 || signing_key:[32] || chain_key:[32] || iteration:varint u32
///                 || skipped:varint count (≤ MAX_GROUP_SKIPPED_KEYS)
///                    || (iteration:varint u32 || seed:[32])*
/// ```
#[derive(Serialize, Deserialize)]
struct PeerState {
    group_id: GroupId,
    epoch: u64,
    key_id: u32,
    sender_account: AccountPublicKey,
    sender_device: DeviceId,
    signing_key: [u8; 32],
    chain_key: Secret32,
    iteration: u32,
    skipped: BoundedVec<SkippedState, MAX_GROUP_SKIPPED_KEYS>,
}

#[derive(Serialize, Deserialize)]
struct SkippedState {
    iteration: u32,
    seed: Secret32,
}

impl PeerSenderKey {
    /// The versioned byte form (layout in SPEC.md §14.5), zeroized on drop. Contains secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let skipped = self
            .skipped
            .iter()
            .map(|k| SkippedState {
                iteration: k.iteration(),
                seed: Secret32::new(*k.as_bytes()),
            })
            .collect();
        let state = PeerState {
            group_id: self.group_id,
            epoch: self.epoch,
            key_id: self.key_id,
            sender_account: self.sender_account,
            sender_device: self.sender_device,
            signing_key: self.signing_key,
            chain_key: Secret32::new(*self.chain.as_bytes()),
            iteration: self.chain.iteration(),
            // The store never holds more than the bound.
            skipped: BoundedVec::new(skipped).unwrap_or_default(),
        };
        encoding::encode_versioned_zeroizing(SENDER_KEY_STATE_VERSION, &state)
    }

    /// Restores a peer sender key from [`PeerSenderKey::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let state: PeerState =
            encoding::decode_versioned(bytes, SENDER_KEY_STATE_VERSION, MAX_PEER_SENDER_KEY_LEN)?;
        let skipped = state
            .skipped
            .as_slice()
            .iter()
            .map(|s| GroupMessageKey::new(*s.seed.as_bytes(), s.iteration))
            .collect();
        Ok(Self {
            group_id: state.group_id,
            epoch: state.epoch,
            key_id: state.key_id,
            sender_account: state.sender_account,
            sender_device: state.sender_device,
            signing_key: state.signing_key,
            chain: SenderChainKey::new(*state.chain_key.as_bytes(), state.iteration),
            skipped,
        })
    }
}
