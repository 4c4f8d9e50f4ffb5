//! The load engine shared by `bare`, `relay`, `relay-postgres` and `catchup`: N sender →
//! receiver pairs on loopback, each sender pushing pre-encoded frames (closed loop with a
//! window, or open loop on a schedule), each receiver timestamping arrivals and acknowledging
//! in batches. What the frames mean is the [`Wire`]'s business; the engine only sees sequence
//! numbers, so the relay and the bare forwarder are measured by the same code.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Bytes;

use super::Figures;
use super::load_receiver::{Expect, ReceiverLog, receive};
use super::load_sender::{Pacing, SenderLog, send};
use super::net::Link;
use super::stats::Latencies;

/// Outstanding sends per sender in the closed-loop phases.
pub(super) const WINDOW: usize = 32;

/// How a phase paces its senders.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pace {
    /// Closed loop: at most this many sends awaiting "accepted" per sender.
    Window(usize),
    /// Open loop: every sender sends this many messages per second on a fixed schedule.
    PerSenderRate(f64),
}

/// What the engine needs to know about a protocol: which sequence number an answer or a push
/// refers to, and how to acknowledge.
pub(super) trait Wire: Send + Sync + 'static {
    /// The sequence number a message on pair `pair`'s sender connection accepts, or `None`
    /// for a message to ignore. A refusal is an error.
    fn accepted(&self, pair: usize, message: &[u8]) -> anyhow::Result<Option<usize>>;

    /// What a message on pair `pair`'s receiver connection is.
    fn received(&self, pair: usize, message: &[u8]) -> anyhow::Result<Received>;

    /// A frame acknowledging `ids` (from [`Received::Delivery`]), as request `request_id`.
    fn ack_frame(&self, request_id: u64, ids: &[u64]) -> anyhow::Result<Bytes>;

    /// Whether the far end answers every ack frame (the relay does, the forwarder does not).
    fn acks_answered(&self) -> bool;
}

/// A message on a receiver connection.
#[derive(Debug)]
pub(super) enum Received {
    /// Message `seq` of the pair, to acknowledge with `ack_id`; `body` is kept for checks
    /// after the phase.
    Delivery {
        /// The sequence number within the phase.
        seq: usize,
        /// What to acknowledge.
        ack_id: u64,
        /// The delivered body, when the scenario checks it afterwards.
        body: Option<Vec<u8>>,
    },
    /// The answer to an ack frame.
    AckAnswered,
    /// The end of the queue that was waiting at connect time.
    QueueDrained,
    /// Anything else that may be ignored (a prekey notice, ...).
    Other,
}

/// One pair's connections and its frames (indexed by sequence number) for a phase.
pub(super) struct PairLoad {
    /// The sender's connection.
    pub(super) sender: Link,
    /// The receiver's connection.
    pub(super) receiver: Link,
    /// The frames to send, in sequence order.
    pub(super) frames: Vec<Bytes>,
}

/// The outcome of a phase: the connections (for the next phase) and what was recorded.
pub(super) struct Phase {
    /// Per pair: sender and receiver connections.
    pub(super) links: Vec<(Link, Link)>,
    /// Per pair: what the sender recorded.
    senders: Vec<SenderLog>,
    /// Per pair: what the receiver recorded.
    pub(super) receivers: Vec<ReceiverLog>,
}

/// Runs one phase: starts every receiver, then every sender at once, and waits for all.
pub(super) async fn run_phase<W: Wire>(
    wire: Arc<W>,
    pairs: Vec<PairLoad>,
    pace: Pace,
) -> anyhow::Result<Phase> {
    let n = pairs.len();
    let (start_tx, start_rx) = watch::channel(None);
    let mut receivers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for (pair, load) in pairs.into_iter().enumerate() {
        let expect = Expect {
            messages: load.frames.len(),
            queue_drained: false,
        };
        let PairLoad {
            sender,
            receiver,
            frames,
        } = load;
        let wire_rx = Arc::clone(&wire);
        receivers.push(tokio::spawn(async move {
            let mut receiver = receiver;
            let log = receive(&*wire_rx, &mut receiver, pair, expect).await;
            log.map(|log| (receiver, log))
        }));
        let wire_tx = Arc::clone(&wire);
        let mut start = start_rx.clone();
        senders.push(tokio::spawn(async move {
            let mut sender = sender;
            let t0 = wait_for_start(&mut start).await?;
            let pacing = pacing(pace, t0, pair, n);
            let log = send(&*wire_tx, &mut sender, pair, frames, pacing).await;
            log.map(|log| (sender, log))
        }));
    }
    // The open loop starts a little ahead so that every sender is awake for its first slot.
    let lead = match pace {
        Pace::Window(_) => Duration::ZERO,
        Pace::PerSenderRate(_) => Duration::from_millis(20),
    };
    start_tx.send_replace(Some(Instant::now() + lead));
    collect(senders, receivers).await
}

/// Joins every task; the first error wins, after all have ended.
async fn collect(
    senders: Vec<tokio::task::JoinHandle<anyhow::Result<(Link, SenderLog)>>>,
    receivers: Vec<tokio::task::JoinHandle<anyhow::Result<(Link, ReceiverLog)>>>,
) -> anyhow::Result<Phase> {
    let mut sent = Vec::with_capacity(senders.len());
    let mut first_error = None;
    for (pair, task) in senders.into_iter().enumerate() {
        match task.await.context("a sender task panicked")? {
            Ok(done) => sent.push(done),
            Err(e) => {
                first_error.get_or_insert(e.context(format!("sender of pair {pair}")));
            }
        }
    }
    let mut received = Vec::with_capacity(receivers.len());
    for (pair, task) in receivers.into_iter().enumerate() {
        match task.await.context("a receiver task panicked")? {
            Ok(done) => received.push(done),
            Err(e) => {
                first_error.get_or_insert(e.context(format!("receiver of pair {pair}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let (sender_links, senders): (Vec<Link>, Vec<SenderLog>) = sent.into_iter().unzip();
    let (receiver_links, receivers): (Vec<Link>, Vec<ReceiverLog>) = received.into_iter().unzip();
    Ok(Phase {
        links: sender_links.into_iter().zip(receiver_links).collect(),
        senders,
        receivers,
    })
}

/// The common start time, once the phase publishes it.
async fn wait_for_start(start: &mut watch::Receiver<Option<Instant>>) -> anyhow::Result<Instant> {
    let t0 = start
        .wait_for(Option::is_some)
        .await
        .context("the phase was abandoned before it started")?;
    (*t0).context("the start time is set")
}

/// Pair `pair`'s pacing: the window, or its schedule. Open-loop senders are staggered across
/// one interval so that the offered load is smooth rather than N simultaneous bursts.
fn pacing(pace: Pace, t0: Instant, pair: usize, n: usize) -> Pacing {
    match pace {
        Pace::Window(window) => Pacing::Window(window),
        Pace::PerSenderRate(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE));
            let offset = interval.mul_f64(pair as f64 / n.max(1) as f64);
            Pacing::Scheduled {
                first: t0 + offset,
                interval,
            }
        }
    }
}

impl Phase {
    /// Every delivered body, per pair and sequence number (taken: a second call gets none).
    pub(super) fn take_bodies(&mut self) -> Vec<Vec<Option<Vec<u8>>>> {
        self.receivers
            .iter_mut()
            .map(|r| std::mem::take(&mut r.bodies))
            .collect()
    }

    /// Counts and latencies over every pair.
    pub(super) fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for (sender, receiver) in self.senders.iter().zip(&self.receivers) {
            s.add(sender, receiver);
        }
        s
    }
}

/// Totals and latencies of one phase.
#[derive(Debug, Default)]
pub(super) struct Summary {
    /// Messages planned.
    planned: u64,
    /// Messages answered "accepted".
    pub(super) accepted: u64,
    /// Distinct messages delivered.
    pub(super) delivered: u64,
    /// Deliveries of a message already delivered.
    pub(super) duplicated: u64,
    /// Reference (write or due) time → delivery.
    latencies: Latencies,
    /// Reference time → "accepted".
    accept_latencies: Latencies,
    /// Due time → actual write (open loop only: the client's own timer lag).
    lag: Latencies,
    /// The first write of the phase.
    pub(super) first_write: Option<Instant>,
    /// The last delivery of the phase.
    pub(super) last_delivery: Option<Instant>,
    /// The last ack answer of the phase (when acks are answered).
    last_ack: Option<Instant>,
}

impl Summary {
    fn add(&mut self, sender: &SenderLog, receiver: &ReceiverLog) {
        self.planned += sender.reference.len() as u64;
        self.duplicated += receiver.duplicated;
        for seq in 0..sender.reference.len() {
            let reference = sender.reference[seq];
            let written = sender.written[seq];
            let accepted = sender.accepted[seq];
            let arrived = receiver.arrived.get(seq).copied().flatten();
            if let (Some(r), Some(w)) = (reference, written) {
                self.lag.push(w.saturating_duration_since(r));
                self.first_write = Some(self.first_write.map_or(w, |f| f.min(w)));
            }
            if let (Some(r), Some(a)) = (reference, accepted) {
                self.accepted += 1;
                self.accept_latencies.push(a.saturating_duration_since(r));
            }
            if let (Some(r), Some(a)) = (reference, arrived) {
                self.delivered += 1;
                self.latencies.push(a.saturating_duration_since(r));
                self.last_delivery = Some(self.last_delivery.map_or(a, |l| l.max(a)));
            }
        }
        if let Some(ack) = receiver.last_ack_answer {
            self.last_ack = Some(self.last_ack.map_or(ack, |l| l.max(ack)));
        }
    }

    /// Whether every planned message was accepted and delivered exactly once.
    pub(super) fn complete(&self) -> bool {
        self.duplicated == 0 && self.accepted == self.planned && self.delivered == self.planned
    }

    /// Seconds from the first write to the last delivery.
    pub(super) fn seconds(&self) -> f64 {
        match (self.first_write, self.last_delivery) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Delivered messages per second of [`seconds`](Self::seconds).
    pub(super) fn rate(&self) -> f64 {
        let seconds = self.seconds();
        if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        }
    }

    /// The figures every pair scenario reports: counts, rate, latency percentiles, and the
    /// "accepted" latency and (open loop) the client's timer lag as extras.
    pub(super) fn figures(&mut self, scenario: &str, n: u64) -> Figures {
        let mut f = Figures::new(scenario, n);
        f.sent = Some(self.accepted);
        f.delivered = Some(self.delivered);
        f.lost = Some(self.planned.saturating_sub(self.delivered));
        f.duplicated = Some(self.duplicated);
        f.seconds = self.seconds();
        f.messages_per_sec = Some(self.rate());
        if let Some((p50, p99, p999)) = self.latencies.percentiles_ms() {
            f.p50_ms = Some(p50);
            f.p99_ms = Some(p99);
            f.p999_ms = Some(p999);
        }
        if let Some((_, p99, _)) = self.accept_latencies.percentiles_ms() {
            f.set("accepted_p99_ms", p99);
        }
        if let (Some(first), Some(ack)) = (self.first_write, self.last_ack) {
            let seconds = ack.saturating_duration_since(first).as_secs_f64();
            if seconds > 0.0 {
                f.set("acked_per_sec", (self.delivered as f64 / seconds).round());
            }
        }
        f
    }

    /// The 99th percentile of the open loop's timer lag (due → written), in milliseconds.
    pub(super) fn lag_p99_ms(&mut self) -> Option<f64> {
        self.lag.percentiles_ms().map(|(_, p99, _)| p99)
    }
}

/// `total` messages split over `n` pairs as evenly as possible, at least one each.
pub(super) fn split(total: usize, n: usize) -> Vec<usize> {
    let n = n.max(1);
    (0..n)
        .map(|i| (total / n + usize::from(i < total % n)).max(1))
        .collect()
}

/// Runs `f` over `items` on the runtime, at most `limit` at a time, and returns the results
/// in order. For setup (connecting, registering): bounded so the process under test is not
/// flooded with handshakes.
pub(super) async fn concurrently<T, R, F, Fut>(
    items: Vec<T>,
    limit: usize,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
{
    futures_util::stream::iter(items.into_iter().map(|item| tokio::spawn(f(item))))
        .buffered(limit.max(1))
        .map(|joined| match joined {
            Ok(result) => result,
            Err(e) => bail!("a setup task failed: {e}"),
        })
        .try_collect()
        .await
}
