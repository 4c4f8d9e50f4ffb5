//! Group envelopes (SPEC.md §14.7) and removal (§14.8).

use proptest::prelude::*;

use super::*;
use crate::consts::{GROUP_ENVELOPE_VERSION, MAX_BODY_LEN, PROTOCOL_VERSION};
use crate::content::{Body, Content};
use crate::padding::padded_len;

/// Alice's sender key for `state` and a text content sealed for the group.
fn send(circle: &mut Circle, state: &VerifiedGroupState) -> (PeerSenderKey, GroupMessage, Vec<u8>) {
    let group = state.state();
    let mut own = OwnSenderKey::generate(group.group_id(), group.epoch(), &mut circle.rng);
    let peer = PeerSenderKey::from_distribution(
        &own.distribution(),
        circle.alice.account.public_key(),
        circle.alice.device,
    );
    let content = Content {
        message_id: [7; 16],
        sent_at: 1_700_000_000,
        sender: circle.alice.handle.clone(),
        body: Body::Text {
            text: BoundedString::new("see you all tonight").unwrap(),
        },
    };
    let sender = (&circle.alice.account.public_key(), circle.alice.device);
    let message = own.encrypt(sender, &content.to_bytes()).unwrap();
    let envelope = seal_group(state, &message, &mut circle.rng).unwrap();
    (peer, message, envelope)
}

#[test]
fn envelopes_open_to_the_message_and_hide_the_group() {
    let mut circle = Circle::new(40);
    let state = circle.state.clone();
    let (mut peer, message, envelope) = send(&mut circle, &state);
    assert_eq!(envelope[0], GROUP_ENVELOPE_VERSION);
    assert_ne!(envelope[0], PROTOCOL_VERSION);
    assert_eq!(
        envelope.len(),
        1 + 24 + padded_len(message.to_bytes().len()) + 16
    );
    let group_id = state.state().group_id();
    assert!(!envelope.windows(16).any(|w| w == group_id.as_bytes()));
    let opened = open_group(&state, &envelope).unwrap();
    assert_eq!(opened, message);
    let content = Content::from_bytes(&peer.decrypt(&opened).unwrap()).unwrap();
    assert_eq!(content.body.text(), "see you all tonight");
    // Another group's state does not open it.
    let other = Circle::new(41);
    assert_eq!(
        open_group(&other.state, &envelope),
        Err(GroupOpenError::Authentication)
    );
}

#[test]
fn sealing_refuses_a_message_of_another_epoch() {
    let mut circle = Circle::new(42);
    let genesis = circle.state.clone();
    let (_, message, _) = send(&mut circle, &genesis);
    let next = circle
        .change(GroupChange::Rename(name("renamed")), "facilitator")
        .unwrap();
    let next = genesis.verify_successor(&next).unwrap();
    assert_eq!(
        seal_group(&next, &message, &mut circle.rng),
        Err(GroupSealError::WrongGroupState)
    );
}

#[test]
fn a_removed_member_can_read_nothing_after_removal() {
    let mut circle = Circle::new(43);
    let before = circle.state.clone();
    // Bob holds the epoch-0 state and Alice's epoch-0 sender key.
    let (mut bob_old_key, _, old_envelope) = send(&mut circle, &before);
    assert!(
        bob_old_key
            .decrypt(&open_group(&before, &old_envelope).unwrap())
            .is_ok()
    );
    // The facilitator removes Bob; Alice moves to epoch 1 with a fresh sender key.
    let bob = circle.bob.account.public_key();
    let next = circle
        .change(GroupChange::RemoveMembers(vec![bob]), "facilitator")
        .unwrap();
    let after = before.verify_successor(&next).unwrap();
    let (mut alice_new_key, message, envelope) = send(&mut circle, &after);
    // Bob cannot open the envelope with the state he holds...
    assert_eq!(
        open_group(&before, &envelope),
        Err(GroupOpenError::Authentication)
    );
    // ...nor decrypt the message even if he obtained it: his key is epoch 0's.
    assert_eq!(
        bob_old_key.decrypt(&message),
        Err(GroupDecryptError::WrongSenderKey)
    );
    // A remaining member can.
    assert!(
        alice_new_key
            .decrypt(&open_group(&after, &envelope).unwrap())
            .is_ok()
    );
}

#[test]
fn every_single_bit_flip_of_an_envelope_is_rejected() {
    let mut circle = Circle::new(44);
    let state = circle.state.clone();
    let (_, _, envelope) = send(&mut circle, &state);
    for bit in 0..envelope.len() * 8 {
        let mut flipped = envelope.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(open_group(&state, &flipped).is_err(), "bit {bit}");
    }
    assert_eq!(
        open_group(&state, &envelope[..41]),
        Err(GroupOpenError::Authentication)
    );
    assert_eq!(
        open_group(&state, &envelope[..40]),
        Err(GroupOpenError::Malformed)
    );
    assert_eq!(
        open_group(&state, &vec![GROUP_ENVELOPE_VERSION; MAX_BODY_LEN + 1]),
        Err(GroupOpenError::Malformed)
    );
}

#[test]
fn group_bodies_round_trip_in_contents_and_debug_shows_no_secret() {
    let mut circle = Circle::new(45);
    let state = circle.state.state();
    let own = OwnSenderKey::generate(state.group_id(), state.epoch(), &mut circle.rng);
    for body in [
        Body::SenderKey(own.distribution()),
        Body::GroupUpdate(circle.state.signed().clone()),
    ] {
        let content = Content {
            message_id: [1; 16],
            sent_at: 5,
            sender: circle.facilitator.handle.clone(),
            body,
        };
        assert_eq!(
            Content::from_bytes(&content.to_bytes()),
            Ok(content.clone())
        );
        assert_eq!(content.body.text(), "");
        assert!(!content.body.is_text());
        let shown = format!("{content:?}");
        assert!(
            !shown.contains("facilitator") && !shown.contains("Tuesday"),
            "{shown}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let circle = Circle::new(46);
        let envelope = [&[GROUP_ENVELOPE_VERSION][..], &bytes].concat();
        prop_assert!(open_group(&circle.state, &envelope).is_err());
        prop_assert!(open_group(&circle.state, &bytes).is_err());
    }
}
