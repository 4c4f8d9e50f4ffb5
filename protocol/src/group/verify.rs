//! Accepting group states: genesis, invitation and successor (SPEC.md §14.4).

use core::fmt;

use zeroize::Zeroizing;

use super::GroupStateError;
use super::state::{GroupState, SignedGroupState};
use crate::encoding::DecodeError;
use crate::keys::AccountPublicKey;

/// A group state this client has accepted: as a genesis it created or received, as an
/// invitation, or as the verified successor of the state it held. Clients keep the current one
/// (and the previous one, to open envelopes sent during a change, §14.7).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedGroupState {
    signed: SignedGroupState,
    hash: [u8; 32],
}

impl SignedGroupState {
    /// Accepts a genesis state: epoch 0, all-zero previous hash, a valid signature by an admin
    /// of the state. Used by the creator, and by members who see the group being created.
    pub fn verify_genesis(&self) -> Result<VerifiedGroupState, GroupStateError> {
        let state = self.state();
        if state.epoch() != 0 || state.previous_hash() != &[0u8; 32] {
            return Err(GroupStateError::NotGenesis);
        }
        self.verify_self_signed()
    }

    /// Accepts the state an admin sent `receiver` when adding it (SPEC.md §14.4): the signature
    /// is valid, the signer is `inviter` (the account that sent the state over the 1:1
    /// session) and an admin *in this state*, and the state lists `receiver`.
    ///
    /// The new member cannot check the history before this state: it trusts the inviting
    /// admin on first use, as it trusts a contact's account key before comparing safety
    /// numbers. From then on every change is verified against the state it holds.
    pub fn accept_invitation(
        &self,
        receiver: &AccountPublicKey,
        inviter: &AccountPublicKey,
    ) -> Result<VerifiedGroupState, GroupStateError> {
        if self.signer() != inviter {
            return Err(GroupStateError::NotAdmin);
        }
        if self.state().member(receiver).is_none() {
            return Err(GroupStateError::NotMember);
        }
        self.verify_self_signed()
    }

    /// Valid signature by an admin of the state itself.
    fn verify_self_signed(&self) -> Result<VerifiedGroupState, GroupStateError> {
        if !self.signature_is_valid() {
            return Err(GroupStateError::BadSignature);
        }
        if !self.state().is_admin(self.signer()) {
            return Err(GroupStateError::NotAdmin);
        }
        Ok(VerifiedGroupState::new(self.clone()))
    }
}

impl VerifiedGroupState {
    fn new(signed: SignedGroupState) -> Self {
        let hash = signed.hash();
        Self { signed, hash }
    }

    /// The state.
    pub fn state(&self) -> &GroupState {
        self.signed.state()
    }

    /// The signed form, to send to a new member or store.
    pub fn signed(&self) -> &SignedGroupState {
        &self.signed
    }

    /// `state_hash` of this state: the next state's `previous_hash`.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Accepts `next` as the state after this one (SPEC.md §14.4), checking in this order:
    /// same group, valid signature, epoch and previous hash (replay, fork, gap), then that the
    /// signer may make the change: an admin of *this* state, or any member of this state whose
    /// change is exactly leaving.
    pub fn verify_successor(
        &self,
        next: &SignedGroupState,
    ) -> Result<VerifiedGroupState, GroupStateError> {
        let (current, candidate) = (self.state(), next.state());
        if candidate.group_id() != current.group_id() {
            return Err(GroupStateError::WrongGroup);
        }
        if !next.signature_is_valid() {
            return Err(GroupStateError::BadSignature);
        }
        self.check_position(next)?;
        if !current.is_admin(next.signer()) && !is_leave(current, candidate, next.signer()) {
            return Err(GroupStateError::NotAdmin);
        }
        Ok(Self::new(next.clone()))
    }

    /// Replay (epoch ≤ current, or the current state again), fork (same epoch and another
    /// content, or next epoch and another previous hash), gap (epoch > current + 1).
    fn check_position(&self, next: &SignedGroupState) -> Result<(), GroupStateError> {
        let (current, found) = (self.state().epoch(), next.state().epoch());
        let fork = GroupStateError::Fork { epoch: found };
        if found < current || (found == current && next.hash() == self.hash) {
            return Err(GroupStateError::Replay { current, found });
        }
        if found == current {
            return Err(fork);
        }
        if found - current > 1 {
            return Err(GroupStateError::WrongEpoch { current, found });
        }
        if next.state().previous_hash() != &self.hash {
            return Err(fork);
        }
        Ok(())
    }

    /// The byte form for this client's encrypted local storage (the signed state).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.signed.to_bytes()
    }

    /// Restores a state this client verified earlier, from its own encrypted storage. Checks
    /// the encoding and the signature, not the history (which the client no longer holds).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let signed = SignedGroupState::from_bytes(bytes)?;
        if signed.signature_is_valid() {
            Ok(Self::new(signed))
        } else {
            Err(DecodeError::Malformed)
        }
    }
}

/// Whether `next` is `current` minus exactly `signer`, with nothing else changed except what
/// every change changes (epoch, previous hash, envelope secret).
fn is_leave(current: &GroupState, next: &GroupState, signer: &AccountPublicKey) -> bool {
    let mut expected = current.members().to_vec();
    let before = expected.len();
    expected.retain(|m| &m.account_key != signer);
    expected.len() + 1 == before
        && next.members() == expected.as_slice()
        && next.name() == current.name()
}

impl fmt::Debug for VerifiedGroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedGroupState")
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}
