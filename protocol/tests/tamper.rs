//! The tampering policy, checked exhaustively: every single-bit flip of a session message or a
//! sealed envelope is rejected, every truncation and every over-long input is rejected, a
//! message of another session is rejected, small-order X25519 keys are refused wherever a peer
//! can choose one without a signature, and a failed decryption leaves the session exactly as it
//! was (compared through [`Session::to_bytes`]).

// Helpers outside `#[test]` functions are test code too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use kith_protocol::*;

/// A short plaintext, so that the exhaustive loops stay quick.
const PLAINTEXT: &[u8; 20] = b"twenty bytes of text";

/// Byte range of the first 32-byte key in an encoded `SessionMessage`: after the version byte
/// and the one-byte variant tag comes `ephemeral_key` (tag 0, `PrekeyInit`) or `ratchet_key`
/// (tag 1, the ratchet header).
const FIRST_KEY: core::ops::Range<usize> = 2..34;

/// Byte range of the ephemeral key `E` in a sealed envelope (after the version byte).
const ENVELOPE_EPHEMERAL: core::ops::Range<usize> = 1..33;

/// Encodings of X25519 points of small order: libsodium's blocklist (0, 1, the two points of
/// order 8, p - 1, p, p + 1), each also with the top bit set, which X25519 ignores.
fn small_order_points() -> Vec<[u8; 32]> {
    let order_8_a = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    let order_8_b = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ];
    let near_p = |low: u8| {
        let mut point = [0xff; 32];
        point[0] = low;
        point[31] = 0x7f;
        point
    };
    let mut one = [0; 32];
    one[0] = 1;
    let base = [
        [0; 32],
        one,
        order_8_a,
        order_8_b,
        near_p(0xec),
        near_p(0xed),
        near_p(0xee),
    ];
    base.iter()
        .flat_map(|point| {
            let mut high = *point;
            high[31] |= 0x80;
            [*point, high]
        })
        .collect()
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

fn with_key(bytes: &[u8], range: core::ops::Range<usize>, key: &[u8; 32]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[range].copy_from_slice(key);
    out
}

fn state(session: &Session) -> Vec<u8> {
    session.to_bytes().to_vec()
}

/// Alice's first message to Bob (a prekey message), before Bob has a session.
struct FirstContact {
    alice: Device,
    bob: Device,
    message: SessionMessage,
    rng: rand_chacha::ChaCha20Rng,
}

impl FirstContact {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let alice = Device::new(&mut rng);
        let bob = Device::new(&mut rng);
        let bundle = bob.bundle().verify(bob.certificate.account_key()).unwrap();
        let mut session =
            Session::initiate(&alice.keys, &alice.certificate, &bundle, &mut rng).unwrap();
        let message = session.encrypt(PLAINTEXT).unwrap();
        Self {
            alice,
            bob,
            message,
            rng,
        }
    }

    fn prekey_message(&self) -> &PrekeyMessage {
        let SessionMessage::Prekey(prekey) = &self.message else {
            panic!("the first message is a prekey message")
        };
        prekey
    }

    /// Bob's responder path for `message`, with the secrets named by the *untampered* message
    /// (`respond` is pure, so one set of secrets serves every attempt).
    fn respond(&mut self, message: &PrekeyMessage) -> Result<Vec<u8>, SessionCreationError> {
        let prekeys = self.bob.prekeys_for(self.prekey_message());
        Session::respond(
            &self.bob.keys,
            &self.bob.certificate,
            &prekeys,
            &self.alice.certificate,
            message,
            &mut self.rng,
        )
        .map(|(_, plaintext)| plaintext)
    }
}

/// Whether the ephemeral key's top bit is `bit` of an encoded prekey `SessionMessage`.
fn is_ephemeral_key_top_bit(bit: usize) -> bool {
    bit == (FIRST_KEY.end - 1) * 8 + 7
}

#[test]
fn small_order_points_give_an_all_zero_shared_secret() {
    // Checks the fixture itself, independently of the library.
    let secret = x25519_dalek::StaticSecret::from([0x42; 32]);
    for point in small_order_points() {
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(point));
        assert!(!shared.was_contributory(), "{point:02x?}");
        assert_eq!(shared.as_bytes(), &[0; 32]);
    }
}

/// Byte range of the ML-KEM ciphertext in an encoded prekey `SessionMessage`.
const KEM_CIPHERTEXT: core::ops::Range<usize> = FIRST_KEY.end..FIRST_KEY.end + 1088;

/// Flips each of `bits` in Alice's first message and requires Bob's responder path to reject
/// every decodable result; then the untampered message must still be accepted. Returns how
/// many flipped messages decoded.
fn assert_prekey_flips_rejected(first: &mut FirstContact, bits: &[usize]) -> usize {
    let bytes = first.message.to_bytes();
    assert_eq!(
        bytes[..2],
        [consts::PROTOCOL_VERSION, 0],
        "version, tag Prekey"
    );
    assert_eq!(bytes[FIRST_KEY], first.prekey_message().base_key()[..]);
    let mut decoded = 0;
    for &bit in bits {
        let Ok(tampered) = SessionMessage::from_bytes(&flip(&bytes, bit)) else {
            continue;
        };
        decoded += 1;
        match &tampered {
            SessionMessage::Prekey(prekey) => {
                assert!(first.respond(prekey).is_err(), "flip of bit {bit} accepted");
            }
            SessionMessage::Ratchet(_) => panic!("flip of bit {bit} decodes as a ratchet message"),
        }
    }
    let original = first.prekey_message().clone();
    assert_eq!(first.respond(&original).unwrap(), PLAINTEXT);
    decoded
}

/// Every bit outside the ML-KEM ciphertext, and a spread sample of the ciphertext's bits (all
/// bits of its first and last four bytes, one bit of every eighth byte, cycling through the
/// bit positions). Each attempt costs a full `respond` (four X25519 and an ML-KEM
/// decapsulation), about 20 ms in a debug build, so the ciphertext's 8704 bits are covered by
/// [`every_bit_flip_of_a_prekey_message_is_rejected_exhaustively`] instead.
#[test]
fn every_bit_flip_of_a_prekey_message_is_rejected() {
    let mut first = FirstContact::new(100);
    let len = first.message.to_bytes().len();
    let bits: Vec<usize> = (0..len * 8)
        .filter(|bit| {
            let byte = bit / 8;
            let offset = byte.wrapping_sub(KEM_CIPHERTEXT.start);
            !KEM_CIPHERTEXT.contains(&byte)
                || offset < 4
                || offset >= KEM_CIPHERTEXT.len() - 4
                || (offset % 8 == 0 && bit % 8 == (offset / 8) % 8)
        })
        .collect();
    let decoded = assert_prekey_flips_rejected(&mut first, &bits);
    assert!(decoded >= 500, "only {decoded} flips decoded");
}

/// All of the message's bits. About 4 minutes in a debug build, a few seconds with
/// `cargo test -p kith-protocol --test tamper -- --include-ignored exhaustively` (about a minute).
#[test]
#[ignore = "about a minute; the default test flips every bit outside the ML-KEM ciphertext and a sample inside it"]
fn every_bit_flip_of_a_prekey_message_is_rejected_exhaustively() {
    let mut first = FirstContact::new(100);
    let bits: Vec<usize> = (0..first.message.to_bytes().len() * 8).collect();
    let decoded = assert_prekey_flips_rejected(&mut first, &bits);
    // The KEM ciphertext alone is 1088 bytes whose flips all decode.
    assert!(
        decoded >= KEM_CIPHERTEXT.len() * 8,
        "only {decoded} flips decoded"
    );
}

#[test]
/// Regression: X25519 ignores the top bit of a public key, so without the canonical-encoding
/// check this flip was accepted and gave a session with another base key (defeating base-key
/// replay detection).
fn prekey_message_with_the_top_bit_of_its_ephemeral_key_flipped_is_rejected() {
    let mut first = FirstContact::new(101);
    let bytes = first.message.to_bytes();
    let bit = (0..bytes.len() * 8)
        .find(|&bit| is_ephemeral_key_top_bit(bit))
        .unwrap();
    let SessionMessage::Prekey(tampered) = SessionMessage::from_bytes(&flip(&bytes, bit)).unwrap()
    else {
        panic!("still a prekey message")
    };
    assert_ne!(tampered.base_key(), first.prekey_message().base_key());
    assert!(first.respond(&tampered).is_err());
}

/// Flips every bit of `message`, delivers each decodable result to `session` and requires an
/// error and an unchanged session; then the untampered message must still decrypt.
fn assert_every_flip_rejected(
    session: &mut Session,
    sender: &VerifiedCertificate,
    message: &SessionMessage,
    rng: &mut rand_chacha::ChaCha20Rng,
) {
    let bytes = message.to_bytes();
    let before = state(session);
    let mut decoded = 0;
    for bit in 0..bytes.len() * 8 {
        let Ok(tampered) = SessionMessage::from_bytes(&flip(&bytes, bit)) else {
            continue;
        };
        decoded += 1;
        assert!(
            session.decrypt(sender, &tampered, rng).is_err(),
            "flip of bit {bit} accepted"
        );
        assert!(
            state(session) == before,
            "flip of bit {bit} changed the session"
        );
    }
    // Key, header and ciphertext flips decode; only some varint and tag flips do not.
    assert!(
        decoded * 2 > bytes.len() * 8,
        "only {decoded} flips decoded"
    );
    assert_eq!(session.decrypt(sender, message, rng).unwrap(), PLAINTEXT);
}

#[test]
fn every_bit_flip_of_a_ratchet_message_is_rejected() {
    let mut p = established_pair(102);
    let bob = p.bob.certificate.clone();

    // Opens a new receiving chain (a DH ratchet step on Alice's side).
    let first = p.bob_session.encrypt(PLAINTEXT).unwrap();
    assert_eq!(
        first.to_bytes()[..2],
        [consts::PROTOCOL_VERSION, 1],
        "tag Ratchet"
    );
    assert_every_flip_rejected(&mut p.alice_session, &bob, &first, &mut p.rng);

    // The next message of the current receiving chain.
    let second = p.bob_session.encrypt(PLAINTEXT).unwrap();
    assert_every_flip_rejected(&mut p.alice_session, &bob, &second, &mut p.rng);

    // A message whose key was skipped and stored.
    let skipped = p.bob_session.encrypt(PLAINTEXT).unwrap();
    let later = p.bob_session.encrypt(b"later").unwrap();
    p.alice_session.decrypt(&bob, &later, &mut p.rng).unwrap();
    assert_eq!(p.alice_session.skipped_keys(), 1);
    assert_every_flip_rejected(&mut p.alice_session, &bob, &skipped, &mut p.rng);
    assert_eq!(p.alice_session.skipped_keys(), 0);

    // Alice → Bob after she heard back: a ratchet message opening a new chain on Bob's side.
    let reply = p.alice_session.encrypt(PLAINTEXT).unwrap();
    let alice = p.alice.certificate.clone();
    assert_every_flip_rejected(&mut p.bob_session, &alice, &reply, &mut p.rng);
}

/// Policy for a *repeated* prekey message (the initiator has not heard back yet) that reaches
/// a responder that already has the session: the session matches it by the raw ephemeral key
/// and decrypts the ratchet message inside. The rest of the agreement data (KEM ciphertext,
/// prekey ids) is no longer used, so flips there change nothing the receiver acts on: they are
/// accepted and yield the authentic plaintext, as in Signal. Every other flip is rejected and
/// leaves the session unchanged.
#[test]
fn bit_flips_of_a_repeated_prekey_message_never_change_what_is_decrypted() {
    let mut p = established_pair(103);
    let alice = p.alice.certificate.clone();
    let second = p.alice_session.encrypt(PLAINTEXT).unwrap();
    assert!(
        matches!(second, SessionMessage::Prekey(_)),
        "Alice has not heard back: still a prekey message"
    );
    let bytes = second.to_bytes();
    // A prekey message ends with its ratchet message: ratchet key 32 || PN 0 || N 1 ||
    // ciphertext length || ciphertext. Between the ephemeral key and it lie the KEM ciphertext
    // and the prekey ids, which a session that already exists does not use.
    let ratchet_len = 32 + 1 + 1 + 1 + PLAINTEXT.len() + 16;
    let unused = FIRST_KEY.end..bytes.len() - ratchet_len;
    let before = state(&p.bob_session);
    let mut accepted = Vec::new();
    for bit in 0..bytes.len() * 8 {
        let Ok(tampered) = SessionMessage::from_bytes(&flip(&bytes, bit)) else {
            continue;
        };
        match p.bob_session.decrypt(&alice, &tampered, &mut p.rng) {
            Ok(plaintext) => {
                assert_eq!(plaintext, PLAINTEXT, "flip of bit {bit}");
                accepted.push(bit);
                p.bob_session = Session::from_bytes(&before).unwrap();
            }
            Err(_) => assert!(state(&p.bob_session) == before, "bit {bit} changed state"),
        }
    }
    assert!(
        accepted.iter().all(|bit| unused.contains(&(bit / 8))),
        "accepted flips outside the unused agreement data: {accepted:?}"
    );
    assert_eq!(
        p.bob_session.decrypt(&alice, &second, &mut p.rng).unwrap(),
        PLAINTEXT
    );
}

#[test]
fn every_bit_flip_of_a_sealed_envelope_is_rejected() {
    let mut p = established_pair(104);
    let message = p.bob_session.encrypt(PLAINTEXT).unwrap();
    let envelope = seal(
        &p.bob.certificate,
        &p.alice.certificate,
        &message,
        &mut p.rng,
    )
    .unwrap();
    assert!(envelope.len() >= 256);
    for bit in 0..envelope.len() * 8 {
        let tampered = flip(&envelope, bit);
        let error = open(&p.alice.keys, &p.alice.certificate, &tampered).unwrap_err();
        if bit < 8 {
            assert_eq!(error, OpenError::UnsupportedVersion { found: tampered[0] });
        } else {
            assert_eq!(error, OpenError::Authentication, "flip of bit {bit}");
        }
    }
    let opened = open(&p.alice.keys, &p.alice.certificate, &envelope).unwrap();
    assert_eq!(opened.sender, p.bob.certificate);
    assert_eq!(
        p.alice_session
            .decrypt(&opened.sender, &opened.message, &mut p.rng)
            .unwrap(),
        PLAINTEXT
    );
}

#[test]
fn messages_of_another_session_are_rejected_without_changing_state() {
    let mut p = established_pair(105);
    let mut q = established_pair(106);
    let prekey = q.alice_session.encrypt(PLAINTEXT).unwrap();
    let ratchet = q.bob_session.encrypt(PLAINTEXT).unwrap();
    assert!(matches!(prekey, SessionMessage::Prekey(_)));

    let bob_before = state(&p.bob_session);
    let alice_cert = p.alice.certificate.clone();
    assert_eq!(
        p.bob_session.decrypt(&alice_cert, &prekey, &mut p.rng),
        Err(DecryptError::OtherSession)
    );
    // q's ratchet message presented as if from p's Alice (the sender is not authenticated by
    // the session message itself, only by the envelope and the AD).
    assert_eq!(
        p.bob_session.decrypt(&alice_cert, &ratchet, &mut p.rng),
        Err(DecryptError::Authentication)
    );
    // With q's real certificate: not this session's peer.
    assert_eq!(
        p.bob_session
            .decrypt(&q.alice.certificate, &prekey, &mut p.rng),
        Err(DecryptError::WrongSender)
    );
    assert!(state(&p.bob_session) == bob_before);

    let alice_before = state(&p.alice_session);
    let bob_cert = p.bob.certificate.clone();
    assert_eq!(
        p.alice_session.decrypt(&bob_cert, &ratchet, &mut p.rng),
        Err(DecryptError::Authentication)
    );
    assert!(state(&p.alice_session) == alice_before);

    // An envelope sealed to q's Bob does not open for p's Bob.
    let envelope = seal(
        &q.alice.certificate,
        &q.bob.certificate,
        &prekey,
        &mut q.rng,
    )
    .unwrap();
    assert_eq!(
        open(&p.bob.keys, &p.bob.certificate, &envelope).unwrap_err(),
        OpenError::Authentication
    );

    // Both sessions still work.
    let reply = p.bob_session.encrypt(b"still fine").unwrap();
    assert_eq!(
        p.alice_session
            .decrypt(&bob_cert, &reply, &mut p.rng)
            .unwrap(),
        b"still fine"
    );
    let answer = p.alice_session.encrypt(b"indeed").unwrap();
    assert_eq!(
        p.bob_session
            .decrypt(&alice_cert, &answer, &mut p.rng)
            .unwrap(),
        b"indeed"
    );
}

// Small-order keys. A peer chooses an X25519 key without anyone's signature in three places,
// each tested below: the envelope's ephemeral key `E`, the ratchet key in a message header, and
// the ephemeral key `EK_A` of a prekey message. The other peer keys (identity key in a device
// certificate, signed prekey in a bundle) are signed, and the public API builds them only from
// secrets, whose public keys are never of small order; so a certificate or bundle carrying a
// small-order key cannot be made, and `seal`/`initiate` to one cannot be tested here (`seal`
// maps that case to `SealError::NonContributoryKey`, `initiate` to
// `SessionCreationError::NonContributoryKey`).

#[test]
fn envelope_with_a_small_order_ephemeral_key_fails_authentication() {
    let mut p = established_pair(107);
    let message = p.bob_session.encrypt(PLAINTEXT).unwrap();
    let envelope = seal(
        &p.bob.certificate,
        &p.alice.certificate,
        &message,
        &mut p.rng,
    )
    .unwrap();
    for point in small_order_points() {
        let tampered = with_key(&envelope, ENVELOPE_EPHEMERAL, &point);
        assert_eq!(
            open(&p.alice.keys, &p.alice.certificate, &tampered).unwrap_err(),
            OpenError::Authentication,
            "{point:02x?}"
        );
    }
}

#[test]
fn ratchet_message_with_a_small_order_ratchet_key_is_rejected() {
    let mut p = established_pair(108);
    let bob = p.bob.certificate.clone();
    let message = p.bob_session.encrypt(PLAINTEXT).unwrap();
    let bytes = message.to_bytes();
    assert_eq!(bytes[..2], [consts::PROTOCOL_VERSION, 1], "tag Ratchet");
    let before = state(&p.alice_session);
    for point in small_order_points() {
        let tampered = SessionMessage::from_bytes(&with_key(&bytes, FIRST_KEY, &point)).unwrap();
        assert_eq!(
            p.alice_session.decrypt(&bob, &tampered, &mut p.rng),
            Err(DecryptError::Authentication),
            "{point:02x?}"
        );
        assert!(state(&p.alice_session) == before);
    }
    assert_eq!(
        p.alice_session.decrypt(&bob, &message, &mut p.rng).unwrap(),
        PLAINTEXT
    );
}

#[test]
fn prekey_message_with_a_small_order_ephemeral_key_is_rejected() {
    let mut first = FirstContact::new(109);
    let bytes = first.message.to_bytes();
    assert_eq!(bytes[FIRST_KEY], first.prekey_message().base_key()[..]);
    for point in small_order_points() {
        let SessionMessage::Prekey(tampered) =
            SessionMessage::from_bytes(&with_key(&bytes, FIRST_KEY, &point)).unwrap()
        else {
            panic!("still a prekey message")
        };
        assert_eq!(
            first.respond(&tampered),
            Err(SessionCreationError::NonContributoryKey),
            "{point:02x?}"
        );
    }
}

#[test]
fn every_truncation_is_rejected() {
    let mut first = FirstContact::new(110);
    let mut p = established_pair(111);
    let ratchet = p.bob_session.encrypt(PLAINTEXT).unwrap();
    for message in [&first.message, &ratchet] {
        let bytes = message.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                SessionMessage::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            SessionMessage::from_bytes(&longer),
            Err(DecodeError::TrailingBytes)
        );
    }

    let envelope = seal(
        &first.alice.certificate,
        &first.bob.certificate,
        &first.message,
        &mut first.rng,
    )
    .unwrap();
    let overhead = 1 + 32 + 16;
    for len in 0..envelope.len() {
        let expected = if len < overhead {
            OpenError::Malformed
        } else {
            OpenError::Authentication
        };
        assert_eq!(
            open(&first.bob.keys, &first.bob.certificate, &envelope[..len]).unwrap_err(),
            expected,
            "prefix of {len} bytes"
        );
    }
    let mut longer = envelope.clone();
    longer.push(0);
    assert_eq!(
        open(&first.bob.keys, &first.bob.certificate, &longer).unwrap_err(),
        OpenError::Authentication
    );
    assert!(open(&first.bob.keys, &first.bob.certificate, &envelope).is_ok());
}

#[test]
fn oversized_inputs_are_rejected() {
    let mut first = FirstContact::new(112);
    // The session message limit, as reported by the decoder itself.
    let huge = vec![consts::PROTOCOL_VERSION; 1 << 20];
    let Err(DecodeError::TooLarge { max, .. }) = SessionMessage::from_bytes(&huge) else {
        panic!("a 1 MiB session message is too large")
    };
    // The largest valid message (a prekey message around the largest plaintext) fits.
    let bundle = first
        .bob
        .bundle()
        .verify(first.bob.certificate.account_key())
        .unwrap();
    let mut session = Session::initiate(
        &first.alice.keys,
        &first.alice.certificate,
        &bundle,
        &mut first.rng,
    )
    .unwrap();
    let largest = session
        .encrypt(&vec![7; consts::MAX_PLAINTEXT_LEN])
        .unwrap()
        .to_bytes();
    assert!(largest.len() <= max);
    assert!(SessionMessage::from_bytes(&largest).is_ok());
    assert_eq!(
        SessionMessage::from_bytes(&huge[..max + 1]),
        Err(DecodeError::TooLarge { len: max + 1, max })
    );
    assert_eq!(
        session.encrypt(&vec![7; consts::MAX_PLAINTEXT_LEN + 1]),
        Err(EncryptError::TooLarge {
            len: consts::MAX_PLAINTEXT_LEN + 1,
            max: consts::MAX_PLAINTEXT_LEN
        })
    );

    let envelope = vec![consts::PROTOCOL_VERSION; consts::MAX_BODY_LEN + 1];
    assert_eq!(
        open(&first.bob.keys, &first.bob.certificate, &envelope).unwrap_err(),
        OpenError::Malformed
    );

    let state = vec![consts::SESSION_STATE_VERSION; consts::MAX_SESSION_STATE_LEN + 1];
    assert!(matches!(
        Session::from_bytes(&state),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        DeviceCertificate::from_bytes(&huge),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        PrekeyBundle::from_bytes(&huge),
        Err(DecodeError::TooLarge { .. })
    ));
}
