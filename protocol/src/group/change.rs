//! Creating a group and changing it (SPEC.md §14.3).
//!
//! Every change produces the state of the next epoch: `epoch + 1`, `previous_hash =
//! state_hash(current)` and a fresh `envelope_secret`, signed by the member making the change.

use rand_core::CryptoRng;

use super::GroupStateError;
use super::id::GroupId;
use super::secret::Secret32;
use super::state::{GroupState, Member, SignedGroupState};
use super::verify::VerifiedGroupState;
use crate::consts::{MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN};
use crate::encoding::{BoundedString, BoundedVec};
use crate::keys::{AccountKeyPair, AccountPublicKey};
use crate::wire::Handle;

/// A change to a group, made by [`VerifiedGroupState::successor`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupChange {
    /// Adds members at the end of the list (admin only).
    AddMembers(Vec<Member>),
    /// Removes the members with these account keys (admin only). Each must be a member.
    RemoveMembers(Vec<AccountPublicKey>),
    /// The signer removes itself. Any member may leave, except the last admin (who must first
    /// make someone else an admin).
    Leave,
    /// Makes exactly these members the admins (admin only). Each must be a member.
    SetAdmins(Vec<AccountPublicKey>),
    /// Renames the group (admin only).
    Rename(BoundedString<MAX_GROUP_NAME_LEN>),
}

impl core::fmt::Debug for GroupChange {
    /// Shows the kind and the number of accounts, never handles or the name.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::AddMembers(m) => write!(f, "AddMembers({} members)", m.len()),
            Self::RemoveMembers(k) => write!(f, "RemoveMembers({} accounts)", k.len()),
            Self::Leave => f.write_str("Leave"),
            Self::SetAdmins(k) => write!(f, "SetAdmins({} accounts)", k.len()),
            Self::Rename(_) => f.write_str("Rename(..)"),
        }
    }
}

impl GroupState {
    /// Creates a group at epoch 0: a random group id and envelope secret, `creator` as its
    /// first member and an admin, then `others`. Signed by `creator`.
    pub fn genesis<R: CryptoRng + ?Sized>(
        name: BoundedString<MAX_GROUP_NAME_LEN>,
        creator: &AccountKeyPair,
        creator_handle: Handle,
        others: Vec<Member>,
        rng: &mut R,
    ) -> Result<SignedGroupState, GroupStateError> {
        let group_id = GroupId::random(rng);
        let mut members = vec![Member {
            account_key: creator.public_key(),
            handle: creator_handle,
            admin: true,
        }];
        members.extend(others);
        let state = GroupState {
            group_id,
            epoch: 0,
            name,
            members: BoundedVec::new(members).ok_or(GroupStateError::Invalid)?,
            previous_hash: [0u8; 32],
            envelope_secret: Secret32::random(rng),
        };
        SignedGroupState::sign(state, creator)
    }
}

impl VerifiedGroupState {
    /// Makes `change` as `signer` and signs the next epoch's state. `signer` must be an admin
    /// of this state, or a member for [`GroupChange::Leave`]; the result must be well formed.
    pub fn successor<R: CryptoRng + ?Sized>(
        &self,
        change: GroupChange,
        signer: &AccountKeyPair,
        rng: &mut R,
    ) -> Result<SignedGroupState, GroupStateError> {
        let current = self.state();
        let signer_key = signer.public_key();
        if current.member(&signer_key).is_none() {
            return Err(GroupStateError::NotMember);
        }
        if !matches!(change, GroupChange::Leave) && !current.is_admin(&signer_key) {
            return Err(GroupStateError::NotAdmin);
        }
        let mut next = current.clone();
        next.epoch = current
            .epoch
            .checked_add(1)
            .ok_or(GroupStateError::Invalid)?;
        next.previous_hash = self.hash();
        next.envelope_secret = Secret32::random(rng);
        next.members = apply(
            current.members().to_vec(),
            change,
            &signer_key,
            &mut next.name,
        )?;
        SignedGroupState::sign(next, signer)
    }
}

/// The member list after `change` (and the name, for a rename).
fn apply(
    mut members: Vec<Member>,
    change: GroupChange,
    signer: &AccountPublicKey,
    name: &mut BoundedString<MAX_GROUP_NAME_LEN>,
) -> Result<BoundedVec<Member, MAX_GROUP_MEMBERS>, GroupStateError> {
    match change {
        GroupChange::AddMembers(added) => members.extend(added),
        GroupChange::RemoveMembers(removed) => remove(&mut members, &removed)?,
        GroupChange::Leave => remove(&mut members, core::slice::from_ref(signer))?,
        GroupChange::SetAdmins(admins) => {
            require_members(&members, &admins)?;
            for member in &mut members {
                member.admin = admins.contains(&member.account_key);
            }
        }
        GroupChange::Rename(new_name) => *name = new_name,
    }
    BoundedVec::new(members).ok_or(GroupStateError::Invalid)
}

fn remove(members: &mut Vec<Member>, removed: &[AccountPublicKey]) -> Result<(), GroupStateError> {
    require_members(members, removed)?;
    members.retain(|m| !removed.contains(&m.account_key));
    Ok(())
}

fn require_members(
    members: &[Member],
    accounts: &[AccountPublicKey],
) -> Result<(), GroupStateError> {
    let all = accounts
        .iter()
        .all(|a| members.iter().any(|m| &m.account_key == a));
    if all {
        Ok(())
    } else {
        Err(GroupStateError::Invalid)
    }
}
