//! The group state and its signed form (SPEC.md §14.1–14.2).
//!
//! ```text
//! GroupState       = version:u8 (= GROUP_STATE_VERSION) || group_id:[16] || epoch:varint u64
//!                    || name:varint len (≤ MAX_GROUP_NAME_LEN) || UTF-8
//!                    || members:varint count (1..=MAX_GROUP_MEMBERS) || Member*
//!                    || previous_hash:[32] || envelope_secret:[32]
//! Member           = account_key:[32] || handle:Handle || admin:u8 (0 or 1)
//! SignedGroupState = GroupState || signer:[32] || signature:[64]
//! signature        = Ed25519(signer's account key, "Kith-v1 group state" || GroupState)
//! state_hash       = SHA-256("Kith-v1 group state hash" || SignedGroupState)
//! ```

use core::fmt;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::GroupStateError;
use super::id::GroupId;
use super::secret::Secret32;
use crate::consts::{GROUP_STATE_VERSION, MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN, labels};
use crate::encoding::{self, BoundedString, BoundedVec, DecodeError, array};
use crate::keys::{AccountKeyPair, AccountPublicKey};
use crate::wire::Handle;

/// Decode limit of a [`SignedGroupState`]: the largest is 4477 bytes (64 members with
/// 32-byte handles and a 64-byte name).
pub(crate) const MAX_SIGNED_GROUP_STATE_LEN: usize = 8192;

/// One member of a group: an account, the handle it is shown under, and whether it is an
/// admin (may sign changes, SPEC.md §14.3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's account key; unique in a state.
    pub account_key: AccountPublicKey,
    /// The member's handle, as its inviter saw it in the directory; unique in a state.
    pub handle: Handle,
    /// Whether the member is an admin (a facilitator).
    pub admin: bool,
}

impl fmt::Debug for Member {
    /// Shows the account key and the admin flag, never the handle.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("account_key", &self.account_key)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// The state of a group at one epoch: who is in it, who administers it, and the envelope
/// secret of the epoch. It holds a secret, so it travels only inside 1:1 sessions; the secret
/// is zeroized on drop and `Debug` shows neither it, the name nor any handle.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub(super) group_id: GroupId,
    pub(super) epoch: u64,
    pub(super) name: BoundedString<MAX_GROUP_NAME_LEN>,
    pub(super) members: BoundedVec<Member, MAX_GROUP_MEMBERS>,
    pub(super) previous_hash: [u8; 32],
    pub(super) envelope_secret: Secret32,
}

impl GroupState {
    /// The group id.
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// The epoch: 0 at creation, one more with every change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The group's name (untrusted text: display it as plain text).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The members, in the order the state lists them.
    pub fn members(&self) -> &[Member] {
        self.members.as_slice()
    }

    /// The member with account key `account`, if any.
    pub fn member(&self, account: &AccountPublicKey) -> Option<&Member> {
        self.members().iter().find(|m| &m.account_key == account)
    }

    /// Whether `account` is an admin of this state.
    pub fn is_admin(&self, account: &AccountPublicKey) -> bool {
        self.member(account).is_some_and(|m| m.admin)
    }

    /// `state_hash` of the previous epoch's signed state; all zero at epoch 0.
    pub fn previous_hash(&self) -> &[u8; 32] {
        &self.previous_hash
    }

    pub(super) fn envelope_secret(&self) -> &Secret32 {
        &self.envelope_secret
    }

    /// Checks the invariants of SPEC.md §14.1: unique account keys, unique handles, at least
    /// one admin (the member count is bounded by the type).
    pub(super) fn validate(&self) -> Result<(), GroupStateError> {
        let members = self.members();
        let keys: BTreeSet<_> = members.iter().map(|m| m.account_key).collect();
        let handles: BTreeSet<_> = members.iter().map(|m| &m.handle).collect();
        let unique = keys.len() == members.len() && handles.len() == members.len();
        if unique && members.iter().any(|m| m.admin) {
            Ok(())
        } else {
            Err(GroupStateError::Invalid)
        }
    }

    /// `"Kith-v1 group state" || GroupState`: the bytes the signer's account key signs.
    pub(super) fn signed_bytes(&self) -> Zeroizing<Vec<u8>> {
        let encoded = encoding::encode_versioned_zeroizing(GROUP_STATE_VERSION, self);
        let mut out = Zeroizing::new(Vec::with_capacity(
            labels::GROUP_STATE.len() + encoded.len(),
        ));
        out.extend_from_slice(labels::GROUP_STATE);
        out.extend_from_slice(&encoded);
        out
    }
}

impl fmt::Debug for GroupState {
    /// Shows the group id, epoch, name length and members; no secret, name or handle.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupState")
            .field("group_id", &self.group_id)
            .field("epoch", &self.epoch)
            .field("name_len", &self.name.as_str().len())
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// A [`GroupState`] signed by a member's account key (SPEC.md §14.2). Only well-formed states
/// decode; whether the signature is valid and the signer allowed is checked by
/// [`SignedGroupState::verify_genesis`], [`SignedGroupState::accept_invitation`] and
/// [`crate::VerifiedGroupState::verify_successor`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSignedGroupState")]
pub struct SignedGroupState {
    pub(super) version: u8,
    pub(super) state: GroupState,
    pub(super) signer: AccountPublicKey,
    #[serde(with = "array")]
    pub(super) signature: [u8; 64],
}

/// The decoded fields before the checks of [`TryFrom`].
#[derive(Deserialize)]
struct RawSignedGroupState {
    version: u8,
    state: GroupState,
    signer: AccountPublicKey,
    #[serde(with = "array")]
    signature: [u8; 64],
}

impl TryFrom<RawSignedGroupState> for SignedGroupState {
    type Error = GroupStateError;

    fn try_from(raw: RawSignedGroupState) -> Result<Self, GroupStateError> {
        if raw.version != GROUP_STATE_VERSION {
            return Err(GroupStateError::Invalid);
        }
        raw.state.validate()?;
        Ok(Self {
            version: raw.version,
            state: raw.state,
            signer: raw.signer,
            signature: raw.signature,
        })
    }
}

impl SignedGroupState {
    /// Signs a well-formed `state` with `signer`.
    pub(super) fn sign(
        state: GroupState,
        signer: &AccountKeyPair,
    ) -> Result<Self, GroupStateError> {
        state.validate()?;
        let signature = signer.sign(&state.signed_bytes());
        Ok(Self {
            version: GROUP_STATE_VERSION,
            state,
            signer: signer.public_key(),
            signature,
        })
    }

    /// The state.
    pub fn state(&self) -> &GroupState {
        &self.state
    }

    /// The account that signed the state.
    pub fn signer(&self) -> &AccountPublicKey {
        &self.signer
    }

    /// The canonical encoding, in a buffer zeroized on drop (it holds the envelope secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encoding::encode_zeroizing(self)
    }

    /// Decodes a signed state, rejecting other versions, malformed states (§14.1), trailing
    /// bytes and non-canonical encodings. Does not check the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&found) if found != GROUP_STATE_VERSION => {
                Err(DecodeError::UnsupportedVersion { found })
            }
            _ => encoding::decode(bytes, MAX_SIGNED_GROUP_STATE_LEN),
        }
    }

    /// `state_hash = SHA-256("Kith-v1 group state hash" || SignedGroupState)`.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(labels::GROUP_STATE_HASH);
        hasher.update(&self.to_bytes()[..]);
        hasher.finalize().into()
    }

    /// Whether the signature verifies under the signer's account key.
    pub(super) fn signature_is_valid(&self) -> bool {
        self.signer
            .verify(&self.state.signed_bytes(), &self.signature)
    }
}

impl fmt::Debug for SignedGroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedGroupState")
            .field("state", &self.state)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}
