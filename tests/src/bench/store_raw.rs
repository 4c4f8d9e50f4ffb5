//! Plain sled for scale: what the storage engine itself does with the same envelopes, without
//! Kith's transactions, indexes and group commit. One task inserts a 256-byte value under a
//! 16-byte key and removes it again, and flushes once per 1,000 writes (an insert and a
//! remove are a write each): the batching the issue measured at ≈ 330 k pairs/s here.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use super::Figures;
use super::stats::Latencies;

/// Value size, as the store scenario's envelopes.
const VALUE_LEN: usize = 256;
/// Writes per flush.
const WRITES_PER_FLUSH: u64 = 1_000;
/// The page cache the relay gives sled by default.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// `pairs` insert + remove pairs in one task; the row is labelled with the level `n` it stands
/// next to (the raw figure itself is always single-task).
pub(super) async fn measure(n: u64, pairs: u64) -> anyhow::Result<Figures> {
    let run = tokio::task::spawn_blocking(move || insert_then_remove(pairs))
        .await
        .context("the raw sled task panicked")??;
    let mut row = Figures::new("store", n);
    let mut latencies = run.latencies;
    row.messages_per_sec = Some(pairs as f64 / run.elapsed.as_secs_f64());
    if let Some((p50, p99, p999)) = latencies.percentiles_ms() {
        row.p50_ms = Some(p50);
        row.p99_ms = Some(p99);
        row.p999_ms = Some(p999);
    }
    row.sent = Some(pairs);
    row.delivered = Some(pairs);
    row.lost = Some(0);
    row.duplicated = Some(0);
    row.seconds = run.elapsed.as_secs_f64();
    row.set("engine", "raw-sled");
    row.set("tasks", 1);
    row.set("flushes", run.flushes);
    row.set(
        "path",
        "sled::Db::insert + sled::Db::remove, flush per 1000 writes",
    );
    Ok(row)
}

/// What one raw run measured.
struct RawRun {
    latencies: Latencies,
    elapsed: Duration,
    flushes: u64,
}

/// The timed loop, on a blocking thread (sled is synchronous).
fn insert_then_remove(pairs: u64) -> anyhow::Result<RawRun> {
    let dir = tempfile::tempdir().context("temporary directory for raw sled")?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(None)
        .open()
        .context("opening raw sled")?;
    let value = [0x5au8; VALUE_LEN];
    let mut latencies = Latencies::with_capacity(usize::try_from(pairs)?);
    let mut writes = 0u64;
    let mut flushes = 0u64;
    let mut flush_if_due = |db: &sled::Db| -> anyhow::Result<()> {
        writes += 1;
        if writes.is_multiple_of(WRITES_PER_FLUSH) {
            db.flush().context("sled flush")?;
            flushes += 1;
        }
        Ok(())
    };
    let started = Instant::now();
    for pair in 0..pairs {
        let began = Instant::now();
        let key = u128::from(pair).to_be_bytes();
        db.insert(key, &value[..]).context("sled insert")?;
        flush_if_due(&db)?;
        db.remove(key).context("sled remove")?;
        flush_if_due(&db)?;
        latencies.push(began.elapsed());
    }
    db.flush().context("final sled flush")?;
    let elapsed = started.elapsed();
    ensure!(
        db.is_empty(),
        "raw sled still holds {} keys after every pair removed its own",
        db.len()
    );
    Ok(RawRun {
        latencies,
        elapsed,
        flushes: flushes + 1,
    })
}
