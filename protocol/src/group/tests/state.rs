//! Group states: creation, changes and their verification (SPEC.md §14.1–14.4).

use super::*;
use crate::consts::MAX_GROUP_MEMBERS;
use crate::encoding::{BoundedVec, DecodeError};
use crate::group::secret::Secret32;

#[test]
fn genesis_verifies_and_round_trips() {
    let circle = Circle::new(1);
    let state = circle.state.state();
    assert_eq!(state.epoch(), 0);
    assert_eq!(state.previous_hash(), &[0u8; 32]);
    assert_eq!(state.members().len(), 3);
    assert!(state.is_admin(&circle.facilitator.account.public_key()));
    assert!(!state.is_admin(&circle.alice.account.public_key()));
    let bytes = circle.state.signed().to_bytes();
    let decoded = SignedGroupState::from_bytes(&bytes).unwrap();
    assert_eq!(&decoded, circle.state.signed());
    assert_eq!(decoded.hash(), circle.state.hash());
    assert_eq!(
        VerifiedGroupState::from_bytes(&bytes).unwrap(),
        circle.state
    );
}

#[test]
fn admin_changes_are_accepted() {
    let mut circle = Circle::new(2);
    let carol = circle.carol.member(false);
    let alice = circle.alice.account.public_key();
    let changes = [
        GroupChange::AddMembers(vec![carol]),
        GroupChange::Rename(name("Wednesday circle")),
        GroupChange::SetAdmins(vec![circle.facilitator.account.public_key(), alice]),
        GroupChange::RemoveMembers(vec![circle.bob.account.public_key()]),
    ];
    for (epoch, change) in (1..).zip(changes) {
        let next = circle.change(change, "facilitator").unwrap();
        let verified = circle.state.verify_successor(&next).unwrap();
        assert_eq!(verified.state().epoch(), epoch);
        assert_eq!(verified.state().previous_hash(), &circle.state.hash());
        assert_ne!(
            verified.state().envelope_secret(),
            circle.state.state().envelope_secret()
        );
        circle.state = verified;
    }
    let state = circle.state.state();
    assert_eq!(state.name(), "Wednesday circle");
    assert!(state.is_admin(&alice));
    assert!(state.member(&circle.carol.account.public_key()).is_some());
    assert!(state.member(&circle.bob.account.public_key()).is_none());
}

#[test]
fn any_member_may_leave() {
    let mut circle = Circle::new(3);
    let next = circle.change(GroupChange::Leave, "alice").unwrap();
    let verified = circle.state.verify_successor(&next).unwrap();
    assert!(
        verified
            .state()
            .member(&circle.alice.account.public_key())
            .is_none()
    );
    assert_eq!(verified.state().members().len(), 2);
}

#[test]
fn the_last_admin_cannot_leave_and_outsiders_cannot_change() {
    let mut circle = Circle::new(4);
    assert_eq!(
        circle.change(GroupChange::Leave, "facilitator"),
        Err(GroupStateError::Invalid)
    );
    assert_eq!(
        circle.change(GroupChange::Leave, "carol"),
        Err(GroupStateError::NotMember)
    );
}

/// A state forged by `signer` from the current one with `edit` applied, as a malicious
/// client would sign it (bypassing `successor`'s checks).
fn forge(circle: &mut Circle, who: &str, edit: impl FnOnce(&mut GroupState)) -> SignedGroupState {
    let mut next = circle.state.state().clone();
    next.epoch += 1;
    next.previous_hash = circle.state.hash();
    next.envelope_secret = Secret32::random(&mut circle.rng);
    edit(&mut next);
    let signer = match who {
        "alice" => &circle.alice.account,
        "carol" => &circle.carol.account,
        _ => &circle.facilitator.account,
    };
    SignedGroupState::sign(next, signer).unwrap()
}

#[test]
fn non_admin_changes_are_rejected() {
    let mut circle = Circle::new(5);
    let carol = circle.carol.member(false);
    assert_eq!(
        circle.change(GroupChange::AddMembers(vec![carol.clone()]), "alice"),
        Err(GroupStateError::NotAdmin)
    );
    let bob = circle.bob.account.public_key();
    let forged = [
        forge(&mut circle, "alice", |s| push(s, carol.clone())),
        forge(&mut circle, "alice", |s| s.name = name("mine now")),
        forge(&mut circle, "alice", |s| {
            retain(s, |m| m.account_key != bob)
        }),
        // Alice leaves and renames in one go: not a pure leave.
        forge(&mut circle, "alice", |s| {
            retain(s, |m| m.handle.as_str() != "alice");
            s.name = name("bye");
        }),
        // Alice leaves and makes Bob an admin.
        forge(&mut circle, "alice", |s| {
            retain(s, |m| m.handle.as_str() != "alice");
            set_admin(s, "bob");
        }),
        // An outsider removes itself from a group it is not in (nothing changes).
        forge(&mut circle, "carol", |_| {}),
        forge(&mut circle, "carol", |s| push(s, carol.clone())),
    ];
    for next in forged {
        assert_eq!(
            circle.state.verify_successor(&next),
            Err(GroupStateError::NotAdmin)
        );
    }
}

fn push(state: &mut GroupState, member: Member) {
    let mut members = state.members().to_vec();
    members.push(member);
    state.members = BoundedVec::new(members).unwrap();
}

fn retain(state: &mut GroupState, keep: impl Fn(&Member) -> bool) {
    let mut members = state.members().to_vec();
    members.retain(keep);
    state.members = BoundedVec::new(members).unwrap();
}

fn set_admin(state: &mut GroupState, handle: &str) {
    let mut members = state.members().to_vec();
    for m in &mut members {
        m.admin |= m.handle.as_str() == handle;
    }
    state.members = BoundedVec::new(members).unwrap();
}

#[test]
fn replays_forks_gaps_and_other_groups_are_rejected() {
    let mut circle = Circle::new(6);
    let genesis = circle.state.clone();
    let first = circle
        .change(GroupChange::Rename(name("one")), "facilitator")
        .unwrap();
    let rival = circle
        .change(GroupChange::Rename(name("two")), "facilitator")
        .unwrap();
    circle.state = genesis.verify_successor(&first).unwrap();
    let second = circle
        .change(GroupChange::Rename(name("three")), "facilitator")
        .unwrap();
    // The current state again, and an older one.
    assert_eq!(
        circle.state.verify_successor(&first),
        Err(GroupStateError::Replay {
            current: 1,
            found: 1
        })
    );
    assert_eq!(
        circle.state.verify_successor(genesis.signed()),
        Err(GroupStateError::Replay {
            current: 1,
            found: 0
        })
    );
    // Another state of the same epoch.
    assert_eq!(
        circle.state.verify_successor(&rival),
        Err(GroupStateError::Fork { epoch: 1 })
    );
    // The next epoch, but built on the rival.
    let rival_state = genesis.verify_successor(&rival).unwrap();
    let on_rival = rival_state
        .successor(
            GroupChange::Rename(name("x")),
            &circle.facilitator.account,
            &mut circle.rng,
        )
        .unwrap();
    assert_eq!(
        circle.state.verify_successor(&on_rival),
        Err(GroupStateError::Fork { epoch: 2 })
    );
    // A gap: epoch 2 offered to a member at epoch 0.
    assert_eq!(
        genesis.verify_successor(&second),
        Err(GroupStateError::WrongEpoch {
            current: 0,
            found: 2
        })
    );
    // Another group.
    let other = Circle::new(7);
    assert_eq!(
        circle.state.verify_successor(other.state.signed()),
        Err(GroupStateError::WrongGroup)
    );
    assert!(circle.state.verify_successor(&second).is_ok());
}

#[test]
fn tampered_signatures_are_rejected() {
    let mut circle = Circle::new(8);
    let next = circle
        .change(GroupChange::Rename(name("renamed")), "facilitator")
        .unwrap();
    let mut bytes = next.to_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = SignedGroupState::from_bytes(&bytes).unwrap();
    assert_eq!(
        circle.state.verify_successor(&tampered),
        Err(GroupStateError::BadSignature)
    );
    assert_eq!(tampered.verify_genesis(), Err(GroupStateError::NotGenesis));
    assert_eq!(
        VerifiedGroupState::from_bytes(&bytes),
        Err(DecodeError::Malformed)
    );
    // A signature by another key than the named signer.
    let mut forged = next.clone();
    forged.signer = circle.alice.account.public_key();
    let _ = &mut forged;
    assert_eq!(
        circle.state.verify_successor(&forged),
        Err(GroupStateError::BadSignature)
    );
}

#[test]
fn genesis_must_be_a_genesis_signed_by_an_admin() {
    let mut circle = Circle::new(9);
    let next = circle
        .change(GroupChange::Rename(name("renamed")), "facilitator")
        .unwrap();
    assert_eq!(next.verify_genesis(), Err(GroupStateError::NotGenesis));
    let mut genesis = circle.state.state().clone();
    genesis.group_id = GroupId::random(&mut circle.rng);
    let by_alice = SignedGroupState::sign(genesis, &circle.alice.account).unwrap();
    assert_eq!(by_alice.verify_genesis(), Err(GroupStateError::NotAdmin));
}

#[test]
fn invitations_are_accepted_from_the_inviting_admin_only() {
    let mut circle = Circle::new(10);
    let carol_member = circle.carol.member(false);
    let next = circle
        .change(GroupChange::AddMembers(vec![carol_member]), "facilitator")
        .unwrap();
    let (carol, facilitator, alice) = (
        circle.carol.account.public_key(),
        circle.facilitator.account.public_key(),
        circle.alice.account.public_key(),
    );
    let accepted = next.accept_invitation(&carol, &facilitator).unwrap();
    assert_eq!(accepted.state().epoch(), 1);
    assert_eq!(accepted.hash(), next.hash());
    // Alice forwards it: not the signer.
    assert_eq!(
        next.accept_invitation(&carol, &alice),
        Err(GroupStateError::NotAdmin)
    );
    // The state does not list the receiver.
    assert_eq!(
        circle
            .state
            .signed()
            .accept_invitation(&carol, &facilitator),
        Err(GroupStateError::NotMember)
    );
    // Signed by a member who is not an admin of it (a leave).
    let leave = circle.change(GroupChange::Leave, "alice").unwrap();
    let bob = circle.bob.account.public_key();
    assert_eq!(
        leave.accept_invitation(&bob, &alice),
        Err(GroupStateError::NotAdmin)
    );
}

#[test]
fn malformed_states_cannot_be_created_or_decoded() {
    let mut circle = Circle::new(11);
    let alice = circle.alice.member(false);
    let duplicate_key = Member {
        handle: Handle::parse("alice2").unwrap(),
        ..alice.clone()
    };
    let duplicate_handle = Member {
        account_key: circle.carol.account.public_key(),
        ..alice.clone()
    };
    for extra in [duplicate_key, duplicate_handle] {
        assert_eq!(
            circle.change(GroupChange::AddMembers(vec![extra]), "facilitator"),
            Err(GroupStateError::Invalid)
        );
    }
    assert_eq!(
        circle.change(GroupChange::SetAdmins(vec![]), "facilitator"),
        Err(GroupStateError::Invalid)
    );
    let outsider = circle.carol.account.public_key();
    assert_eq!(
        circle.change(GroupChange::RemoveMembers(vec![outsider]), "facilitator"),
        Err(GroupStateError::Invalid)
    );
    let many = (0..MAX_GROUP_MEMBERS)
        .map(|i| Member {
            account_key: AccountKeyPair::generate(&mut circle.rng).public_key(),
            handle: Handle::parse(&format!("member{i}")).unwrap(),
            admin: false,
        })
        .collect();
    assert_eq!(
        circle.change(GroupChange::AddMembers(many), "facilitator"),
        Err(GroupStateError::Invalid)
    );

    // A state without admin, encoded by hand with a valid signature, does not decode.
    let mut no_admin = circle.state.state().clone();
    retain(&mut no_admin, |m| !m.admin);
    let forged = SignedGroupState {
        version: crate::consts::GROUP_STATE_VERSION,
        signer: circle.facilitator.account.public_key(),
        signature: circle.facilitator.account.sign(&no_admin.signed_bytes()),
        state: no_admin,
    };
    assert_eq!(
        SignedGroupState::from_bytes(&forged.to_bytes()),
        Err(DecodeError::Malformed)
    );
    let mut bytes = circle.state.signed().to_bytes().to_vec();
    bytes[0] = 2;
    assert_eq!(
        SignedGroupState::from_bytes(&bytes),
        Err(DecodeError::UnsupportedVersion { found: 2 })
    );
}

#[test]
fn debug_shows_no_secret_name_or_handle() {
    let circle = Circle::new(12);
    let shown = format!("{:?} {:?}", circle.state, circle.state.state().members());
    for hidden in ["Tuesday", "facilitator", "alice", "bob"] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    let secret: String = circle
        .state
        .state()
        .envelope_secret()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!shown.contains(&secret[..8]));
    assert!(shown.contains("name_len: 14"));
}
