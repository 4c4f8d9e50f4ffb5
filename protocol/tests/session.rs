//! Session behaviour through the public API: set-up, both directions, reordering, replay,
//! reflection, misbinding, persistence, sealing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kith_protocol::*;

#[test]
fn conversation_in_both_directions_through_sealed_envelopes() {
    let mut p = established_pair(1);
    for round in 0..5 {
        let text = format!("bob → alice {round}");
        let msg = p.bob_session.encrypt(text.as_bytes()).unwrap();
        let envelope = seal(&p.bob.certificate, &p.alice.certificate, &msg, &mut p.rng).unwrap();
        let opened = open(&p.alice.keys, &p.alice.certificate, &envelope).unwrap();
        assert_eq!(opened.sender, p.bob.certificate);
        let plain = p
            .alice_session
            .decrypt(&opened.sender, &opened.message, &mut p.rng)
            .unwrap();
        assert_eq!(plain, text.as_bytes());

        let text = format!("alice → bob {round}");
        let msg = p.alice_session.encrypt(text.as_bytes()).unwrap();
        assert!(
            matches!(msg, SessionMessage::Ratchet(_)),
            "after a reply Alice stops sending prekey messages"
        );
        let envelope = seal(&p.alice.certificate, &p.bob.certificate, &msg, &mut p.rng).unwrap();
        let opened = open(&p.bob.keys, &p.bob.certificate, &envelope).unwrap();
        let plain = p
            .bob_session
            .decrypt(&opened.sender, &opened.message, &mut p.rng)
            .unwrap();
        assert_eq!(plain, text.as_bytes());
    }
}

#[test]
fn initiator_keeps_sending_prekey_messages_until_it_hears_back() {
    let mut p = established_pair(2);
    let second = p.alice_session.encrypt(b"second").unwrap();
    let SessionMessage::Prekey(prekey) = &second else {
        panic!("expected a prekey message")
    };
    assert!(p.bob_session.matches(prekey));
    assert_eq!(
        p.bob_session
            .decrypt(&p.alice.certificate, &second, &mut p.rng)
            .unwrap(),
        b"second"
    );
}

#[test]
fn session_without_one_time_prekeys_uses_last_resort() {
    let mut rng = rng(3);
    let alice = Device::new(&mut rng);
    let bob = Device::new(&mut rng);
    let bundle = bob
        .last_resort_bundle()
        .verify(bob.certificate.account_key())
        .unwrap();
    let mut session =
        Session::initiate(&alice.keys, &alice.certificate, &bundle, &mut rng).unwrap();
    let SessionMessage::Prekey(prekey) = session.encrypt(b"hi").unwrap() else {
        panic!()
    };
    assert_eq!(prekey.one_time_prekey_id(), None);
    assert_eq!(prekey.kem_prekey_id(), bob.last_resort_kem.public().id());
    let (_, plain) = Session::respond(
        &bob.keys,
        &bob.certificate,
        &bob.prekeys_for(&prekey),
        &alice.certificate,
        &prekey,
        &mut rng,
    )
    .unwrap();
    assert_eq!(plain, b"hi");
}

#[test]
fn out_of_order_messages_decrypt_once_each() {
    let mut p = established_pair(4);
    let reply = p.bob_session.encrypt(b"ack").unwrap();
    p.alice_session
        .decrypt(&p.bob.certificate, &reply, &mut p.rng)
        .unwrap();
    let messages: Vec<_> = (0..10)
        .map(|i| p.alice_session.encrypt(&[i]).unwrap())
        .collect();
    for i in [9usize, 0, 5, 1, 2, 8, 3, 4, 7, 6] {
        let plain = p
            .bob_session
            .decrypt(&p.alice.certificate, &messages[i], &mut p.rng)
            .unwrap();
        assert_eq!(plain, [u8::try_from(i).unwrap()]);
    }
    assert_eq!(p.bob_session.skipped_keys(), 0);
    for message in &messages {
        assert_eq!(
            p.bob_session
                .decrypt(&p.alice.certificate, message, &mut p.rng),
            Err(DecryptError::Duplicate)
        );
    }
}

#[test]
fn replay_is_rejected_and_leaves_session_usable() {
    let mut p = established_pair(5);
    let msg = p.bob_session.encrypt(b"once").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&p.bob.certificate, &msg, &mut p.rng)
            .unwrap(),
        b"once"
    );
    assert!(
        p.alice_session
            .decrypt(&p.bob.certificate, &msg, &mut p.rng)
            .is_err()
    );
    let next = p.bob_session.encrypt(b"twice").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&p.bob.certificate, &next, &mut p.rng)
            .unwrap(),
        b"twice"
    );
}

#[test]
fn message_reflected_to_its_sender_fails() {
    let mut p = established_pair(6);
    let reply = p.bob_session.encrypt(b"ack").unwrap();
    p.alice_session
        .decrypt(&p.bob.certificate, &reply, &mut p.rng)
        .unwrap();
    let own = p.alice_session.encrypt(b"mine").unwrap();
    // Alice's own message, presented to her as if from Bob.
    assert!(
        p.alice_session
            .decrypt(&p.bob.certificate, &own, &mut p.rng)
            .is_err()
    );
}

#[test]
fn message_from_another_session_fails() {
    let mut p = established_pair(7);
    let mut q = established_pair(8);
    let foreign = q.bob_session.encrypt(b"other").unwrap();
    assert!(
        p.alice_session
            .decrypt(&p.bob.certificate, &foreign, &mut p.rng)
            .is_err()
    );
    let ok = p.bob_session.encrypt(b"still fine").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&p.bob.certificate, &ok, &mut q.rng)
            .unwrap(),
        b"still fine"
    );
}

#[test]
fn sender_certificate_must_be_the_session_peer() {
    let mut p = established_pair(9);
    let mallory = Device::new(&mut p.rng);
    let msg = p.bob_session.encrypt(b"hi").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&mallory.certificate, &msg, &mut p.rng),
        Err(DecryptError::WrongSender)
    );
}

#[test]
fn too_far_ahead_is_rejected() {
    let mut p = established_pair(10);
    let reply = p.bob_session.encrypt(b"ack").unwrap();
    p.alice_session
        .decrypt(&p.bob.certificate, &reply, &mut p.rng)
        .unwrap();
    let mut last = None;
    for _ in 0..=consts::MAX_SKIP + 1 {
        last = Some(p.alice_session.encrypt(b"x").unwrap());
    }
    let last = last.unwrap();
    assert_eq!(
        p.bob_session
            .decrypt(&p.alice.certificate, &last, &mut p.rng),
        Err(DecryptError::TooFarAhead)
    );
}

#[test]
fn persisted_session_continues() {
    let mut p = established_pair(11);
    let bytes = p.bob_session.to_bytes();
    let mut restored = Session::from_bytes(&bytes).unwrap();
    assert_eq!(restored.to_bytes()[..], bytes[..]);
    let msg = restored.encrypt(b"after restart").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&p.bob.certificate, &msg, &mut p.rng)
            .unwrap(),
        b"after restart"
    );
    let mut bad_version = bytes.to_vec();
    bad_version[0] = 99;
    assert!(matches!(
        Session::from_bytes(&bad_version),
        Err(DecodeError::UnsupportedVersion { found: 99 })
    ));
    for len in 0..bytes.len() {
        assert!(Session::from_bytes(&bytes[..len]).is_err());
    }
}

#[test]
fn envelope_for_another_device_does_not_open() {
    let mut p = established_pair(12);
    let carol = Device::new(&mut p.rng);
    let msg = p.alice_session.encrypt(b"for bob").unwrap();
    let envelope = seal(&p.alice.certificate, &p.bob.certificate, &msg, &mut p.rng).unwrap();
    assert_eq!(
        open(&carol.keys, &carol.certificate, &envelope).unwrap_err(),
        OpenError::Authentication
    );
}

#[test]
fn envelope_lengths_fall_in_buckets() {
    let mut p = established_pair(13);
    let reply = p.bob_session.encrypt(b"ack").unwrap();
    p.alice_session
        .decrypt(&p.bob.certificate, &reply, &mut p.rng)
        .unwrap();
    let lengths: Vec<usize> = [1usize, 10, 100]
        .iter()
        .map(|&n| {
            let msg = p.alice_session.encrypt(&vec![b'a'; n]).unwrap();
            seal(&p.alice.certificate, &p.bob.certificate, &msg, &mut p.rng)
                .unwrap()
                .len()
        })
        .collect();
    assert!(
        lengths.windows(2).all(|w| w[0] == w[1]),
        "short messages share one size: {lengths:?}"
    );
}

#[test]
fn respond_with_wrong_prekeys_fails() {
    let mut rng = rng(14);
    let alice = Device::new(&mut rng);
    let bob = Device::new(&mut rng);
    let bundle = bob.bundle().verify(bob.certificate.account_key()).unwrap();
    let mut session =
        Session::initiate(&alice.keys, &alice.certificate, &bundle, &mut rng).unwrap();
    let SessionMessage::Prekey(prekey) = session.encrypt(b"hi").unwrap() else {
        panic!()
    };
    let other = OneTimePrekeySecret::generate(999, &mut rng);
    let wrong = ResponderPrekeys {
        one_time_prekey: Some(&other),
        ..bob.prekeys_for(&prekey)
    };
    let result = Session::respond(
        &bob.keys,
        &bob.certificate,
        &wrong,
        &alice.certificate,
        &prekey,
        &mut rng,
    );
    assert_eq!(result.err(), Some(SessionCreationError::PrekeyMismatch));
    // The right prekeys but a claimed sender that is not Alice: the DH1 term differs.
    let mallory = Device::new(&mut rng);
    let result = Session::respond(
        &bob.keys,
        &bob.certificate,
        &bob.prekeys_for(&prekey),
        &mallory.certificate,
        &prekey,
        &mut rng,
    );
    assert!(matches!(
        result.err(),
        Some(SessionCreationError::Decrypt(DecryptError::Authentication))
    ));
}
