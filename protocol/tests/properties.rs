//! Property tests: random two-party conversations through sealed envelopes (reordering, loss,
//! replay, persistence), and decoders fed arbitrary or mutated bytes.

// Helpers outside `#[test]` functions are test code too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::LazyLock;

use common::*;
use kith_protocol::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Alice,
    Bob,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Alice => 0,
            Side::Bob => 1,
        }
    }
}

/// One step of a conversation script. Indices pick among the messages of that sender that are
/// in flight (or, for `Replay`, already delivered); a step with nothing to pick is a no-op.
#[derive(Debug, Clone)]
enum Op {
    /// The side encrypts a new message, sealed in an envelope if the flag is set (opening
    /// checks a certificate signature, slow in debug builds, so only some messages are sealed;
    /// the others travel as encoded `SessionMessage`s).
    Send(Side, bool),
    /// A message sent by the side is delivered (in any order).
    Deliver(Side, Index),
    /// A message sent by the side is lost.
    Drop(Side, Index),
    /// A message sent by the side that was already delivered is delivered again.
    Replay(Side, Index),
    /// The side persists its session and restores it.
    Persist(Side),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Alice), Just(Side::Bob)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (side(), prop::bool::weighted(0.2)).prop_map(|(s, sealed)| Op::Send(s, sealed)),
        4 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Deliver(s, i)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Drop(s, i)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Replay(s, i)),
        1 => side().prop_map(Op::Persist),
    ]
}

/// A message on its way, with the text it must decrypt to.
struct Sent {
    text: String,
    /// A sealed envelope, or an encoded `SessionMessage`.
    sealed: bool,
    bytes: Vec<u8>,
}

/// Alice and Bob (from [`FIXTURE`]) talking; each case starts from the same established pair
/// (Alice initiated, Bob accepted "hello") with its own RNG.
struct Conversation {
    alice_session: Session,
    bob_session: Session,
    rng: rand_chacha::ChaCha20Rng,
    /// By sender: sent, not yet delivered nor dropped.
    in_flight: [Vec<Sent>; 2],
    /// By sender: delivered exactly once.
    delivered: [Vec<Sent>; 2],
    sent: [usize; 2],
    dropped: [usize; 2],
}

impl Conversation {
    fn new(seed: u64) -> Self {
        let f = &*FIXTURE;
        Self {
            alice_session: Session::from_bytes(&f.established_alice).unwrap(),
            bob_session: Session::from_bytes(&f.established_bob).unwrap(),
            rng: rng(seed),
            in_flight: [Vec::new(), Vec::new()],
            delivered: [Vec::new(), Vec::new()],
            sent: [0, 0],
            dropped: [0, 0],
        }
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Alice => &mut self.alice_session,
            Side::Bob => &mut self.bob_session,
        }
    }

    /// The side's session state, to check that failures leave it unchanged.
    fn state(&mut self, side: Side) -> Vec<u8> {
        self.session(side).to_bytes().to_vec()
    }

    fn send(&mut self, from: Side, sealed: bool) {
        let text = format!("{from:?}#{}", self.sent[from.index()]);
        self.sent[from.index()] += 1;
        let (sender, recipient) = devices(from);
        let message = self.session(from).encrypt(text.as_bytes()).unwrap();
        let bytes = if sealed {
            let envelope = seal(
                &sender.certificate,
                &recipient.certificate,
                &message,
                &mut self.rng,
            );
            envelope.unwrap()
        } else {
            message.to_bytes()
        };
        self.in_flight[from.index()].push(Sent {
            text,
            sealed,
            bytes,
        });
    }

    /// Hands `sent` (from `from`) to the other side: opens or decodes it, then decrypts.
    fn receive(&mut self, from: Side, sent: &Sent) -> Result<Vec<u8>, DecryptError> {
        let (sender, recipient) = devices(from);
        let (certificate, message) = if sent.sealed {
            let opened = open(&recipient.keys, &recipient.certificate, &sent.bytes).unwrap();
            assert_eq!(opened.sender, sender.certificate);
            (opened.sender, opened.message)
        } else {
            let message = SessionMessage::from_bytes(&sent.bytes).unwrap();
            (sender.certificate.clone(), message)
        };
        let session = match from {
            Side::Alice => &mut self.bob_session,
            Side::Bob => &mut self.alice_session,
        };
        session.decrypt(&certificate, &message, &mut self.rng)
    }

    fn deliver(&mut self, from: Side, position: usize) -> Result<(), TestCaseError> {
        let sent = self.in_flight[from.index()].remove(position);
        let plaintext = self.receive(from, &sent);
        prop_assert_eq!(plaintext, Ok(sent.text.clone().into_bytes()));
        self.delivered[from.index()].push(sent);
        Ok(())
    }

    fn replay(&mut self, from: Side, position: usize) -> Result<(), TestCaseError> {
        let to = other(from);
        let sent = self.delivered[from.index()].remove(position);
        let before = self.state(to);
        let result = self.receive(from, &sent);
        self.delivered[from.index()].insert(position, sent);
        prop_assert!(result.is_err(), "replay accepted: {:?}", result);
        prop_assert!(self.state(to) == before, "replay changed the session");
        Ok(())
    }

    fn persist(&mut self, side: Side) -> Result<(), TestCaseError> {
        let bytes = self.session(side).to_bytes();
        let restored = Session::from_bytes(&bytes).unwrap();
        prop_assert!(restored.to_bytes()[..] == bytes[..]);
        *self.session(side) = restored;
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Send(from, sealed) => self.send(from, sealed),
            Op::Deliver(from, index) if !self.in_flight[from.index()].is_empty() => {
                self.deliver(from, index.index(self.in_flight[from.index()].len()))?;
            }
            Op::Drop(from, index) if !self.in_flight[from.index()].is_empty() => {
                let position = index.index(self.in_flight[from.index()].len());
                self.in_flight[from.index()].remove(position);
                self.dropped[from.index()] += 1;
            }
            Op::Replay(from, index) if !self.delivered[from.index()].is_empty() => {
                self.replay(from, index.index(self.delivered[from.index()].len()))?;
            }
            Op::Persist(side) => self.persist(side)?,
            Op::Deliver(..) | Op::Drop(..) | Op::Replay(..) => {}
        }
        Ok(())
    }
}

/// (sender, recipient) for messages sent by `from`.
fn devices(from: Side) -> (&'static Device, &'static Device) {
    let f = &*FIXTURE;
    match from {
        Side::Alice => (&f.alice, &f.bob),
        Side::Bob => (&f.bob, &f.alice),
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Alice => Side::Bob,
        Side::Bob => Side::Alice,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every delivered message decrypts exactly once to its text, whatever the order, losses,
    /// replays and restarts; late messages still decrypt; afterwards both sides still talk,
    /// and the only keys left are those of the lost messages.
    #[test]
    fn random_conversations_deliver_each_message_exactly_once(
        seed in any::<u64>(),
        script in vec(op(), 0..60),
    ) {
        let mut conversation = Conversation::new(seed);
        for op in &script {
            conversation.run(op)?;
        }
        // The messages still in flight arrive last, newest first.
        for from in [Side::Alice, Side::Bob] {
            while let Some(last) = conversation.in_flight[from.index()].len().checked_sub(1) {
                conversation.deliver(from, last)?;
            }
        }
        for from in [Side::Alice, Side::Bob] {
            for position in 0..conversation.delivered[from.index()].len() {
                conversation.replay(from, position)?;
            }
        }
        // A fresh exchange. Each side's last message also stores the keys of the messages of
        // that side that were lost, which are then the only keys left.
        for (from, sealed) in [(Side::Alice, true), (Side::Bob, true), (Side::Alice, false)] {
            conversation.send(from, sealed);
            conversation.deliver(from, 0)?;
        }
        prop_assert_eq!(conversation.bob_session.skipped_keys(), conversation.dropped[0]);
        prop_assert_eq!(conversation.alice_session.skipped_keys(), conversation.dropped[1]);
    }
}

/// Alice and Bob with an established pair (Alice initiated, Bob accepted "hello"), saved; and
/// a later state of the same pair with one message in flight each way.
struct Fixture {
    alice: Device,
    bob: Device,
    established_alice: Vec<u8>,
    established_bob: Vec<u8>,
    /// After Alice encrypted `prekey` and Bob encrypted `ratchet`.
    alice_state: Vec<u8>,
    bob_state: Vec<u8>,
    /// Alice → Bob; still a prekey message (Alice has not heard back).
    prekey: Vec<u8>,
    /// Bob → Alice.
    ratchet: Vec<u8>,
}

const PREKEY_TEXT: &[u8] = b"from alice";
const RATCHET_TEXT: &[u8] = b"from bob";

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut p = established_pair(7);
    let established_alice = p.alice_session.to_bytes().to_vec();
    let established_bob = p.bob_session.to_bytes().to_vec();
    let prekey = p.alice_session.encrypt(PREKEY_TEXT).unwrap();
    assert!(matches!(prekey, SessionMessage::Prekey(_)));
    let ratchet = p.bob_session.encrypt(RATCHET_TEXT).unwrap();
    assert!(matches!(ratchet, SessionMessage::Ratchet(_)));
    Fixture {
        established_alice,
        established_bob,
        alice_state: p.alice_session.to_bytes().to_vec(),
        bob_state: p.bob_session.to_bytes().to_vec(),
        prekey: prekey.to_bytes(),
        ratchet: ratchet.to_bytes(),
        alice: p.alice,
        bob: p.bob,
    }
});

/// Whatever decodes must be the canonical encoding of what it decoded to; nothing may panic;
/// an envelope nobody sealed never opens.
fn check_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    let f = &*FIXTURE;
    if let Ok(message) = SessionMessage::from_bytes(bytes) {
        prop_assert_eq!(message.to_bytes(), bytes);
    }
    if let Ok(session) = Session::from_bytes(bytes) {
        prop_assert!(session.to_bytes()[..] == *bytes);
    }
    if let Ok(certificate) = DeviceCertificate::from_bytes(bytes) {
        prop_assert_eq!(certificate.to_bytes(), bytes);
    }
    if let Ok(bundle) = PrekeyBundle::from_bytes(bytes) {
        prop_assert_eq!(bundle.to_bytes(), bytes);
    }
    prop_assert!(open(&f.alice.keys, &f.alice.certificate, bytes).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_reject_arbitrary_bytes_without_panicking(bytes in vec(any::<u8>(), 0..1500)) {
        check_decoders(&bytes)?;
        // Past the version byte (1 for every versioned structure) and, for session messages,
        // past either variant tag.
        for prefix in [&[1][..], &[1, 0], &[1, 1]] {
            check_decoders(&[prefix, &bytes].concat())?;
        }
    }

    /// A changed byte of a valid message is rejected (or, if the "change" wrote the same value,
    /// accepted), and a rejected message leaves the session unchanged.
    #[test]
    fn single_byte_mutations_of_a_session_message_are_rejected(
        prekey in any::<bool>(),
        position in any::<Index>(),
        value in any::<u8>(),
    ) {
        let f = &*FIXTURE;
        let original = if prekey { &f.prekey } else { &f.ratchet };
        let mut bytes = original.clone();
        let position = position.index(bytes.len());
        bytes[position] = value;
        let unchanged = bytes == *original;
        let Ok(message) = SessionMessage::from_bytes(&bytes) else {
            prop_assert!(!unchanged);
            return Ok(());
        };
        let mut rng = rng(u64::from(value));
        let (result, expected) = match (&message, prekey) {
            // Bob's responder path: a fresh session from the (possibly tampered) message.
            (SessionMessage::Prekey(m), true) => {
                let original = SessionMessage::from_bytes(original).unwrap();
                let SessionMessage::Prekey(original) = original else { unreachable!() };
                let result = Session::respond(
                    &f.bob.keys,
                    &f.bob.certificate,
                    &f.bob.prekeys_for(&original),
                    &f.alice.certificate,
                    m,
                    &mut rng,
                )
                .map(|(_, plaintext)| plaintext)
                .map_err(|e| format!("{e:?}"));
                (result, PREKEY_TEXT)
            }
            (message, _) => {
                let (state, sender, text) = if prekey {
                    (&f.bob_state, &f.alice, PREKEY_TEXT)
                } else {
                    (&f.alice_state, &f.bob, RATCHET_TEXT)
                };
                let mut session = Session::from_bytes(state).unwrap();
                let result = session
                    .decrypt(&sender.certificate, message, &mut rng)
                    .map_err(|e| format!("{e:?}"));
                if result.is_err() {
                    prop_assert!(session.to_bytes()[..] == state[..], "state changed");
                }
                (result, text)
            }
        };
        if unchanged {
            prop_assert_eq!(result, Ok(expected.to_vec()));
        } else {
            prop_assert!(result.is_err(), "mutation at {} accepted", position);
        }
    }

    /// A changed byte of a persisted session either fails to decode or gives a session that
    /// re-encodes to the same bytes and can be used without panicking.
    #[test]
    fn mutated_persisted_sessions_never_panic(position in any::<Index>(), value in any::<u8>()) {
        let f = &*FIXTURE;
        let mut bytes = f.alice_state.clone();
        let position = position.index(bytes.len());
        bytes[position] = value;
        if let Ok(mut session) = Session::from_bytes(&bytes) {
            prop_assert!(session.to_bytes()[..] == bytes[..]);
            let message = SessionMessage::from_bytes(&f.ratchet).unwrap();
            let _ = session.decrypt(&f.bob.certificate, &message, &mut rng(1));
            let _ = session.encrypt(b"still no panic");
        }
    }
}
