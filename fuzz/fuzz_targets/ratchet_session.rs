//! Two established sessions (Alice and Bob, `kith_fuzz::pair`) driven by an arbitrary
//! sequence of sends, deliveries in any order, drops, replays, tampered deliveries and
//! persist/restore cycles. Invariants:
//!
//! - nothing panics;
//! - every untampered message decrypts exactly once, to the plaintext that was sent, whatever
//!   the order (at most `MAX_SENDS` sends keep every gap under `MAX_SKIP` and the skipped-key
//!   store under its cap, so no legitimate message may be refused);
//! - a replayed message is refused;
//! - a tampered message never decrypts. The one exception is a prekey message whose
//!   key-agreement fields (outside the ratchet's AEAD; an established session only checks its
//!   base key) were changed: it may decrypt, but only to the genuine plaintext, and then it
//!   counts as that message's one delivery;
//! - a session persisted and restored re-encodes to the same bytes.
#![no_main]

use std::num::NonZeroU8;

use arbitrary::Arbitrary;
use kith_fuzz::{pair, rng};
use kith_protocol::{Session, SessionMessage, VerifiedCertificate};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;

/// Most sends per input.
const MAX_SENDS: usize = 200;

/// Most operations per input.
const MAX_OPS: usize = 1000;

/// One step of the scenario. `to_bob` picks the direction, `index` a message in that
/// direction's queue (modulo its length).
#[derive(Arbitrary, Debug)]
enum Op {
    /// The sender encrypts a fresh message with `len` extra bytes of plaintext.
    Send { from_alice: bool, len: u8 },
    /// A pending message is delivered.
    Deliver { to_bob: bool, index: u8 },
    /// A pending message is lost.
    Drop { to_bob: bool, index: u8 },
    /// A delivered message is delivered again.
    Replay { to_bob: bool, index: u8 },
    /// A copy of a pending message with one byte changed is delivered; the original stays.
    Tamper {
        to_bob: bool,
        index: u8,
        position: u16,
        mask: NonZeroU8,
    },
    /// The receiver's session is persisted and restored.
    Persist { bob: bool },
}

/// A message on its way.
struct Pending {
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
}

/// One party: its session and its peer's certificate.
struct Party {
    session: Session,
    peer: &'static VerifiedCertificate,
}

/// The scenario's state.
struct World {
    alice: Party,
    bob: Party,
    /// Pending messages, `[to Alice, to Bob]`.
    pending: [Vec<Pending>; 2],
    /// Delivered messages, `[to Alice, to Bob]`.
    delivered: [Vec<Vec<u8>>; 2],
    sends: usize,
    rng: ChaCha20Rng,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut world = World::new();
    for op in ops.into_iter().take(MAX_OPS) {
        world.apply(op);
    }
});

impl World {
    fn new() -> Self {
        let pair = pair();
        Self {
            alice: Party {
                session: Session::from_bytes(&pair.alice_session).expect("fixture session"),
                peer: &pair.bob.certificate,
            },
            bob: Party {
                session: Session::from_bytes(&pair.bob_session).expect("fixture session"),
                peer: &pair.alice.certificate,
            },
            pending: [Vec::new(), Vec::new()],
            delivered: [Vec::new(), Vec::new()],
            sends: 0,
            rng: rng(3),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Send { from_alice, len } => self.send(from_alice, len),
            Op::Deliver { to_bob, index } => self.deliver(to_bob, index),
            Op::Drop { to_bob, index } => {
                let queue = &mut self.pending[usize::from(to_bob)];
                if !queue.is_empty() {
                    queue.remove(usize::from(index) % queue.len());
                }
            }
            Op::Replay { to_bob, index } => self.replay(to_bob, index),
            Op::Tamper {
                to_bob,
                index,
                position,
                mask,
            } => self.tamper(to_bob, index, position, mask),
            Op::Persist { bob } => {
                let party = if bob { &mut self.bob } else { &mut self.alice };
                let bytes = party.session.to_bytes();
                let restored = Session::from_bytes(&bytes).expect("own state restores");
                assert_eq!(
                    restored.to_bytes(),
                    bytes,
                    "restored session re-encodes differently"
                );
                party.session = restored;
            }
        }
    }

    fn party(&mut self, bob: bool) -> &mut Party {
        if bob { &mut self.bob } else { &mut self.alice }
    }

    fn send(&mut self, from_alice: bool, len: u8) {
        if self.sends == MAX_SENDS {
            return;
        }
        self.sends += 1;
        // Unique per message, so a wrong key or a mix-up shows as a wrong plaintext.
        let mut plaintext =
            format!("{} #{}", if from_alice { "A" } else { "B" }, self.sends).into_bytes();
        plaintext.resize(plaintext.len() + usize::from(len), len);
        let message = self
            .party(!from_alice)
            .session
            .encrypt(&plaintext)
            .expect("encrypt");
        self.pending[usize::from(from_alice)].push(Pending {
            bytes: message.to_bytes(),
            plaintext,
        });
    }

    fn deliver(&mut self, to_bob: bool, index: u8) {
        let queue = &mut self.pending[usize::from(to_bob)];
        if queue.is_empty() {
            return;
        }
        let message = queue.remove(usize::from(index) % queue.len());
        let decrypted = self
            .receive(to_bob, &message.bytes)
            .unwrap_or_else(|e| panic!("an untampered message was refused: {e}"));
        assert_eq!(decrypted, message.plaintext, "wrong plaintext");
        self.delivered[usize::from(to_bob)].push(message.bytes);
    }

    fn replay(&mut self, to_bob: bool, index: u8) {
        let queue = &self.delivered[usize::from(to_bob)];
        if queue.is_empty() {
            return;
        }
        let bytes = queue[usize::from(index) % queue.len()].clone();
        assert!(self.receive(to_bob, &bytes).is_err(), "a replay decrypted");
    }

    fn tamper(&mut self, to_bob: bool, index: u8, position: u16, mask: NonZeroU8) {
        let queue = &self.pending[usize::from(to_bob)];
        if queue.is_empty() {
            return;
        }
        let index = usize::from(index) % queue.len();
        let mut bytes = queue[index].bytes.clone();
        let position = usize::from(position) % bytes.len();
        bytes[position] ^= mask.get();
        let Ok(plaintext) = self.receive(to_bob, &bytes) else {
            return;
        };
        let message = SessionMessage::from_bytes(&bytes).expect("it decrypted, so it decoded");
        let genuine = &self.pending[usize::from(to_bob)][index].plaintext;
        assert!(
            matches!(message, SessionMessage::Prekey(_)) && &plaintext == genuine,
            "a tampered message decrypted (byte {position})"
        );
        // Only the unauthenticated key-agreement fields changed: the message is delivered.
        let original = self.pending[usize::from(to_bob)].remove(index);
        self.delivered[usize::from(to_bob)].push(original.bytes);
    }

    /// Decodes and decrypts at the receiver.
    fn receive(&mut self, to_bob: bool, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let message = SessionMessage::from_bytes(bytes).map_err(|e| e.to_string())?;
        let World {
            alice, bob, rng, ..
        } = self;
        let party = if to_bob { bob } else { alice };
        party
            .session
            .decrypt(party.peer, &message, rng)
            .map_err(|e| e.to_string())
    }
}
