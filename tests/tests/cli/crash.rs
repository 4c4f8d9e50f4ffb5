//! `kill -9` of the relay under a steady load: what it answered "accepted" survives, exactly
//! what was sent is delivered, and an acknowledgement it answered `Ok` sticks.
//!
//! Several sender/receiver pairs of protocol-level clients run at once against the real
//! `kith-relay serve` process (sled). Each sender pipelines numbered messages (a window of
//! [`WINDOW`] requests in flight) and records which were answered `Accepted`; when its
//! connection dies it reconnects once the relay is back and sends every message not yet
//! accepted again with the same `client_message_id`, which the relay deduplicates (SPEC.md
//! §9.3). Each receiver records every delivery and acknowledges in batches on the connection
//! that delivered them, as the `kith` client does. A driver kills the relay with SIGKILL each
//! time the number of accepted messages passes a point drawn from a seeded RNG, restarts it on
//! the same data directory and port, and after the last restart lets everything drain.
//!
//! Checked: (1) every accepted message is delivered; (2) nothing is delivered that its sender
//! had not sent, and every body is intact; (3) after an `Ack` is answered `Ok` its messages
//! never come again, so (4) every duplicate (counted and printed) is of a delivery not yet
//! acknowledged; every delivery of one message is the same mailbox entry (stored once, never a
//! lost copy); (5) after the drain the relay's queue is empty.
//!
//! A SIGKILL loses what sled has not yet handed to the kernel, not what the kernel has not yet
//! written to the disk: this checks that "accepted" and "Ok" come only after the write is
//! applied and survives a process crash, not the fsync behind them (a power cut).
//!
//! Nothing sleeps: clients wait for the driver's "relay restarted" signal (a `watch`
//! channel), the driver waits on a condition variable for the accepted count, every wait has a
//! deadline.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kith_protocol::rand_core::Rng;
use kith_protocol::wire::{Delivery, DeliveryId, Recipient, Request, Response, SendRequest};
use kith_protocol::{BoundedBytes, BoundedVec, DeviceId};
use kith_tests::cli::RelayProcess;
use kith_tests::connection::tls_config;
use kith_tests::{Connection, TestDevice, rng};
use tokio::sync::watch;

use crate::WAIT;

/// Sends in flight per sender connection.
const WINDOW: usize = 16;

/// Most deliveries acknowledged in one `Ack`.
const ACK_BATCH: usize = 32;

/// Length of every message body.
const BODY_LEN: usize = 200;

/// How long a client waits for the relay to come back after its connection failed.
const RECONNECT: Duration = Duration::from_secs(90);

/// How long the driver waits for the clients to reach the next kill point, and the clients to
/// finish after the last restart.
const PROGRESS: Duration = Duration::from_secs(120);

/// One run: how many pairs, messages and kills.
#[derive(Debug, Clone, Copy)]
struct Plan {
    pairs: u32,
    /// Messages per sender.
    messages: u64,
    kills: u64,
    seed: u64,
}

#[test]
fn accepted_messages_survive_kill_9_of_the_relay() {
    run(Plan {
        pairs: 4,
        messages: 10_000,
        kills: 20,
        seed: 0x6b69_6c6c,
    });
}

#[test]
#[ignore = "long kill -9 loop: cargo test -p kith-tests --test cli crash -- --ignored"]
fn accepted_messages_survive_many_kill_9_of_the_relay() {
    run(Plan {
        pairs: 4,
        messages: 50_000,
        kills: 100,
        seed: 0x6b69_6c6c_0064,
    });
}

/// What the clients tell the driver.
#[derive(Debug, Default)]
struct Counts {
    /// Messages answered `Accepted`, over all senders.
    accepted: u64,
    /// Client tasks that have ended (normally or not).
    finished: u32,
    /// Client tasks that panicked.
    failed: u32,
}

/// [`Counts`] and the condition variable the driver waits on.
#[derive(Debug, Default)]
struct Progress {
    counts: Mutex<Counts>,
    changed: Condvar,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_all();
    }

    fn accepted(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .accepted
    }

    /// Waits until `done` holds, or panics after `timeout`; returns the accepted count.
    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Counts) -> bool) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (counts, result) = self
            .changed
            .wait_timeout_while(counts, timeout, |c| !done(c))
            .unwrap_or_else(|e| e.into_inner());
        assert!(
            !result.timed_out(),
            "timed out after {timeout:?} waiting for {what}: {counts:?}"
        );
        counts.accepted
    }
}

/// Counts a client task as finished when it ends, and as failed when it panics.
struct Finished(Arc<Progress>);

impl Drop for Finished {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        self.0.update(|c| {
            c.finished += 1;
            c.failed += u32::from(failed);
        });
    }
}

/// What every client task needs to reach the relay.
#[derive(Clone)]
struct Link {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    /// How many times the relay has been started (its banner printed, so it accepts
    /// connections): the driver's announcement to the clients.
    generation: watch::Receiver<u64>,
    progress: Arc<Progress>,
}

impl Link {
    /// An authenticated connection as `device`, with the relay generation it reached.
    /// `failed` is the generation whose connection just failed: then only a later one will
    /// do (the relay was killed: nothing else closes a connection in this test).
    async fn connect(
        &mut self,
        who: &str,
        device: &TestDevice,
        mut failed: Option<(u64, String)>,
    ) -> (Connection, u64) {
        let deadline = tokio::time::Instant::now() + RECONNECT;
        loop {
            let after = failed.as_ref().map(|(g, _)| *g);
            let waited = tokio::time::timeout_at(
                deadline,
                self.generation
                    .wait_for(|g| after.is_none_or(|failed| *g > failed)),
            )
            .await
            .map(|generation| generation.map(|g| *g));
            let generation = match waited {
                Ok(Ok(generation)) => generation,
                Ok(Err(_)) => panic!("{who}: the driver is gone"),
                Err(_) => panic!(
                    "{who}: the relay did not come back within {RECONNECT:?} after the \
                     connection failed: {failed:?}"
                ),
            };
            match self.try_connect(device).await {
                Ok(Some(conn)) => return (conn, generation),
                Ok(None) => panic!("{who}: the relay refused to authenticate a registered device"),
                Err(e) => failed = Some((generation, format!("{e:#}"))),
            }
        }
    }

    /// Connects and authenticates; `Ok(None)` when the relay answers anything but `Ok`.
    async fn try_connect(&self, device: &TestDevice) -> anyhow::Result<Option<Connection>> {
        let mut conn = Connection::connect(self.addr, self.tls.clone()).await?;
        match conn.authenticate(device).await? {
            Response::Ok => Ok(Some(conn)),
            _ => Ok(None),
        }
    }
}

/// The client message id of message `seq` of sender `pair`.
fn message_id(pair: u32, seq: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&pair.to_be_bytes());
    id[4..12].copy_from_slice(&seq.to_be_bytes());
    id[12..].copy_from_slice(b"kill");
    id
}

/// The body of message `seq` of sender `pair`: both numbers, padded.
fn body(pair: u32, seq: u64) -> Vec<u8> {
    let mut body = b"crash".to_vec();
    body.extend_from_slice(&pair.to_be_bytes());
    body.extend_from_slice(&seq.to_be_bytes());
    let fill = u8::try_from(seq % 251).unwrap();
    body.resize(BODY_LEN, fill);
    body
}

/// `(pair, seq)` of a body made by [`body`], if it is one.
fn parse_body(bytes: &[u8]) -> Option<(u32, u64)> {
    let rest = bytes.strip_prefix(b"crash")?;
    let pair = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
    (body(pair, seq) == bytes).then_some((pair, seq))
}

/// What a sender did.
#[derive(Debug, Default)]
struct SenderLog {
    /// Messages answered `Accepted` (each once: an accepted message is not sent again).
    accepted: BTreeSet<u64>,
    /// Sends of a message that had been sent before without an `Accepted`.
    retries: u64,
    /// Connections after the first.
    reconnects: u64,
}

/// One sender: pipelines `messages` messages to `to`, sending again what a dead connection
/// left unanswered.
struct SenderTask {
    pair: u32,
    messages: u64,
    to: DeviceId,
    device: TestDevice,
    /// How many messages (`0..n`) have been handed to a connection at least once; shared
    /// with the receiver, which must never see a message beyond it.
    sent: Arc<AtomicU64>,
    /// Sent at least once, not answered `Accepted` yet.
    unaccepted: BTreeSet<u64>,
    /// Set once every message is accepted.
    done: watch::Sender<bool>,
    log: SenderLog,
}

impl SenderTask {
    async fn run(mut self, mut link: Link) -> SenderLog {
        let _finished = Finished(link.progress.clone());
        let who = format!("sender {}", self.pair);
        let mut failed = None;
        loop {
            let (mut conn, generation) = link.connect(&who, &self.device, failed.take()).await;
            match self.pump(&mut conn, &link.progress).await {
                Ok(()) => {
                    self.done.send_replace(true);
                    conn.close().await;
                    return self.log;
                }
                Err(e) if conn.is_closed() => {
                    self.log.reconnects += 1;
                    failed = Some((generation, format!("{e:#}")));
                }
                Err(e) => panic!(
                    "sender {}: {e:#} on an open connection to relay run {generation}; not \
                     accepted: {:?}",
                    self.pair, self.unaccepted
                ),
            }
        }
    }

    /// Sends until every message is accepted; `Err` when the connection fails.
    async fn pump(&mut self, conn: &mut Connection, progress: &Progress) -> anyhow::Result<()> {
        let mut again: VecDeque<u64> = self.unaccepted.iter().copied().collect();
        let mut window: VecDeque<(u64, u64)> = VecDeque::new();
        let result = self
            .fill_and_answer(conn, progress, &mut again, &mut window)
            .await;
        if result.is_err() {
            // Answers that arrived before the connection died still count.
            for (seq, request_id) in window {
                if let Ok(Ok(response)) =
                    tokio::time::timeout(Duration::ZERO, conn.response(request_id)).await
                {
                    self.answered(seq, response, progress);
                }
            }
        }
        result
    }

    async fn fill_and_answer(
        &mut self,
        conn: &mut Connection,
        progress: &Progress,
        again: &mut VecDeque<u64>,
        window: &mut VecDeque<(u64, u64)>,
    ) -> anyhow::Result<()> {
        loop {
            while window.len() < WINDOW {
                let seq = if let Some(seq) = again.pop_front() {
                    self.log.retries += 1;
                    seq
                } else if self.sent.load(Ordering::SeqCst) < self.messages {
                    let seq = self.sent.load(Ordering::SeqCst);
                    self.unaccepted.insert(seq);
                    self.sent.store(seq + 1, Ordering::SeqCst);
                    seq
                } else {
                    break;
                };
                let request_id = conn.send_request(self.request(seq)).await?;
                window.push_back((seq, request_id));
            }
            let Some(&(seq, request_id)) = window.front() else {
                return Ok(());
            };
            let response = conn.response(request_id).await?;
            window.pop_front();
            self.answered(seq, response, progress);
        }
    }

    fn answered(&mut self, seq: u64, response: Response, progress: &Progress) {
        let pair = self.pair;
        match response {
            Response::Accepted { client_message_id } => {
                assert_eq!(
                    client_message_id,
                    message_id(pair, seq),
                    "sender {pair} message {seq}: the wrong id accepted"
                );
                assert!(
                    self.unaccepted.remove(&seq) && self.log.accepted.insert(seq),
                    "sender {pair} message {seq}: accepted without being in flight"
                );
                progress.update(|c| c.accepted += 1);
            }
            other => panic!("sender {pair} message {seq}: unexpected answer {other:?}"),
        }
    }

    fn request(&self, seq: u64) -> Request {
        Request::Send(SendRequest {
            client_message_id: message_id(self.pair, seq),
            body: BoundedBytes::new(body(self.pair, seq)).unwrap(),
            recipients: BoundedVec::new(vec![Recipient {
                device_id: self.to,
                part: None,
            }])
            .unwrap(),
        })
    }
}

/// One delivery as a receiver saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    seq: u64,
    delivery_id: DeliveryId,
    /// The relay generation that pushed it.
    generation: u64,
    /// Whether an `Ack` of this message had already been answered `Ok`.
    after_ack_ok: bool,
}

/// What a receiver saw.
#[derive(Debug, Default)]
struct ReceiverLog {
    /// Every delivery, in arrival order.
    deliveries: Vec<Seen>,
    /// Messages delivered at least once.
    delivered: BTreeSet<u64>,
    /// Messages whose acknowledgement was answered `Ok`.
    acked: BTreeSet<u64>,
    /// Deliveries that were not of a message the sender had sent (or not intact).
    foreign: Vec<String>,
    /// `Ack` requests answered `Ok`.
    acks_ok: u64,
    /// Deliveries still queued for the final drain (acknowledged, but the answer lost).
    left_for_drain: usize,
    /// Connections after the first.
    reconnects: u64,
}

/// One receiver: records and acknowledges until every message of its sender has arrived, then,
/// once the sender is done, drains what is still queued.
struct ReceiverTask {
    pair: u32,
    messages: u64,
    device: TestDevice,
    /// The sender's [`SenderTask::sent`].
    sent: Arc<AtomicU64>,
    log: ReceiverLog,
}

impl ReceiverTask {
    async fn run(mut self, mut link: Link, mut sender_done: watch::Receiver<bool>) -> ReceiverLog {
        let _finished = Finished(link.progress.clone());
        let who = format!("receiver {}", self.pair);
        let mut failed = None;
        // Live: every message arrives at least once. An acknowledgement whose answer a kill
        // cut off may or may not have been applied, so this alone does not empty the mailbox.
        loop {
            let (mut conn, generation) = link.connect(&who, &self.device, failed.take()).await;
            match self.receive(&mut conn, generation).await {
                Ok(()) => {
                    conn.close().await;
                    break;
                }
                Err(e) if conn.is_closed() => {
                    self.log.reconnects += 1;
                    failed = Some((generation, format!("{e:#}")));
                }
                Err(e) => self.stalled(&e, generation),
            }
        }
        // Drain: once the sender has every message accepted, nothing new arrives, so a fresh
        // connection's initial push (up to `QueueDrained`) is everything still queued.
        let done = tokio::time::timeout(PROGRESS, sender_done.wait_for(|done| *done))
            .await
            .is_ok_and(|waited| waited.is_ok());
        assert!(done, "{who}: the sender did not finish within {PROGRESS:?}");
        loop {
            let (mut conn, generation) = link.connect(&who, &self.device, failed.take()).await;
            match self.drain(&mut conn, generation).await {
                Ok(()) => {
                    conn.close().await;
                    return self.log;
                }
                Err(e) if conn.is_closed() => {
                    self.log.reconnects += 1;
                    failed = Some((generation, format!("{e:#}")));
                }
                Err(e) => self.stalled(&e, generation),
            }
        }
    }

    /// A wait failed on an open connection: nothing arrived for [`WAIT`].
    fn stalled(&self, e: &anyhow::Error, generation: u64) -> ! {
        let missing: Vec<u64> = (0..self.messages)
            .filter(|seq| !self.log.delivered.contains(seq))
            .collect();
        panic!(
            "receiver {}: {e:#} on an open connection to relay run {generation}; never \
             delivered: {missing:?}; {} sent",
            self.pair,
            self.sent.load(Ordering::SeqCst)
        );
    }

    /// Receives and acknowledges until every message has arrived; `Err` when the connection
    /// fails. Acknowledgements go on the connection that delivered, as with the `kith`
    /// client: a pending one is not carried over to the next connection.
    async fn receive(&mut self, conn: &mut Connection, generation: u64) -> anyhow::Result<()> {
        while u64::try_from(self.log.delivered.len()).unwrap() < self.messages {
            let first = conn.next_delivery(WAIT).await?;
            let mut batch = vec![self.record(&first, generation)];
            while batch.len() < ACK_BATCH {
                // Whatever has arrived already joins the batch.
                match conn.next_delivery(Duration::ZERO).await {
                    Ok(delivery) => batch.push(self.record(&delivery, generation)),
                    Err(e) if conn.is_closed() => return Err(e),
                    Err(_) => break,
                }
            }
            self.acknowledge(conn, &batch).await?;
        }
        Ok(())
    }

    /// Reads the initial push up to `QueueDrained` and acknowledges all of it.
    async fn drain(&mut self, conn: &mut Connection, generation: u64) -> anyhow::Result<()> {
        let queued = conn.drain_queue(WAIT).await?;
        self.log.left_for_drain += queued.len();
        let batch: Vec<(Option<u64>, DeliveryId)> = queued
            .iter()
            .map(|delivery| self.record(delivery, generation))
            .collect();
        for chunk in batch.chunks(ACK_BATCH) {
            self.acknowledge(conn, chunk).await?;
        }
        Ok(())
    }

    /// Acknowledges `batch`; an `Ok` answer marks its messages acknowledged.
    async fn acknowledge(
        &mut self,
        conn: &mut Connection,
        batch: &[(Option<u64>, DeliveryId)],
    ) -> anyhow::Result<()> {
        let ids: Vec<DeliveryId> = batch.iter().map(|(_, id)| *id).collect();
        match conn.ack(&ids).await? {
            Response::Ok => {
                self.log.acks_ok += 1;
                self.log
                    .acked
                    .extend(batch.iter().filter_map(|(seq, _)| *seq));
                Ok(())
            }
            other => panic!("receiver {}: Ack answered {other:?}", self.pair),
        }
    }

    /// Records a delivery; returns its message (`None` if it is not one of the sender's) and
    /// delivery id.
    fn record(&mut self, delivery: &Delivery, generation: u64) -> (Option<u64>, DeliveryId) {
        let id = delivery.delivery_id;
        let sent = self.sent.load(Ordering::SeqCst);
        match parse_body(delivery.body.as_slice()) {
            Some((pair, seq)) if pair == self.pair && seq < sent && delivery.part.is_none() => {
                self.log.deliveries.push(Seen {
                    seq,
                    delivery_id: id,
                    generation,
                    after_ack_ok: self.log.acked.contains(&seq),
                });
                self.log.delivered.insert(seq);
                (Some(seq), id)
            }
            parsed => {
                self.log.foreign.push(format!(
                    "delivery {id} in relay run {generation}: {parsed:?}, {} bytes, \
                     {sent} messages sent so far",
                    delivery.body.as_slice().len()
                ));
                (None, id)
            }
        }
    }
}

/// Kill points: after how many accepted messages (in total) each kill comes, spread over the
/// run with seeded jitter.
fn kill_points(plan: &Plan) -> Vec<u64> {
    let total = u64::from(plan.pairs) * plan.messages;
    let step = total / (plan.kills + 1);
    let mut rng = rng(plan.seed);
    (1..=plan.kills)
        .map(|k| k * step - step / 4 + rng.next_u64() % (step / 2).max(1))
        .collect()
}

fn run(plan: Plan) {
    let started = Instant::now();
    let mut relay = RelayProcess::start_open_with_env(&[
        ("KITH_RELAY_SEND_RATE_PER_SECOND", "1000000"),
        ("KITH_RELAY_SEND_BURST", "1000000"),
    ]);
    let pem = std::fs::read_to_string(relay.ca_path()).unwrap();
    let tls = tls_config(&pem).unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, relay.port()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let pairs: Vec<(TestDevice, TestDevice)> = (0..plan.pairs)
        .map(|p| {
            let seed = plan.seed.wrapping_add(u64::from(p) * 2);
            (
                TestDevice::new(&format!("sender{p}"), seed, 0),
                TestDevice::new(&format!("receiver{p}"), seed + 1, 0),
            )
        })
        .collect();
    rt.block_on(async {
        for device in pairs.iter().flat_map(|(s, r)| [s, r]) {
            let mut conn = Connection::connect(addr, tls.clone()).await.unwrap();
            assert_eq!(conn.register(device, None).await.unwrap(), Response::Ok);
            conn.close().await;
        }
    });

    let (restarted, generation) = watch::channel(1u64);
    let progress = Arc::new(Progress::default());
    let link = Link {
        addr,
        tls,
        generation,
        progress: progress.clone(),
    };
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (pair, (sender, receiver)) in (0..plan.pairs).zip(pairs) {
        let sent = Arc::new(AtomicU64::new(0));
        let (done, sender_done) = watch::channel(false);
        let to = receiver.device_id();
        receivers.push(
            rt.spawn(
                ReceiverTask {
                    pair,
                    messages: plan.messages,
                    device: receiver,
                    sent: sent.clone(),
                    log: ReceiverLog::default(),
                }
                .run(link.clone(), sender_done),
            ),
        );
        senders.push(
            rt.spawn(
                SenderTask {
                    pair,
                    messages: plan.messages,
                    to,
                    device: sender,
                    sent,
                    unaccepted: BTreeSet::new(),
                    done,
                    log: SenderLog::default(),
                }
                .run(link.clone()),
            ),
        );
    }
    drop(link);

    // The driver: kill at each point (unless a client task failed, which joining it below
    // reports), restart, announce.
    let tasks = plan.pairs * 2;
    let mut kills = Vec::new();
    let mut downtime = Duration::ZERO;
    for (k, point) in (1..).zip(kill_points(&plan)) {
        let accepted = progress.wait(
            &format!("{point} accepted messages (kill {k})"),
            PROGRESS,
            |c| c.accepted >= point || c.failed > 0,
        );
        if accepted < point {
            break;
        }
        let killed = Instant::now();
        let at_kill = progress.accepted();
        relay.kill_and_restart();
        downtime += killed.elapsed();
        restarted.send_modify(|g| *g += 1);
        kills.push((point, at_kill));
    }
    progress.wait("every client to finish", PROGRESS, |c| c.finished == tasks);

    // Senders first: a receiver fails too when its sender does.
    let sender_logs: Vec<SenderLog> = join_all(&rt, senders);
    let receiver_logs: Vec<ReceiverLog> = join_all(&rt, receivers);
    assert_eq!(
        kills.len(),
        usize::try_from(plan.kills).unwrap(),
        "every kill happened"
    );

    let mut duplicates = 0usize;
    let mut failures = Vec::new();
    for (pair, (sender, receiver)) in (0..plan.pairs).zip(sender_logs.iter().zip(&receiver_logs)) {
        // Every message was accepted in the end (the senders retry until it is).
        let all: BTreeSet<u64> = (0..plan.messages).collect();
        assert_eq!(sender.accepted, all, "pair {pair}: every message accepted");
        // (2) Nothing was delivered that the sender had not sent, and everything intact.
        if !receiver.foreign.is_empty() {
            failures.push(format!(
                "pair {pair}: deliveries of messages never sent: {:?}",
                receiver.foreign
            ));
        }
        let mut by_seq: BTreeMap<u64, Vec<Seen>> = BTreeMap::new();
        for seen in &receiver.deliveries {
            by_seq.entry(seen.seq).or_default().push(*seen);
        }
        // (1) Every accepted message was delivered.
        let lost: Vec<u64> = sender
            .accepted
            .difference(&receiver.delivered)
            .copied()
            .collect();
        if !lost.is_empty() {
            failures.push(format!(
                "pair {pair}: accepted but never delivered: {lost:?}"
            ));
        }
        for (seq, seen) in &by_seq {
            // (3) After an `Ok` to its acknowledgement a message never comes again, so (4)
            // every duplicate is of a delivery not yet acknowledged.
            if let Some(again) = seen.iter().find(|s| s.after_ack_ok) {
                failures.push(format!(
                    "pair {pair} message {seq}: delivered again after its acknowledgement was \
                     answered Ok: {again:?} (all: {seen:?})"
                ));
            }
            // A message is stored once, and only what is stored durably is pushed: every
            // delivery of it, before and after a kill, is the same mailbox entry.
            let ids: BTreeSet<DeliveryId> = seen.iter().map(|s| s.delivery_id).collect();
            if ids.len() > 1 {
                let how: Vec<String> = seen
                    .iter()
                    .map(|s| format!("entry {} from relay run {}", s.delivery_id, s.generation))
                    .collect();
                failures.push(format!(
                    "pair {pair} message {seq}: delivered as {} different mailbox entries \
                     (stored twice, or pushed before it was durable and then lost): {}",
                    ids.len(),
                    how.join(", ")
                ));
            }
            duplicates += seen.len() - 1;
        }
    }

    // (5) Drained: the relay holds nothing more.
    let queued = relay.stat("queued_envelopes");
    let total = u64::from(plan.pairs) * plan.messages;
    let deliveries: usize = receiver_logs.iter().map(|r| r.deliveries.len()).sum();
    let retries: u64 = sender_logs.iter().map(|s| s.retries).sum();
    let reconnects: u64 = sender_logs
        .iter()
        .map(|s| s.reconnects)
        .chain(receiver_logs.iter().map(|r| r.reconnects))
        .sum();
    let acks: u64 = receiver_logs.iter().map(|r| r.acks_ok).sum();
    let left: usize = receiver_logs.iter().map(|r| r.left_for_drain).sum();
    eprintln!(
        "kill -9 x{}: {total} messages accepted, {deliveries} deliveries ({duplicates} \
         duplicates of deliveries not yet acknowledged), {retries} sends retried, {acks} acks \
         answered Ok, {left} left for the final drain, {reconnects} reconnects; kills at (point, accepted) {kills:?}; relay \
         down+restarting {downtime:?} in total; {:?}",
        kills.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\nrelay log:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&relay.log(), 4000)
    );
    assert_eq!(queued, 0, "the relay's queue is empty after draining");
}

/// The results of `tasks`; a task's panic is raised here.
fn join_all<T>(rt: &tokio::runtime::Runtime, tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    rt.block_on(async {
        let mut out = Vec::new();
        for task in tasks {
            match task.await {
                Ok(result) => out.push(result),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        out
    })
}

/// The last `n` bytes of `text` (at a character boundary).
fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
