//! `group`: one message to a 50-member circle (SPEC.md §14), as the reference client sends it:
//! the sender's sender key encrypts and signs, `seal_group` hides group and sender, and ONE
//! `Send` carries the envelope for the 49 other members' devices. The relay stores the body
//! once and pushes it to each member.
//!
//! Set-up is out of band (not timed): the admin signs the genesis state, each member accepts it
//! as an invitation, and each member takes the sender's `SenderKeyDistribution` directly rather
//! than over a 1:1 session. Timed, one message after another: from writing the `Send` to the
//! last member receiving the delivery. Members acknowledge each delivery; after the run they
//! open and decrypt every envelope, and any failure fails the run.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use futures_util::future::try_join_all;
use kith_protocol::wire::{ClientFrame, Recipient, Request, Response, SendRequest};
use kith_protocol::{
    BoundedBytes, BoundedString, BoundedVec, DeviceId, GroupState, Member, OwnSenderKey,
    PeerSenderKey, VerifiedGroupState, open_group, seal_group,
};
use rand_chacha::ChaCha20Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Figures;
use super::args::Options;
use super::idle::{generate_devices, register, start_relay};
use super::process::BenchRelay;
use super::stats::Latencies;
use crate::WAIT;
use crate::connection::Connection;
use crate::device::{TestDevice, rng};

/// Members of the circle, the sender included.
const MEMBERS: usize = 50;
/// Plaintext of each group message: the message number (8 bytes, big-endian), then filler.
const PLAINTEXT_LEN: usize = 200;
/// The filler byte after the message number.
const FILLER: u8 = b'g';

pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let messages = if options.quick { 10 } else { 50 };
    let relay = start_relay(options, 4_096).await?;
    let row = measure(&relay, messages).await;
    relay.stop().context("stopping the relay")?;
    Ok(vec![row?])
}

async fn measure(relay: &BenchRelay, messages: u64) -> anyhow::Result<Figures> {
    let mut devices = generate_devices(MEMBERS, 300_000, "circle").await?;
    let connections = try_join_all(
        devices
            .iter()
            .map(|device| register(relay.addr(), relay.tls(), device)),
    )
    .await
    .context("registering the circle's devices")?;
    let sender_device = devices.remove(0);
    let mut connections = connections.into_iter();
    let sender_conn = connections.next().context("no sender connection")?;
    let circle = Circle::new(&sender_device, &devices, &mut rng(0x6e0))?;
    let members: Vec<MemberSide> = devices
        .iter()
        .zip(connections)
        .zip(circle.members)
        .map(|((device, conn), keys)| MemberSide {
            handle: device.handle.as_str().to_owned(),
            device_id: device.device_id(),
            conn,
            state: keys.0,
            peer: keys.1,
        })
        .collect();
    let mut sender = SenderSide {
        device: sender_device,
        conn: sender_conn,
        state: circle.sender_state,
        key: circle.sender_key,
        rng: rng(0x5e0),
    };
    let recipients = members.iter().map(|m| m.device_id).collect();
    run_timed(&mut sender, members, recipients, messages).await
}

/// The circle's protocol objects: the admin's (sender's) verified state and sender key, and
/// each member's accepted state and copy of the sender key.
struct Circle {
    sender_state: VerifiedGroupState,
    sender_key: OwnSenderKey,
    members: Vec<(VerifiedGroupState, PeerSenderKey)>,
}

impl Circle {
    fn new(
        sender: &TestDevice,
        members: &[TestDevice],
        rng: &mut ChaCha20Rng,
    ) -> anyhow::Result<Self> {
        let others = members
            .iter()
            .map(|d| Member {
                account_key: d.account_key(),
                handle: d.handle.clone(),
                admin: false,
            })
            .collect();
        let name = BoundedString::new("bench circle").context("a short circle name")?;
        let signed =
            GroupState::genesis(name, &sender.account, sender.handle.clone(), others, rng)?;
        let sender_state = signed.verify_genesis()?;
        let group = sender_state.state();
        let sender_key = OwnSenderKey::generate(group.group_id(), group.epoch(), rng);
        let distribution = sender_key.distribution();
        let members = members
            .iter()
            .map(|d| {
                let state = signed.accept_invitation(&d.account_key(), &sender.account_key())?;
                let peer = PeerSenderKey::from_distribution(
                    &distribution,
                    sender.account_key(),
                    sender.device_id(),
                );
                anyhow::Ok((state, peer))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            sender_state,
            sender_key,
            members,
        })
    }
}

/// The sending device with its connection, state and sender key.
struct SenderSide {
    device: TestDevice,
    conn: Connection,
    state: VerifiedGroupState,
    key: OwnSenderKey,
    rng: ChaCha20Rng,
}

impl SenderSide {
    /// Message `number` as the sealed group envelope one `Send` carries.
    fn envelope(&mut self, number: u64) -> anyhow::Result<Vec<u8>> {
        let sender = (&self.device.account_key(), self.device.device_id());
        let message = self.key.encrypt(sender, &plaintext(number))?;
        Ok(seal_group(&self.state, &message, &mut self.rng)?)
    }
}

/// A member device with its connection, accepted state and copy of the sender key.
struct MemberSide {
    handle: String,
    device_id: DeviceId,
    conn: Connection,
    state: VerifiedGroupState,
    peer: PeerSenderKey,
}

/// What a member task reports as it goes.
enum Event {
    /// A delivery arrived at this instant.
    Received(Instant),
    /// The delivery's acknowledgement was answered.
    Acked,
}

/// The timed phase, then the checks: every member opens and decrypts every envelope.
async fn run_timed(
    sender: &mut SenderSide,
    members: Vec<MemberSide>,
    recipients: Vec<DeviceId>,
    messages: u64,
) -> anyhow::Result<Figures> {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let expected = usize::try_from(messages)?;
    let mut tasks = JoinSet::new();
    for member in members {
        tasks.spawn(receive(member, expected, events_tx.clone()));
    }
    drop(events_tx);
    let timed = send_all(sender, &recipients, messages, &mut events).await?;
    let mut members = Vec::with_capacity(recipients.len());
    while let Some(joined) = tasks.join_next().await {
        members.push(joined.context("a member task panicked")??);
    }
    let tally = check_members(members, messages).await?;
    group_row(timed, &tally, messages, recipients.len())
}

/// What the timed phase measured.
struct Timed {
    latencies: Latencies,
    upload_bytes: usize,
    body_bytes: usize,
    seconds: f64,
}

/// Sends the messages one after another, each once every member has received and
/// acknowledged the one before.
async fn send_all(
    sender: &mut SenderSide,
    recipients: &[DeviceId],
    messages: u64,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> anyhow::Result<Timed> {
    let mut latencies = Latencies::with_capacity(usize::try_from(messages)?);
    let mut sizes = None;
    let started = Instant::now();
    for number in 0..messages {
        let body = sender.envelope(number)?;
        let body_bytes = body.len();
        let request = send_request(number, body, recipients)?;
        sizes.get_or_insert((frame_len(&request), body_bytes));
        let sent_at = Instant::now();
        let id = sender.conn.send_request(request).await?;
        match sender.conn.response(id).await? {
            Response::Accepted { .. } => {}
            other => bail!("message {number} was answered {other:?}"),
        }
        let last = collect(events, recipients.len()).await?;
        latencies.push(last.saturating_duration_since(sent_at));
    }
    let (upload_bytes, body_bytes) = sizes.context("no message was sent")?;
    Ok(Timed {
        latencies,
        upload_bytes,
        body_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The scenario's one row.
fn group_row(
    mut timed: Timed,
    tally: &Tally,
    messages: u64,
    recipients: usize,
) -> anyhow::Result<Figures> {
    let mut row = Figures::new("group", u64::try_from(MEMBERS)?);
    if let Some((p50, p99, p999)) = timed.latencies.percentiles_ms() {
        row.p50_ms = Some(p50);
        row.p99_ms = Some(p99);
        row.p999_ms = Some(p999);
    }
    let sent = messages * u64::try_from(recipients)?;
    row.sent = Some(sent);
    row.delivered = Some(tally.delivered);
    row.lost = Some(sent.saturating_sub(tally.delivered));
    row.duplicated = Some(tally.duplicated);
    row.seconds = timed.seconds;
    row.set("messages", messages);
    row.set("recipients", recipients);
    row.set("upload_bytes", timed.upload_bytes);
    row.set("body_bytes", timed.body_bytes);
    row.set("plaintext_bytes", PLAINTEXT_LEN);
    Ok(row)
}

/// Waits for `count` deliveries and their acknowledgements; returns when the last delivery
/// arrived.
async fn collect(
    events: &mut mpsc::UnboundedReceiver<Event>,
    count: usize,
) -> anyhow::Result<Instant> {
    let (mut received, mut acked) = (0, 0);
    let mut last = None;
    while received < count || acked < count {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .with_context(|| {
                format!("{received} of {count} members received the message within {WAIT:?}")
            })?
            .context("every member task ended early")?;
        match event {
            Event::Received(at) => {
                received += 1;
                last = last.max(Some(at));
            }
            Event::Acked => acked += 1,
        }
    }
    last.context("no member received the message")
}

/// A member: takes `expected` deliveries, reporting each arrival and acknowledging it;
/// returns the bodies (in arrival order) for decryption once the timed phase is over.
async fn receive(
    mut member: MemberSide,
    expected: usize,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<(MemberSide, Vec<Vec<u8>>)> {
    let mut bodies = Vec::with_capacity(expected);
    while bodies.len() < expected {
        let delivery =
            member.conn.next_delivery(WAIT).await.with_context(|| {
                format!("{} waiting for message {}", member.handle, bodies.len())
            })?;
        // A closed channel means the timed phase failed; its error is reported there.
        let _ = events.send(Event::Received(Instant::now()));
        match member.conn.ack(&[delivery.delivery_id]).await? {
            Response::Ok => {}
            other => bail!("{}'s ack was answered {other:?}", member.handle),
        }
        let _ = events.send(Event::Acked);
        bodies.push(delivery.body.into_vec());
    }
    Ok((member, bodies))
}

/// Deliveries counted after the run.
struct Tally {
    delivered: u64,
    duplicated: u64,
}

/// Opens and decrypts every body each member received (any failure fails the run), counts
/// distinct messages and repeats, and checks with a round trip that no further delivery is
/// waiting on any connection.
async fn check_members(
    members: Vec<(MemberSide, Vec<Vec<u8>>)>,
    messages: u64,
) -> anyhow::Result<Tally> {
    let mut tally = Tally {
        delivered: 0,
        duplicated: 0,
    };
    for (mut member, bodies) in members {
        let mut seen = BTreeSet::new();
        for body in &bodies {
            let number = decrypt(&mut member, body)?;
            ensure!(
                number < messages,
                "{} decrypted message {number}, never sent",
                member.handle
            );
            if !seen.insert(number) {
                tally.duplicated += 1;
            }
        }
        let lookup = Request::Lookup {
            handle: kith_protocol::wire::Handle::parse(&member.handle)?,
        };
        member.conn.request(lookup).await?;
        tally.duplicated += u64::try_from(member.conn.buffered_deliveries())?;
        tally.delivered += u64::try_from(seen.len())?;
    }
    Ok(tally)
}

/// Opens a group envelope with the member's state and decrypts it with its copy of the
/// sender key; returns the message number.
fn decrypt(member: &mut MemberSide, body: &[u8]) -> anyhow::Result<u64> {
    let message = open_group(&member.state, body)
        .with_context(|| format!("{} could not open a group envelope", member.handle))?;
    let plaintext = member
        .peer
        .decrypt(&message)
        .with_context(|| format!("{} could not decrypt a group message", member.handle))?;
    let (number, filler) = plaintext
        .split_first_chunk::<8>()
        .context("a group message shorter than its number")?;
    ensure!(
        plaintext.len() == PLAINTEXT_LEN && filler.iter().all(|&b| b == FILLER),
        "{} decrypted a group message to other bytes",
        member.handle
    );
    Ok(u64::from_be_bytes(*number))
}

/// The plaintext of message `number`.
fn plaintext(number: u64) -> Vec<u8> {
    let mut bytes = vec![FILLER; PLAINTEXT_LEN];
    bytes[..8].copy_from_slice(&number.to_be_bytes());
    bytes
}

/// The one `Send` of message `number`: the envelope for every member device.
fn send_request(number: u64, body: Vec<u8>, recipients: &[DeviceId]) -> anyhow::Result<Request> {
    let mut client_message_id = [0u8; 16];
    client_message_id[..8].copy_from_slice(&number.to_be_bytes());
    client_message_id[8..].copy_from_slice(b"groupmsg");
    let recipients = recipients
        .iter()
        .map(|&device_id| Recipient {
            device_id,
            part: None,
        })
        .collect();
    Ok(Request::Send(SendRequest {
        client_message_id,
        body: BoundedBytes::new(body).context("group envelope over the body limit")?,
        recipients: BoundedVec::new(recipients).context("too many recipients")?,
    }))
}

/// Bytes of the encoded frame carrying `request` (what the sender uploads, before WebSocket
/// and TLS framing).
fn frame_len(request: &Request) -> usize {
    ClientFrame {
        request_id: 1,
        request: request.clone(),
    }
    .to_bytes()
    .len()
}
