//! Real sealed ratchet envelopes: made before a timed phase, opened and decrypted after it.
//!
//! The sending side does exactly what the client library does for a first contact
//! (`client-cli/src/client/send.rs`, `encrypt_for`): fetch the recipient's bundle through the
//! relay, verify it, `Session::initiate`, then per message `Session::encrypt` and `seal` for the
//! recipient's certificate. Doing all of it before the clock starts keeps client crypto off
//! the two cores while the relay is measured.
//!
//! An envelope is recognised on arrival without opening it, by its ephemeral public key
//! (bytes 1..33, fresh per seal). After the phase every delivered envelope is opened and
//! decrypted in sequence order (`Session::respond` for the first, `decrypt` for the rest) and
//! its plaintext compared: a missing, duplicated or undecryptable envelope fails the run.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;

use anyhow::{Context, anyhow, bail, ensure};
use kith_protocol::{
    AccountPublicKey, DeviceId, OpenedEnvelope, PrekeyBundle, PrekeyMessage, Session,
    SessionMessage, VerifiedCertificate,
};
use rand_chacha::ChaCha20Rng;

use super::net::Link;
use crate::device::{LAST_RESORT_KEM_ID, SIGNED_PREKEY_ID, TestDevice, rng};

/// Plaintext bytes per message (the "200 bytes of plaintext").
pub(super) const PLAINTEXT_LEN: usize = 200;

/// The ephemeral public key of a sealed envelope: unique per seal, readable without opening.
pub(super) type EnvelopeKey = [u8; 32];

/// The key of `body`, or `None` if it is too short to be an envelope.
pub(super) fn envelope_key(body: &[u8]) -> Option<EnvelopeKey> {
    body.get(1..33)?.try_into().ok()
}

/// The plaintext of message `seq` of pair `pair`: exactly [`PLAINTEXT_LEN`] bytes, unique per
/// message, so a swapped or replayed envelope shows as a mismatch.
fn plaintext(pair: usize, seq: u64) -> Vec<u8> {
    let mut text = format!("kith-bench pair {pair} message {seq} ").into_bytes();
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789".iter().cycle();
    text.extend(filler.take(PLAINTEXT_LEN.saturating_sub(text.len())));
    text.truncate(PLAINTEXT_LEN);
    text
}

/// The sending side of one pair: the session with the receiver's device and both
/// certificates.
pub(super) struct Outbound {
    /// The sender's certificate (sealed inside every envelope).
    sender: VerifiedCertificate,
    /// The receiver's certificate, from its verified bundle.
    recipient: VerifiedCertificate,
    /// The initiator's session.
    session: Session,
    /// The sequence number of the next message (across phases).
    next_seq: u64,
}

impl Outbound {
    /// Fetches the receiver's bundle through the relay on `link` (the sender's connection),
    /// verifies it and starts a session.
    pub(super) async fn start(
        link: &mut Link,
        sender: &mut TestDevice,
        receiver: (AccountPublicKey, DeviceId),
    ) -> anyhow::Result<Self> {
        let (account, device) = receiver;
        let bundle = link.fetch_bundle(account, device).await?;
        let bundle = bundle
            .verify(&account)
            .map_err(|e| anyhow!("the relay's bundle for device {device} does not verify: {e}"))?;
        let session =
            Session::initiate(&sender.keys, &sender.certificate, &bundle, &mut sender.rng)
                .map_err(|e| anyhow!("starting a session with device {device}: {e}"))?;
        Ok(Self {
            sender: sender.certificate.clone(),
            recipient: bundle.certificate().clone(),
            session,
            next_seq: 0,
        })
    }

    /// The receiver's device.
    pub(super) fn recipient(&self) -> DeviceId {
        self.recipient.device_id()
    }

    /// Encrypts the next `count` messages of pair `pair`, in order.
    fn encrypt(&mut self, pair: usize, count: usize) -> anyhow::Result<Vec<SessionMessage>> {
        (0..count)
            .map(|_| {
                let text = plaintext(pair, self.next_seq);
                self.next_seq += 1;
                self.session
                    .encrypt(&text)
                    .map_err(|e| anyhow!("encrypting for pair {pair}: {e}"))
            })
            .collect()
    }
}

/// The envelopes of one phase.
pub(super) struct Envelopes {
    /// Per pair, in sequence order.
    pub(super) per_pair: Vec<Vec<Vec<u8>>>,
    /// Envelope key → (pair, sequence number within this phase).
    index: HashMap<EnvelopeKey, (usize, usize)>,
}

impl Envelopes {
    /// The (pair, sequence number) of a delivered body, if it is an envelope of this phase.
    pub(super) fn identify(&self, body: &[u8]) -> Option<(usize, usize)> {
        self.index.get(&envelope_key(body)?).copied()
    }

    /// Indexes `per_pair`; two envelopes with one key would make arrivals ambiguous.
    fn new(per_pair: Vec<Vec<Vec<u8>>>) -> anyhow::Result<Self> {
        let total = per_pair.iter().map(Vec::len).sum();
        let mut index = HashMap::with_capacity(total);
        for (pair, envelopes) in per_pair.iter().enumerate() {
            for (seq, body) in envelopes.iter().enumerate() {
                let key = envelope_key(body).context("an envelope shorter than its header")?;
                ensure!(
                    index.insert(key, (pair, seq)).is_none(),
                    "two envelopes share an ephemeral key"
                );
            }
        }
        Ok(Self { per_pair, index })
    }
}

/// Makes `counts[pair]` envelopes for every pair: encrypts in order per session, then seals
/// on every core. Returns the sessions (to continue in a later phase) and the envelopes.
pub(super) async fn make(
    mut outbound: Vec<Outbound>,
    counts: Vec<usize>,
) -> anyhow::Result<(Vec<Outbound>, Envelopes)> {
    tokio::task::spawn_blocking(move || {
        let envelopes = make_blocking(&mut outbound, &counts)?;
        Ok((outbound, envelopes))
    })
    .await
    .context("the envelope maker panicked")?
}

fn make_blocking(outbound: &mut [Outbound], counts: &[usize]) -> anyhow::Result<Envelopes> {
    let mut work = Vec::with_capacity(counts.iter().sum());
    for (pair, (out, &count)) in outbound.iter_mut().zip(counts).enumerate() {
        for message in out.encrypt(pair, count)? {
            work.push((pair, message));
        }
    }
    let outbound = &*outbound;
    let sealed = parallel_map(&work, |(pair, message), rng| {
        let out = &outbound[*pair];
        kith_protocol::seal(&out.sender, &out.recipient, message, rng)
            .map_err(|e| anyhow!("sealing for pair {pair}: {e}"))
    })?;
    let mut per_pair: Vec<Vec<Vec<u8>>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    for ((pair, _), body) in work.iter().zip(sealed) {
        per_pair[*pair].push(body);
    }
    Envelopes::new(per_pair)
}

/// One envelope as the benchmark makes them, for a receiver with a one-time prekey, made
/// locally from the receiver's own prekeys (no relay): the envelope and its recipient.
pub(super) fn sample() -> anyhow::Result<(Vec<u8>, DeviceId)> {
    let mut sender = TestDevice::new("sample-sender", 1, 0);
    let receiver = TestDevice::new("sample-receiver", 2, 1);
    let bundle = PrekeyBundle::new(
        receiver.certificate.certificate().clone(),
        receiver.signed_prekey.public().clone(),
        receiver
            .one_time
            .values()
            .next()
            .map(|k| k.public().clone()),
        receiver
            .one_time_kem
            .values()
            .next()
            .context("the sample receiver has a one-time ML-KEM prekey")?
            .public()
            .clone(),
    );
    let bundle = bundle
        .verify(&receiver.account_key())
        .map_err(|e| anyhow!("the sample bundle does not verify: {e}"))?;
    let mut session =
        Session::initiate(&sender.keys, &sender.certificate, &bundle, &mut sender.rng)
            .map_err(|e| anyhow!("the sample session: {e}"))?;
    let message = session
        .encrypt(&plaintext(0, 0))
        .map_err(|e| anyhow!("the sample message: {e}"))?;
    let envelope = kith_protocol::seal(
        &sender.certificate,
        bundle.certificate(),
        &message,
        &mut sender.rng,
    )
    .map_err(|e| anyhow!("sealing the sample: {e}"))?;
    Ok((envelope, receiver.device_id()))
}

/// The receiving side of one pair: the receiver's device (with its prekey secrets) and the
/// session once the first envelope has been accepted.
pub(super) struct Inbound {
    /// The receiver.
    device: TestDevice,
    /// The device that must have sealed every envelope.
    sender: DeviceId,
    /// The responder's session, from the first envelope.
    session: Option<Session>,
    /// The sequence number the next envelope must carry (across phases).
    next_seq: u64,
    /// For `respond` and `decrypt`.
    rng: ChaCha20Rng,
}

impl Inbound {
    /// The receiving side of `device`, expecting envelopes from `sender`.
    pub(super) fn new(device: TestDevice, sender: DeviceId) -> Self {
        Self {
            device,
            sender,
            session: None,
            next_seq: 0,
            rng: rng(random_seed(0)),
        }
    }

    /// The receiver's device.
    pub(super) fn device(&self) -> &TestDevice {
        &self.device
    }

    /// Decrypts an opened envelope as message `next_seq` of `pair` and checks its plaintext.
    fn accept(&mut self, pair: usize, opened: &OpenedEnvelope) -> anyhow::Result<()> {
        let seq = self.next_seq;
        let what = || format!("pair {pair} message {seq}");
        ensure!(
            opened.sender.device_id() == self.sender,
            "{}: sealed by device {}, not by the pair's sender",
            what(),
            opened.sender.device_id()
        );
        let text = if let Some(session) = &mut self.session {
            session
                .decrypt(&opened.sender, &opened.message, &mut self.rng)
                .map_err(|e| anyhow!("{}: does not decrypt: {e}", what()))?
        } else {
            let SessionMessage::Prekey(prekey) = &opened.message else {
                bail!("{}: the first envelope is not a prekey message", what());
            };
            self.respond(opened, prekey)
                .with_context(|| format!("{}: cannot start the session", what()))?
        };
        ensure!(
            text == plaintext(pair, seq),
            "{}: decrypts to the wrong plaintext",
            what()
        );
        self.next_seq += 1;
        Ok(())
    }

    /// Accepts the session of the first envelope and returns its plaintext.
    fn respond(
        &mut self,
        opened: &OpenedEnvelope,
        prekey: &PrekeyMessage,
    ) -> anyhow::Result<Vec<u8>> {
        self.check_prekey_ids(prekey)?;
        let d = &self.device;
        let (session, text) = Session::respond(
            &d.keys,
            &d.certificate,
            &d.responder_prekeys(prekey),
            &opened.sender,
            prekey,
            &mut self.rng,
        )
        .map_err(|e| anyhow!("{e}"))?;
        self.session = Some(session);
        Ok(text)
    }

    /// That the prekeys `prekey` names are ones this device made (`responder_prekeys` insists).
    fn check_prekey_ids(&self, prekey: &PrekeyMessage) -> anyhow::Result<()> {
        let d = &self.device;
        let kem = prekey.kem_prekey_id();
        let known = prekey.signed_prekey_id() == SIGNED_PREKEY_ID
            && prekey
                .one_time_prekey_id()
                .is_none_or(|id| d.one_time.contains_key(&id))
            && (kem == LAST_RESORT_KEM_ID || d.one_time_kem.contains_key(&kem));
        ensure!(known, "it names prekeys this device never made");
        Ok(())
    }
}

/// What a receiver got in one phase: per pair, per sequence number, the body delivered first.
pub(super) type Delivered = Vec<Vec<Option<Vec<u8>>>>;

/// Opens (on every core) and decrypts (in order, per session) every delivered envelope, and
/// returns the sessions and how many were decrypted. Fails on the first missing envelope or
/// the first that does not open, decrypt or match its plaintext.
pub(super) async fn verify(
    mut inbound: Vec<Inbound>,
    delivered: Delivered,
) -> anyhow::Result<(Vec<Inbound>, u64)> {
    tokio::task::spawn_blocking(move || {
        let count = verify_blocking(&mut inbound, &delivered)?;
        Ok((inbound, count))
    })
    .await
    .context("the envelope checker panicked")?
}

fn verify_blocking(inbound: &mut [Inbound], delivered: &Delivered) -> anyhow::Result<u64> {
    ensure!(
        inbound.len() == delivered.len(),
        "{} receivers but deliveries for {} pairs",
        inbound.len(),
        delivered.len()
    );
    let mut work = Vec::new();
    for (pair, bodies) in delivered.iter().enumerate() {
        for (seq, body) in bodies.iter().enumerate() {
            let body = body
                .as_deref()
                .with_context(|| format!("pair {pair}: message {seq} of the phase was lost"))?;
            work.push((pair, body));
        }
    }
    let receivers = &*inbound;
    let opened = parallel_map(&work, |(pair, body), _| {
        let d = &receivers[*pair].device;
        kith_protocol::open(&d.keys, &d.certificate, body)
            .map_err(|e| anyhow!("pair {pair}: a delivered envelope does not open: {e}"))
    })?;
    for ((pair, _), opened) in work.iter().zip(&opened) {
        inbound[*pair].accept(*pair, opened)?;
    }
    Ok(opened.len() as u64)
}

/// `f` over `items` on every core, in order; each worker has an RNG of its own.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T, &mut ChaCha20Rng) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let chunk = items.len().div_ceil(workers).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(worker, chunk)| {
                scope.spawn(move || {
                    let mut rng = rng(random_seed(worker));
                    chunk
                        .iter()
                        .map(|item| f(item, &mut rng))
                        .collect::<anyhow::Result<Vec<R>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow!("a crypto worker panicked"))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// A fresh random seed (each envelope's ephemeral key must be unique across the run).
fn random_seed(salt: usize) -> u64 {
    RandomState::new().hash_one((salt, std::time::Instant::now()))
}
