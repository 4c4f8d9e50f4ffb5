//! `store`: the storage ceiling. The relay's own sled engine ([`SledStore`], with its group
//! commit) alone, no network: each of `n` workers stores a 256-byte envelope for one recipient
//! and acknowledges it, exactly as the relay's `Send` and `Ack` handlers call the store. Next to
//! it, for scale, plain sled doing the same insert + delete with a flush per 1,000 writes
//! ([`store_raw`](super::store_raw)).
//!
//! The relay-equivalent path of one pair: `Store::enqueue` (one sled transaction over seven
//! trees, then a wait for the group-commit flush) and `Store::ack` (one transaction over five
//! trees, then another flush wait). Raw sled does two single-key writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use kith_protocol::{DeviceId, VerifiedCertificate};
use kith_relay::store::{
    Enqueue, IdempotencyKey, MailboxLimits, NewAccount, Recipient, SledOptions, SledStore, Store,
};
use tokio::task::JoinSet;

use super::Figures;
use super::args::Options;
use super::stats::Latencies;
use super::store_raw;
use crate::device::TestDevice;

/// Size of one stored envelope, as in the issue.
const BODY_LEN: usize = 256;
/// Seconds an entry lives (the relay's default envelope TTL).
const ENTRY_TTL: u64 = 30 * 24 * 3600;
/// Seconds an idempotency record lives (the relay's default retry window).
const IDEMPOTENCY_WINDOW: u64 = 24 * 3600;
/// What the relay does for one pair, for the table.
const RELAY_PATH: &str = "SledStore::enqueue (7-tree transaction + group-commit wait) + \
                          SledStore::ack (5-tree transaction + group-commit wait)";

/// How much one run does: worker counts, pairs per level, and a time cap per level so that
/// `n = 1` (two flushes in a row per pair) stays bounded on a slow disk.
struct Plan {
    levels: &'static [usize],
    pairs: u64,
    time_cap: Duration,
}

impl Plan {
    fn for_options(options: &Options) -> Self {
        if options.quick {
            Self {
                levels: &[1, 10, 100],
                pairs: 2_000,
                time_cap: Duration::from_secs(5),
            }
        } else {
            Self {
                levels: &[1, 10, 100, 1000],
                pairs: 50_000,
                time_cap: Duration::from_secs(30),
            }
        }
    }
}

pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let plan = Plan::for_options(options);
    let most = plan.levels.iter().copied().max().unwrap_or(1);
    let recipients = recipient_certificates(most).await?;
    let mut rows = Vec::new();
    for &workers in plan.levels {
        let level = u64::try_from(workers)?;
        rows.push(
            measure_store(&recipients[..workers], plan.pairs, plan.time_cap)
                .await
                .with_context(|| format!("store n={workers}"))?,
        );
        rows.push(
            store_raw::measure(level, plan.pairs)
                .await
                .with_context(|| format!("raw sled n={workers}"))?,
        );
    }
    Ok(rows)
}

/// Certificates of `count` devices, one recipient mailbox per worker so that workers do not
/// contend on one mailbox record (the relay's pairs do not either).
async fn recipient_certificates(count: usize) -> anyhow::Result<Vec<VerifiedCertificate>> {
    tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|i| {
                let seed = 70_000 + u64::try_from(i).unwrap_or(u64::MAX);
                TestDevice::new(&format!("store{i:04}"), seed, 0).certificate
            })
            .collect()
    })
    .await
    .context("generating recipient devices")
}

/// One level: a fresh store with one account per worker, then `pairs` enqueue + ack pairs
/// spread over the workers (or as many as fit in `time_cap`).
async fn measure_store(
    recipients: &[VerifiedCertificate],
    pairs: u64,
    time_cap: Duration,
) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("temporary directory for the store")?;
    let store = SledStore::open(dir.path().join("store"), SledOptions::default())
        .context("opening a sled store")?;
    let store = Arc::new(store);
    create_accounts(&store, recipients).await?;

    let flushes_before = store.flush_count();
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + time_cap;
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for certificate in recipients {
        let worker = Worker {
            store: Arc::clone(&store),
            recipient: certificate.device_id(),
            next: Arc::clone(&next),
            pairs,
            deadline,
        };
        workers.spawn(worker.run());
    }
    let mut tally = Tally::default();
    while let Some(joined) = workers.join_next().await {
        tally.add(joined.context("a store worker panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let flushes = store.flush_count() - flushes_before;

    let queue = store.queue_stats().await.context("queue stats")?;
    store.close().await.context("closing the store")?;
    if queue.entries != 0 || queue.bodies != 0 {
        bail!(
            "{} entries and {} bodies left in the store after every pair was acknowledged",
            queue.entries,
            queue.bodies
        );
    }
    tally.into_figures(recipients.len(), pairs, seconds, flushes)
}

/// Creates one account per recipient certificate, concurrently (so group commit batches them).
async fn create_accounts(
    store: &Arc<SledStore>,
    recipients: &[VerifiedCertificate],
) -> anyhow::Result<()> {
    let now = unix_now();
    let mut tasks = JoinSet::new();
    for (i, certificate) in recipients.iter().enumerate() {
        let store = Arc::clone(store);
        let new = NewAccount {
            handle: format!("store{i:04}"),
            certificate: certificate.clone(),
            invite: None,
            now,
        };
        tasks.spawn(async move { store.create_account(new).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .context("an account task panicked")?
            .context("creating a recipient account")?;
    }
    Ok(())
}

/// One concurrent client of the store: takes pair numbers until `pairs` are taken or the
/// deadline passes.
struct Worker {
    store: Arc<SledStore>,
    recipient: DeviceId,
    next: Arc<AtomicU64>,
    pairs: u64,
    deadline: Instant,
}

impl Worker {
    async fn run(self) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        loop {
            let pair = self.next.fetch_add(1, Ordering::Relaxed);
            if pair >= self.pairs || Instant::now() >= self.deadline {
                return Ok(tally);
            }
            let started = Instant::now();
            self.insert_then_delete(pair, &mut tally).await?;
            tally.latencies.push(started.elapsed());
        }
    }

    /// One pair: store an envelope for the recipient, then acknowledge its delivery id.
    async fn insert_then_delete(&self, pair: u64, tally: &mut Tally) -> anyhow::Result<()> {
        let receipt = self
            .store
            .enqueue(self.envelope(pair))
            .await
            .context("enqueue")?;
        ensure!(
            !receipt.duplicate,
            "pair {pair}: a fresh idempotency key was taken for a retry"
        );
        let [delivery] = receipt.deliveries[..] else {
            bail!(
                "pair {pair}: enqueue for one recipient returned {} delivery ids",
                receipt.deliveries.len()
            );
        };
        tally.enqueued += 1;
        let removed = self
            .store
            .ack(self.recipient, &[delivery])
            .await
            .context("ack")?;
        tally.acked += removed;
        Ok(())
    }

    /// The send the relay would store for pair `pair`: a unique client message id.
    fn envelope(&self, pair: u64) -> Enqueue {
        let mut client_message_id = [0u8; 16];
        client_message_id[..8].copy_from_slice(&pair.to_be_bytes());
        let now = unix_now();
        Enqueue {
            idempotency_key: IdempotencyKey::of_message(&client_message_id),
            body: vec![0x5a; BODY_LEN],
            recipients: vec![Recipient {
                device: self.recipient,
                part: None,
            }],
            arrived_at: now,
            expires_at: now + ENTRY_TTL,
            idempotent_until: now + IDEMPOTENCY_WINDOW,
            limits: MailboxLimits {
                max_entries: 1_000_000,
                max_bytes: 4 << 30,
            },
        }
    }
}

/// What workers counted.
#[derive(Default)]
struct Tally {
    latencies: Latencies,
    enqueued: u64,
    acked: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.enqueued += other.enqueued;
        self.acked += other.acked;
    }

    fn into_figures(
        mut self,
        workers: usize,
        planned: u64,
        seconds: f64,
        flushes: u64,
    ) -> anyhow::Result<Figures> {
        let mut row = Figures::new("store", u64::try_from(workers)?);
        let pairs = u64::try_from(self.latencies.len())?;
        row.messages_per_sec = Some(pairs as f64 / seconds);
        if let Some((p50, p99, p999)) = self.latencies.percentiles_ms() {
            row.p50_ms = Some(p50);
            row.p99_ms = Some(p99);
            row.p999_ms = Some(p999);
        }
        row.sent = Some(self.enqueued);
        row.delivered = Some(self.acked);
        row.lost = Some(self.enqueued.saturating_sub(self.acked));
        row.duplicated = Some(self.acked.saturating_sub(self.enqueued));
        row.seconds = seconds;
        row.set("engine", "kith-sled");
        row.set("flushes", flushes);
        if flushes > 0 {
            row.set("writes_per_flush", (2 * pairs) as f64 / flushes as f64);
        }
        if pairs < planned {
            row.set("time_capped_of", planned);
        }
        row.set("path", RELAY_PATH);
        Ok(row)
    }
}

/// Seconds since the Unix epoch, as the relay stamps entries.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
