//! The relay's side of the load engine: relay nodes as child processes, registered pairs with
//! sessions, `Send` frames encoded before the clock starts, and how the relay's answers and
//! pushes map back to sequence numbers.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail, ensure};
use kith_protocol::wire::{ClientFrame, Recipient, Request, Response, SendRequest, ServerFrame};
use kith_protocol::{BoundedBytes, BoundedVec, DeviceId};
use tokio_tungstenite::tungstenite::Bytes;

use super::envelopes::{Envelopes, Inbound, Outbound};
use super::load::{Received, Wire, concurrently};
use super::net::Link;
use super::process::{BenchRelay, RelaySpec};
use crate::device::TestDevice;

/// Handshakes and registrations in flight at once during setup.
const SETUP_CONCURRENCY: usize = 16;

/// One-time prekeys each receiver registers: its first message then takes the usual path
/// (PQXDH with a one-time X25519 and a one-time ML-KEM prekey).
const RECEIVER_ONE_TIME_PREKEYS: usize = 1;

/// Starts a relay (the start waits for the banner, so it runs off the runtime's threads).
pub(super) async fn start_relay(relay_bin: &Path, spec: RelaySpec) -> anyhow::Result<BenchRelay> {
    let relay_bin = relay_bin.to_owned();
    tokio::task::spawn_blocking(move || BenchRelay::start(&relay_bin, &spec))
        .await
        .context("starting the relay panicked")?
}

/// Stops a relay with SIGTERM and checks that it exited cleanly.
pub(super) async fn stop_relay(relay: BenchRelay) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || relay.stop())
        .await
        .context("stopping the relay panicked")?
}

/// `max_connections` for `pairs` pairs, with room for setup connections.
pub(super) fn max_connections(pairs: usize) -> anyhow::Result<u32> {
    u32::try_from(2 * pairs + 100).context("too many pairs for max_connections")
}

/// Where senders and receivers connect: one relay, or two nodes sharing a database.
#[derive(Clone, Copy)]
pub(super) struct Nodes<'a> {
    /// The node the senders register and send on.
    pub(super) senders: &'a BenchRelay,
    /// The node the receivers register and receive on.
    pub(super) receivers: &'a BenchRelay,
}

impl<'a> Nodes<'a> {
    /// Senders and receivers on one relay.
    pub(super) fn single(relay: &'a BenchRelay) -> Self {
        Self {
            senders: relay,
            receivers: relay,
        }
    }

    /// The process ids to watch (each node once).
    pub(super) fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.senders.pid(), self.receivers.pid()];
        pids.dedup();
        pids
    }
}

/// One pair after setup: both connections authenticated and idle, a session started.
pub(super) struct Pair {
    /// The sender's connection.
    pub(super) sender: Link,
    /// The receiver's connection.
    pub(super) receiver: Link,
    /// The sender's session with the receiver.
    pub(super) outbound: Outbound,
    /// The receiver's side, to check the envelopes after a phase.
    pub(super) inbound: Inbound,
}

/// Registers `n` senders and `n` receivers (each on its own connection, kept open and
/// authenticated), then starts every sender's session from its receiver's bundle.
pub(super) async fn set_up_pairs(nodes: Nodes<'_>, n: usize) -> anyhow::Result<Vec<Pair>> {
    let senders = register_all(nodes.senders, "s", n, 0).await?;
    let receivers = register_all(nodes.receivers, "r", n, RECEIVER_ONE_TIME_PREKEYS).await?;
    let work: Vec<_> = senders.into_iter().zip(receivers).collect();
    concurrently(
        work,
        SETUP_CONCURRENCY,
        |((mut sender, mut sender_link), (receiver, receiver_link))| async move {
            let peer = (receiver.account_key(), receiver.device_id());
            let outbound = Outbound::start(&mut sender_link, &mut sender, peer).await?;
            Ok(Pair {
                sender: sender_link,
                receiver: receiver_link,
                outbound,
                inbound: Inbound::new(receiver, sender.device_id()),
            })
        },
    )
    .await
    .context("starting the sessions")
}

/// Makes and registers `n` devices named `bench-{role}{i}` on `relay`.
async fn register_all(
    relay: &BenchRelay,
    role: &'static str,
    n: usize,
    one_time_prekeys: usize,
) -> anyhow::Result<Vec<(TestDevice, Link)>> {
    let (addr, tls) = (relay.addr(), relay.tls());
    concurrently((0..n).collect(), SETUP_CONCURRENCY, move |i| {
        let tls = Arc::clone(&tls);
        async move {
            let handle = format!("bench-{role}{i}");
            let seed = 2 * i as u64 + u64::from(role == "r");
            let device = TestDevice::new(&handle, seed, one_time_prekeys);
            let mut link = connect(addr, tls).await?;
            link.register(&device)
                .await
                .with_context(|| format!("registering {handle}"))?;
            Ok((device, link))
        }
    })
    .await
}

/// A new connection to the relay at `addr`, challenge read.
pub(super) async fn connect(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Link> {
    Link::connect(addr, tls)
        .await
        .with_context(|| format!("connecting to the relay at {addr}"))
}

/// Encodes the `Send` frame of every envelope of pair `pair` for `recipient`, with request
/// ids reserved on the sender's connection. The envelopes are moved into the frames.
pub(super) fn send_frames(
    link: &mut Link,
    tag: &MessageTag,
    pair: usize,
    envelopes: Vec<Vec<u8>>,
    recipient: DeviceId,
) -> anyhow::Result<Vec<Bytes>> {
    let first_request = link.reserve_request_ids(envelopes.len());
    envelopes
        .into_iter()
        .enumerate()
        .map(|(seq, body)| {
            let frame = send_frame(
                first_request + seq as u64,
                tag.id(pair, seq)?,
                body,
                recipient,
            )?;
            Ok(Bytes::from(frame))
        })
        .collect()
}

/// One `Send` request frame: `body` for `recipient`, without a part.
pub(super) fn send_frame(
    request_id: u64,
    client_message_id: [u8; 16],
    body: Vec<u8>,
    recipient: DeviceId,
) -> anyhow::Result<Vec<u8>> {
    let recipients = vec![Recipient {
        device_id: recipient,
        part: None,
    }];
    let frame = ClientFrame {
        request_id,
        request: Request::Send(SendRequest {
            client_message_id,
            body: BoundedBytes::new(body).context("an envelope over the body limit")?,
            recipients: BoundedVec::new(recipients).context("one recipient is within limits")?,
        }),
    };
    Ok(frame.to_bytes())
}

/// Client message ids of one phase: `run:[8] || pair:u32 || seq:u32`, the run part random so
/// ids never repeat across phases or runs (the relay deduplicates by id).
#[derive(Debug, Clone, Copy)]
pub(super) struct MessageTag {
    run: [u8; 8],
}

impl MessageTag {
    /// A fresh tag.
    pub(super) fn new() -> Self {
        let run = RandomState::new().hash_one(std::time::Instant::now());
        Self {
            run: run.to_be_bytes(),
        }
    }

    /// The client message id of message `seq` of pair `pair`.
    fn id(&self, pair: usize, seq: usize) -> anyhow::Result<[u8; 16]> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.run);
        id[8..12].copy_from_slice(&u32::try_from(pair)?.to_be_bytes());
        id[12..].copy_from_slice(&u32::try_from(seq)?.to_be_bytes());
        Ok(id)
    }

    /// The (pair, seq) of an id of this tag.
    fn parse(&self, id: &[u8; 16]) -> Option<(usize, usize)> {
        if id[..8] != self.run {
            return None;
        }
        let pair = u32::from_be_bytes(id[8..12].try_into().ok()?);
        let seq = u32::from_be_bytes(id[12..].try_into().ok()?);
        Some((usize::try_from(pair).ok()?, usize::try_from(seq).ok()?))
    }
}

/// How the relay's frames of one phase are read.
pub(super) struct RelayWire {
    /// The phase's client message ids.
    tag: MessageTag,
    /// The phase's envelopes (their index: bodies were moved into the frames).
    envelopes: Envelopes,
}

impl RelayWire {
    /// The wire of a phase with these ids and envelopes.
    pub(super) fn new(tag: MessageTag, envelopes: Envelopes) -> Self {
        Self { tag, envelopes }
    }
}

impl Wire for RelayWire {
    fn accepted(&self, pair: usize, message: &[u8]) -> anyhow::Result<Option<usize>> {
        match decode(message)? {
            ServerFrame::Response {
                response: Response::Accepted { client_message_id },
                ..
            } => {
                let (p, seq) = self.tag.parse(&client_message_id).with_context(|| {
                    format!(
                        "\"accepted\" for an id this phase never sent: {client_message_id:02x?}"
                    )
                })?;
                ensure!(
                    p == pair,
                    "\"accepted\" for pair {p} on pair {pair}'s connection"
                );
                Ok(Some(seq))
            }
            ServerFrame::Response { response, .. } => {
                bail!("the relay refused a message: {response:?}")
            }
            ServerFrame::QueueDrained | ServerFrame::PrekeyCountLow { .. } => Ok(None),
            other => bail!("unexpected frame on a sender connection: {other:?}"),
        }
    }

    fn received(&self, pair: usize, message: &[u8]) -> anyhow::Result<Received> {
        match decode(message)? {
            ServerFrame::Deliver(delivery) => {
                let body = delivery.body.into_vec();
                let (p, seq) = self.envelopes.identify(&body).context(
                    "a delivery that is not an envelope of this phase (late duplicate?)",
                )?;
                ensure!(p == pair, "pair {p}'s message delivered to pair {pair}");
                Ok(Received::Delivery {
                    seq,
                    ack_id: delivery.delivery_id,
                    body: Some(body),
                })
            }
            ServerFrame::Response {
                response: Response::Ok,
                ..
            } => Ok(Received::AckAnswered),
            ServerFrame::Response { response, .. } => bail!("an ack was answered {response:?}"),
            ServerFrame::QueueDrained => Ok(Received::QueueDrained),
            ServerFrame::PrekeyCountLow { .. } => Ok(Received::Other),
            ServerFrame::Challenge { .. } => bail!("a second challenge"),
        }
    }

    fn ack_frame(&self, request_id: u64, ids: &[u64]) -> anyhow::Result<Bytes> {
        let deliveries = BoundedVec::new(ids.to_vec()).context("too many ids for one ack")?;
        let frame = ClientFrame {
            request_id,
            request: Request::Ack { deliveries },
        };
        Ok(Bytes::from(frame.to_bytes()))
    }

    fn acks_answered(&self) -> bool {
        true
    }
}

/// The length of one `Send` frame as the relay scenarios write it: a sealed first-contact
/// envelope of [`PLAINTEXT_LEN`](super::envelopes::PLAINTEXT_LEN) bytes for one recipient. The
/// bare forwarder's frames are made this long.
pub(super) fn sample_send_frame_len() -> anyhow::Result<usize> {
    let (envelope, recipient) = super::envelopes::sample()?;
    let tag = MessageTag::new();
    // A request id of the size a sender reaches in a phase (ids are varints).
    let frame = send_frame(1_000, tag.id(0, 0)?, envelope, recipient)?;
    Ok(frame.len())
}

fn decode(message: &[u8]) -> anyhow::Result<ServerFrame> {
    ServerFrame::from_bytes(message)
        .map_err(|e| anyhow!("an undecodable frame from the relay: {e:?}"))
}
