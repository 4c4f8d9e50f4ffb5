//! The protocol operations, through kith-protocol's public API as a client calls it: session
//! setup on both sides, ratchet messages, sealed sender. Alice writes to Bob; Bob's bundle
//! carries a one-time prekey (the common case: four DHs in the agreement).

use std::hint::black_box;

use anyhow::{bail, ensure};
use kith_protocol::{
    PrekeyBundle, PrekeyMessage, Session, SessionMessage, VerifiedCertificate, open, seal,
};
use rand_chacha::ChaCha20Rng;

use super::crypto_raw::MESSAGE_LEN;
use super::crypto_timing::{Stopwatch, Timing};
use crate::device::{TestDevice, rng};

/// The plaintext of every message.
const MESSAGE: [u8; MESSAGE_LEN] = [b'k'; MESSAGE_LEN];

/// What each protocol operation costs.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProtocolCosts {
    /// Initiator and responder together.
    pub(super) setup: Timing,
    /// Encrypt + decrypt of one message in an established chain.
    pub(super) ratchet: Timing,
    /// `seal` + `open` of one ratchet message.
    pub(super) seal_open: Timing,
}

/// The two devices and the bundle Bob's relay would hand Alice.
struct Parties {
    alice: TestDevice,
    bob: TestDevice,
    bundle: PrekeyBundle,
}

impl Parties {
    fn new() -> anyhow::Result<Self> {
        let alice = TestDevice::new("alice", 1, 0);
        let bob = TestDevice::new("bob", 2, 1);
        let (Some(one_time), Some(kem)) = (
            bob.one_time.values().next(),
            bob.one_time_kem.values().next(),
        ) else {
            bail!("Bob was made without one-time prekeys");
        };
        let bundle = PrekeyBundle::new(
            bob.certificate.certificate().clone(),
            bob.signed_prekey.public().clone(),
            Some(one_time.public().clone()),
            kem.public().clone(),
        );
        Ok(Self { alice, bob, bundle })
    }

    /// Alice's side of a setup: verify the bundle, agree, encrypt the first message.
    fn initiate(&self, rng: &mut ChaCha20Rng) -> anyhow::Result<(Session, Box<PrekeyMessage>)> {
        let verified = self.bundle.verify(&self.bob.account_key())?;
        let mut session =
            Session::initiate(&self.alice.keys, &self.alice.certificate, &verified, rng)?;
        match session.encrypt(&MESSAGE)? {
            SessionMessage::Prekey(first) => Ok((session, first)),
            SessionMessage::Ratchet(_) => {
                bail!("a new session's first message was no prekey message")
            }
        }
    }

    /// Bob's side: agree from the prekey message and decrypt it.
    fn respond(&self, first: &PrekeyMessage, rng: &mut ChaCha20Rng) -> anyhow::Result<Session> {
        let prekeys = self.bob.responder_prekeys(first);
        let (session, plaintext) = Session::respond(
            &self.bob.keys,
            &self.bob.certificate,
            &prekeys,
            &self.alice.certificate,
            first,
            rng,
        )?;
        ensure!(
            plaintext == MESSAGE,
            "the first message decrypted to other bytes"
        );
        Ok(session)
    }

    /// An established pair in which Alice has heard back, so both send plain ratchet messages.
    fn talking(&self, rng: &mut ChaCha20Rng) -> anyhow::Result<(Session, Session)> {
        let (mut alice, first) = self.initiate(rng)?;
        let mut bob = self.respond(&first, rng)?;
        let reply = bob.encrypt(&MESSAGE)?;
        alice.decrypt(&self.bob.certificate, &reply, rng)?;
        Ok((alice, bob))
    }
}

/// Measures every protocol operation; returns the costs and one `(name, timing)` per
/// operation measured (including the informational ones).
pub(super) fn measure(
    clock: &Stopwatch,
) -> anyhow::Result<(ProtocolCosts, Vec<(&'static str, Timing)>)> {
    let parties = Parties::new()?;
    let mut rng = rng(0xBEEF);
    let mut rows = Vec::new();

    let initiator = clock.time(|| {
        black_box(parties.initiate(&mut rng)?);
        Ok(())
    })?;
    rows.push(("setup-initiator", initiator));
    let (_, first) = parties.initiate(&mut rng)?;
    let responder = clock.time(|| {
        black_box(parties.respond(&first, &mut rng)?);
        Ok(())
    })?;
    rows.push(("setup-responder", responder));
    let setup = clock.time(|| {
        let (_, first) = parties.initiate(&mut rng)?;
        black_box(parties.respond(&first, &mut rng)?);
        Ok(())
    })?;
    rows.push(("session-setup", setup));

    let (mut alice, mut bob) = parties.talking(&mut rng)?;
    let ratchet = clock.time(|| {
        let message = alice.encrypt(black_box(&MESSAGE))?;
        let plaintext = bob.decrypt(&parties.alice.certificate, &message, &mut rng)?;
        ensure!(
            plaintext.len() == MESSAGE_LEN,
            "a ratchet message lost bytes"
        );
        Ok(())
    })?;
    rows.push(("ratchet-encrypt-decrypt", ratchet));
    let round_trip = clock.time(|| {
        let there = alice.encrypt(&MESSAGE)?;
        bob.decrypt(&parties.alice.certificate, &there, &mut rng)?;
        let back = bob.encrypt(&MESSAGE)?;
        black_box(alice.decrypt(&parties.bob.certificate, &back, &mut rng)?);
        Ok(())
    })?;
    rows.push(("ratchet-round-trip", round_trip));

    let message = alice.encrypt(&MESSAGE)?;
    let seal_open = clock.time(|| {
        seal_then_open(&parties, &message, &mut rng)?;
        Ok(())
    })?;
    rows.push(("seal-open", seal_open));

    let costs = ProtocolCosts {
        setup,
        ratchet,
        seal_open,
    };
    Ok((costs, rows))
}

/// Alice seals `message` to Bob; Bob opens it and must see Alice as the sender.
fn seal_then_open(
    parties: &Parties,
    message: &SessionMessage,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<VerifiedCertificate> {
    let envelope = seal(
        &parties.alice.certificate,
        &parties.bob.certificate,
        message,
        rng,
    )?;
    let opened = open(&parties.bob.keys, &parties.bob.certificate, &envelope)?;
    ensure!(
        opened.sender == parties.alice.certificate,
        "the envelope opened with another sender"
    );
    Ok(opened.sender)
}
