//! Sender keys (SPEC.md §14.5–14.6): ordering, replay, window, persistence, tampering.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::consts::{MAX_GROUP_SKIP, MAX_PLAINTEXT_LEN};
use crate::encoding::DecodeError;

/// Alice's sender key for the circle's epoch, Bob's copy of it, and `n` messages.
fn stream(seed: u64, n: usize) -> (Circle, OwnSenderKey, PeerSenderKey, Vec<GroupMessage>) {
    let mut circle = Circle::new(seed);
    let state = circle.state.state();
    let mut own = OwnSenderKey::generate(state.group_id(), state.epoch(), &mut circle.rng);
    let peer = PeerSenderKey::from_distribution(
        &own.distribution(),
        circle.alice.account.public_key(),
        circle.alice.device,
    );
    let sender = circle.alice.account.public_key();
    let messages = (0..n)
        .map(|i| {
            own.encrypt(
                (&sender, circle.alice.device),
                format!("message {i}").as_bytes(),
            )
            .unwrap()
        })
        .collect();
    (circle, own, peer, messages)
}

#[test]
fn messages_decrypt_in_order_and_replays_are_rejected() {
    let (_, _, mut peer, messages) = stream(20, 3);
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(message.iteration(), u32::try_from(i).unwrap());
        assert_eq!(
            &peer.decrypt(message).unwrap()[..],
            format!("message {i}").as_bytes()
        );
        let before = peer.to_bytes();
        assert_eq!(peer.decrypt(message), Err(GroupDecryptError::Duplicate));
        assert_eq!(peer.to_bytes(), before);
    }
}

#[test]
fn a_distribution_mid_stream_decrypts_only_later_messages() {
    let (circle, mut own, _, early) = stream(21, 2);
    let mut late = PeerSenderKey::from_distribution(
        &own.distribution(),
        circle.alice.account.public_key(),
        circle.alice.device,
    );
    let message = own
        .encrypt(
            (&circle.alice.account.public_key(), circle.alice.device),
            b"late",
        )
        .unwrap();
    assert_eq!(late.decrypt(&early[1]), Err(GroupDecryptError::Duplicate));
    assert_eq!(&late.decrypt(&message).unwrap()[..], b"late");
}

#[test]
fn messages_beyond_the_window_are_rejected() {
    let (circle, mut own, mut peer, _) = stream(22, 0);
    let sender = (&circle.alice.account.public_key(), circle.alice.device);
    let mut last = None;
    for _ in 0..=MAX_GROUP_SKIP + 1 {
        last = Some(own.encrypt(sender, b"x").unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.iteration(), MAX_GROUP_SKIP + 1);
    let before = peer.to_bytes();
    assert_eq!(peer.decrypt(&last), Err(GroupDecryptError::TooFarAhead));
    assert_eq!(peer.to_bytes(), before);
}

#[test]
fn the_window_edge_decrypts_and_stores_skipped_keys() {
    let (circle, mut own, mut peer, _) = stream(23, 0);
    let sender = (&circle.alice.account.public_key(), circle.alice.device);
    let messages: Vec<_> = (0..=MAX_GROUP_SKIP)
        .map(|_| own.encrypt(sender, b"x").unwrap())
        .collect();
    peer.decrypt(&messages[usize::try_from(MAX_GROUP_SKIP).unwrap()])
        .unwrap();
    assert_eq!(peer.skipped_len(), usize::try_from(MAX_GROUP_SKIP).unwrap());
    peer.decrypt(&messages[0]).unwrap();
    assert_eq!(
        peer.skipped_len(),
        usize::try_from(MAX_GROUP_SKIP).unwrap() - 1
    );
}

#[test]
fn messages_for_another_key_are_rejected_unchanged() {
    let (mut circle, _, mut peer, messages) = stream(24, 1);
    let state = circle.state.state();
    let mut other = OwnSenderKey::generate(state.group_id(), state.epoch(), &mut circle.rng);
    // Bob's key, claiming to be Alice: another key id and signing key.
    let forged = other
        .encrypt(
            (&circle.alice.account.public_key(), circle.alice.device),
            b"x",
        )
        .unwrap();
    assert_eq!(
        peer.decrypt(&forged),
        Err(GroupDecryptError::WrongSenderKey)
    );
    let mut same_id = forged.clone();
    same_id.header.key_id = messages[0].key_id();
    assert_eq!(
        peer.decrypt(&same_id),
        Err(GroupDecryptError::Authentication)
    );
    // The header's sender rewritten.
    let mut resent = messages[0].clone();
    resent.header.sender_account = circle.bob.account.public_key();
    assert_eq!(
        peer.decrypt(&resent),
        Err(GroupDecryptError::WrongSenderKey)
    );
    assert_eq!(&peer.decrypt(&messages[0]).unwrap()[..], b"message 0");
}

#[test]
fn oversized_plaintexts_are_refused() {
    let (circle, mut own, _, _) = stream(25, 0);
    let sender = (&circle.alice.account.public_key(), circle.alice.device);
    assert_eq!(
        own.encrypt(sender, &vec![0; MAX_PLAINTEXT_LEN + 1])
            .map(|_| ()),
        Err(GroupEncryptError::TooLarge {
            len: MAX_PLAINTEXT_LEN + 1,
            max: MAX_PLAINTEXT_LEN
        })
    );
    let largest = own.encrypt(sender, &vec![0; MAX_PLAINTEXT_LEN]).unwrap();
    assert_eq!(GroupMessage::from_bytes(&largest.to_bytes()), Ok(largest));
}

#[test]
fn every_single_bit_flip_of_a_message_is_rejected() {
    let (_, _, peer, messages) = stream(26, 1);
    let bytes = messages[0].to_bytes();
    let state = peer.to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let Ok(message) = GroupMessage::from_bytes(&flipped) else {
            continue;
        };
        let mut peer = PeerSenderKey::from_bytes(&state).unwrap();
        assert!(peer.decrypt(&message).is_err(), "bit {bit}");
        assert_eq!(peer.to_bytes(), state, "bit {bit}");
    }
}

#[test]
fn own_and_peer_keys_round_trip_and_reject_other_versions() {
    let (_, own, peer, _) = stream(27, 0);
    let own_bytes = own.to_bytes();
    assert_eq!(
        OwnSenderKey::from_bytes(&own_bytes).unwrap().to_bytes(),
        own_bytes
    );
    let mut bytes = peer.to_bytes().to_vec();
    assert_eq!(
        PeerSenderKey::from_bytes(&bytes).unwrap().to_bytes()[..],
        bytes[..]
    );
    bytes[0] = 9;
    assert!(matches!(
        PeerSenderKey::from_bytes(&bytes),
        Err(DecodeError::UnsupportedVersion { found: 9 })
    ));
}

#[test]
fn debug_shows_no_key_material() {
    let (_, own, peer, messages) = stream(28, 1);
    let distribution = own.distribution();
    let shown = format!("{own:?} {peer:?} {distribution:?} {:?}", messages[0]);
    let chain: String = distribution.chain_key.as_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!shown.contains(&chain), "{shown}");
    assert!(
        !shown.contains("chain_key") && !shown.contains("seed"),
        "{shown}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Messages delivered in a random order (with persistence at random points) each decrypt
    /// exactly once; a replay is rejected and leaves the key unchanged.
    #[test]
    fn random_reorderings_decrypt_each_message_once(
        order in Just((0..24usize).collect::<Vec<_>>()).prop_shuffle(),
        persist_at in proptest::collection::vec(any::<Index>(), 0..4),
        replay in any::<Index>(),
    ) {
        let (_, _, mut peer, messages) = stream(29, order.len());
        let persist_at: Vec<usize> = persist_at.iter().map(|i| i.index(order.len())).collect();
        for (step, &i) in order.iter().enumerate() {
            let plaintext = peer.decrypt(&messages[i]).unwrap();
            let expected = format!("message {i}");
            prop_assert_eq!(&plaintext[..], expected.as_bytes());
            if persist_at.contains(&step) {
                peer = PeerSenderKey::from_bytes(&peer.to_bytes()).unwrap();
            }
            let again = &messages[order[replay.index(step + 1)]];
            let before = peer.to_bytes();
            prop_assert_eq!(peer.decrypt(again), Err(GroupDecryptError::Duplicate));
            prop_assert_eq!(peer.to_bytes(), before);
        }
        prop_assert_eq!(peer.skipped_len(), 0);
    }

    /// The sending side persisted mid-stream continues the same chain.
    #[test]
    fn own_key_persistence_continues_the_chain(split in 0..8usize) {
        let (circle, mut own, mut peer, _) = stream(30, 0);
        let sender = (&circle.alice.account.public_key(), circle.alice.device);
        for i in 0..8 {
            if i == split {
                own = OwnSenderKey::from_bytes(&own.to_bytes()).unwrap();
            }
            let message = own.encrypt(sender, b"m").unwrap();
            prop_assert_eq!(message.iteration(), u32::try_from(i).unwrap());
            prop_assert!(peer.decrypt(&message).is_ok());
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = GroupMessage::from_bytes(&bytes);
        let _ = OwnSenderKey::from_bytes(&bytes);
        let _ = PeerSenderKey::from_bytes(&bytes);
        let _ = SignedGroupState::from_bytes(&bytes);
        let _ = VerifiedGroupState::from_bytes(&bytes);
        let _ = crate::Content::from_bytes(&bytes);
        for version in [1u8, 0x11] {
            let versioned = [&[version][..], &bytes].concat();
            if let Ok(message) = GroupMessage::from_bytes(&versioned) {
                prop_assert_eq!(message.to_bytes(), versioned.clone());
            }
            let _ = PeerSenderKey::from_bytes(&versioned);
            let _ = SignedGroupState::from_bytes(&versioned);
        }
    }
}
