//! `idle`: 10,000 authenticated idle connections, and what each costs the relay in memory.
//!
//! The devices register first (each on a connection closed straight after), so the baseline is
//! a relay that knows every account but holds no connection. Then every device opens a
//! connection and authenticates, and all stay open; the relay's RSS after they settle, minus
//! the baseline, divided by the count, is the figure (target ≤ 16 KiB per connection).
//!
//! The helpers to register devices and to read the relay's connection counts are shared with
//! `group`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use kith_protocol::wire::{Request, Response};
use kith_relay::admin::Stats;
use kith_relay::admin::client::AdminClient;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Figures;
use super::args::Options;
use super::process::{BenchRelay, RelaySpec};
use crate::connection::Connection;
use crate::device::TestDevice;

/// The relay's connection cap: room for 10,000 and then some.
const MAX_CONNECTIONS: u32 = 12_000;
/// The target.
const TARGET_BYTES_PER_CONNECTION: u64 = 16 * 1024;
/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 64;
/// Connection handshakes in flight at once (the relay admits 4,096 unauthenticated).
const CONNECT_CONCURRENCY: usize = 200;
/// Connections that make a round trip before each RSS sample.
const SAMPLE_CONNECTIONS: usize = 100;
/// RSS samples taken with every connection open.
const RSS_SAMPLES: usize = 3;
/// How long the relay may take to notice closed or new connections.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors besides the sockets: sled, TLS files, the runtime, stdio.
const SPARE_FILES: u64 = 512;

pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let n: usize = if options.quick { 1_000 } else { 10_000 };
    check_open_files(u64::try_from(n)?, "kith-bench", std::process::id())?;
    let relay = start_relay(options, MAX_CONNECTIONS).await?;
    check_open_files(u64::try_from(n)?, "kith-relay", relay.pid())?;
    let row = measure(&relay, n).await;
    relay.stop().context("stopping the relay")?;
    Ok(vec![row?])
}

/// Starts `kith-relay serve` (blocking while it starts, so off the runtime's workers).
/// `max_connections` must be at least the bench configuration's `max_unauthenticated`, 4,096.
pub(super) async fn start_relay(
    options: &Options,
    max_connections: u32,
) -> anyhow::Result<BenchRelay> {
    let bin = options.relay_bin.clone();
    tokio::task::spawn_blocking(move || BenchRelay::start(&bin, &RelaySpec::sled(max_connections)))
        .await
        .context("the relay start task panicked")?
}

async fn measure(relay: &BenchRelay, n: usize) -> anyhow::Result<Figures> {
    let admin = AdminClient::from_data_dir(&relay.data_dir())
        .context("the relay's admin.json (needed for its connection counts)")?;
    let rss_start = relay.rss_bytes()?;
    let devices = Arc::new(generate_devices(n, 100_000, "idle").await?);

    let registering = Instant::now();
    register_all(relay, &devices).await?;
    let register_seconds = registering.elapsed().as_secs_f64();
    wait_for(&admin, "every registration connection to close", |s| {
        s.connections == 0
    })
    .await?;
    let rss_baseline = relay.rss_bytes()?;

    let opening = Instant::now();
    let mut connections = open_authenticated(relay, &devices).await?;
    let seconds = opening.elapsed().as_secs_f64();
    wait_for(
        &admin,
        "every connection to be counted as authenticated",
        |s| s.authenticated == n,
    )
    .await?;
    let rss = settled_rss(relay, &devices, &mut connections).await?;
    let stats = relay_stats(&admin).await?;
    ensure!(
        stats.authenticated == n,
        "{} of {n} connections were still authenticated at the end",
        stats.authenticated
    );
    drop(connections);

    let count = u64::try_from(n)?;
    let per_connection = rss.saturating_sub(rss_baseline) / count;
    let mut row = Figures::new("idle", count);
    row.rss_bytes = Some(rss);
    row.rss_bytes_per_connection = Some(per_connection);
    row.seconds = seconds;
    row.set("connections_per_sec", count as f64 / seconds);
    row.set("rss_baseline_bytes", rss_baseline);
    row.set("rss_start_bytes", rss_start);
    row.set(
        "rss_bytes_per_connection_since_start",
        rss.saturating_sub(rss_start) / count,
    );
    row.set("register_seconds", register_seconds);
    row.set("target_bytes_per_connection", TARGET_BYTES_PER_CONNECTION);
    row.set("met", per_connection <= TARGET_BYTES_PER_CONNECTION);
    Ok(row)
}

/// Fails with advice when the open-file limit of process `pid` cannot hold `sockets` sockets.
fn check_open_files(sockets: u64, name: &str, pid: u32) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading the open-file limit of {name}"))?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .context("no \"Max open files\" line in /proc/PID/limits")?;
    let needed = sockets + SPARE_FILES;
    if soft != "unlimited" && soft.parse::<u64>().context("the open-file limit")? < needed {
        bail!(
            "{name} may open {soft} files, but {sockets} connections need about {needed}: \
             raise the limit (`ulimit -n {}`) and run again",
            needed.next_multiple_of(1000)
        );
    }
    Ok(())
}

/// `count` devices without one-time prekeys (generating the ML-KEM prekeys takes a while:
/// two blocking threads, one per core).
pub(super) async fn generate_devices(
    count: usize,
    first_seed: u64,
    prefix: &str,
) -> anyhow::Result<Vec<TestDevice>> {
    let half = count / 2;
    let make = |range: std::ops::Range<usize>| {
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            range
                .map(|i| {
                    let seed = first_seed + u64::try_from(i).unwrap_or(u64::MAX);
                    TestDevice::new(&format!("{prefix}{i:05}"), seed, 0)
                })
                .collect::<Vec<_>>()
        })
    };
    let (first, second) = tokio::join!(make(0..half), make(half..count));
    let mut devices = first.context("generating devices")?;
    devices.extend(second.context("generating devices")?);
    Ok(devices)
}

/// Registers every device on its own connection, `REGISTER_CONCURRENCY` at a time, closing
/// each connection once registered.
async fn register_all(relay: &BenchRelay, devices: &Arc<Vec<TestDevice>>) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..devices.len() {
        let (addr, tls) = (relay.addr(), relay.tls());
        let (devices, permits) = (Arc::clone(devices), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            register(addr, tls, &devices[i]).await?.close().await;
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a registration task panicked")??;
    }
    Ok(())
}

/// Registers `device` on a new connection (open registration), which stays authenticated.
pub(super) async fn register(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    device: &TestDevice,
) -> anyhow::Result<Connection> {
    let mut conn = Connection::connect(addr, tls).await?;
    match conn.register(device, None).await? {
        Response::Ok => Ok(conn),
        other => bail!(
            "registering {} was answered {other:?}",
            device.handle.as_str()
        ),
    }
}

/// Opens and authenticates one connection per device, `CONNECT_CONCURRENCY` at a time.
async fn open_authenticated(
    relay: &BenchRelay,
    devices: &Arc<Vec<TestDevice>>,
) -> anyhow::Result<Vec<Connection>> {
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..devices.len() {
        let (addr, tls) = (relay.addr(), relay.tls());
        let (devices, permits) = (Arc::clone(devices), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let device = &devices[i];
            let mut conn = Connection::connect(addr, tls).await?;
            match conn.authenticate(device).await? {
                Response::Ok => anyhow::Ok((i, conn)),
                other => bail!(
                    "authenticating {} was answered {other:?}",
                    device.handle.as_str()
                ),
            }
        });
    }
    let mut opened: Vec<Option<Connection>> = (0..devices.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, conn) = joined.context("a connection task panicked")??;
        opened[i] = Some(conn);
    }
    opened
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("a connection went missing")
}

/// The relay's RSS once the connections have settled: the peak of a few samples, each taken
/// after a round trip on a spread-out sample of the connections.
async fn settled_rss(
    relay: &BenchRelay,
    devices: &[TestDevice],
    connections: &mut [Connection],
) -> anyhow::Result<u64> {
    let step = (connections.len() / SAMPLE_CONNECTIONS).max(1);
    let mut peak = 0;
    for _ in 0..RSS_SAMPLES {
        for i in (0..connections.len()).step_by(step) {
            round_trip(&mut connections[i], &devices[i]).await?;
        }
        peak = peak.max(relay.rss_bytes()?);
    }
    Ok(peak)
}

/// A directory lookup of the device's own handle: proves the connection is alive.
async fn round_trip(conn: &mut Connection, device: &TestDevice) -> anyhow::Result<()> {
    let lookup = Request::Lookup {
        handle: device.handle.clone(),
    };
    match conn.request(lookup).await? {
        Response::Account { .. } => Ok(()),
        other => bail!(
            "looking up {} was answered {other:?}",
            device.handle.as_str()
        ),
    }
}

/// The relay's totals and connection counts.
pub(super) async fn relay_stats(admin: &AdminClient) -> anyhow::Result<Stats> {
    admin.stats().await.context("the relay's admin stats")
}

/// Polls the relay's counts until `done` holds. The relay publishes no event for this, so the
/// wait polls every 20 ms, bounded by `SETTLE_TIMEOUT`.
pub(super) async fn wait_for(
    admin: &AdminClient,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> anyhow::Result<Stats> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let stats = relay_stats(admin).await?;
        if done(&stats) {
            return Ok(stats);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {SETTLE_TIMEOUT:?} waiting for {what}; the relay reports {stats:?}"
            );
        }
    }
}
