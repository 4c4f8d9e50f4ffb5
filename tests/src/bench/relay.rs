//! `relay` and `relay-postgres`: N sender → receiver pairs through the real `kith-relay`,
//! carrying real sealed ratchet envelopes made before the clock starts.
//!
//! Per level: a fresh relay, 2N registered devices on connections that stay open, a session
//! per pair, the envelopes of both phases, then
//! 1. **peak** (closed loop): every sender keeps [`WINDOW`] sends outstanding; the rate is
//!    delivered messages over first send → last delivery;
//! 2. **half-peak** (open loop): every sender sends on a fixed schedule at half the peak rate
//!    in total; latency counts from the *scheduled* time, so a stall is not hidden. Its p99 is
//!    the figure for the target "p99 ≤ 5 ms at half of peak".
//!
//! After each phase every delivered envelope is opened and decrypted in order; a lost,
//! duplicated or undecryptable one fails the run.

use std::sync::Arc;

use anyhow::Context;
use kith_protocol::DeviceId;

use super::Figures;
use super::args::Options;
use super::envelopes::{self, Delivered, Envelopes, Inbound};
use super::load::{Pace, PairLoad, Summary, WINDOW, run_phase, split};
use super::load_database::BenchDatabase;
use super::load_relay::{
    MessageTag, Nodes, RelayWire, max_connections, send_frames, set_up_pairs, start_relay,
    stop_relay,
};
use super::load_watch::{ProcessWatch, Usage};
use super::net::Link;
use super::process::{BenchRelay, RelaySpec, StoreSpec};

/// Messages of the peak phase per level (split over the pairs).
const PEAK_MESSAGES: usize = 50_000;
/// [`PEAK_MESSAGES`] under `--quick`.
const QUICK_PEAK_MESSAGES: usize = 2_000;
/// Messages of the half-peak phase per level.
const HALF_PEAK_MESSAGES: usize = 20_000;
/// [`HALF_PEAK_MESSAGES`] under `--quick`.
const QUICK_HALF_PEAK_MESSAGES: usize = 1_000;
/// The largest level `relay-postgres` runs: beyond it a level takes minutes of setup against
/// one local PostgreSQL and says little more.
const POSTGRES_MAX_PAIRS: u64 = 100;
/// Log lines of each relay quoted when a level fails.
const LOG_TAIL: usize = 20;

/// `relay`: one sled relay per level.
pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let mut rows = Vec::new();
    for &n in &options.pairs {
        let n = usize::try_from(n)?;
        let relay = start_relay(&options.relay_bin, RelaySpec::sled(max_connections(n)?)).await?;
        let measured = measure(options, Nodes::single(&relay), n, "relay").await;
        let level = finish(vec![relay], measured).await;
        rows.extend(level.with_context(|| format!("relay with {n} pairs"))?);
    }
    Ok(rows)
}

/// `relay-postgres`: per level, one node, then two nodes on one database (senders on the
/// first, receivers on the second), each on a database of its own.
pub(super) async fn run_postgres(options: &Options, url: &str) -> anyhow::Result<Vec<Figures>> {
    let mut levels: Vec<u64> = options
        .pairs
        .iter()
        .map(|&n| n.min(POSTGRES_MAX_PAIRS))
        .collect();
    levels.dedup();
    let capped = options.pairs.iter().any(|&n| n > POSTGRES_MAX_PAIRS);
    let mut rows = Vec::new();
    for n in levels {
        let n = usize::try_from(n)?;
        for nodes in [1u8, 2] {
            let db = BenchDatabase::create(url).await?;
            let measured = postgres_level(options, db.url(), n, nodes).await;
            let dropped = db.drop_database().await;
            let mut level = measured
                .with_context(|| format!("relay-postgres with {n} pairs on {nodes} node(s)"))?;
            dropped?;
            for row in &mut level {
                row.set("nodes", nodes);
                if capped {
                    row.set(
                        "note",
                        format!("pair levels capped at {POSTGRES_MAX_PAIRS} for PostgreSQL"),
                    );
                }
            }
            rows.extend(level);
        }
    }
    Ok(rows)
}

/// One `relay-postgres` level on `nodes` relay nodes sharing the database at `db_url`.
async fn postgres_level(
    options: &Options,
    db_url: &str,
    n: usize,
    nodes: u8,
) -> anyhow::Result<Vec<Figures>> {
    let spec = RelaySpec {
        store: StoreSpec::Postgres(db_url.to_owned()),
        max_connections: max_connections(n)?,
        tls_from: None,
    };
    let first = start_relay(&options.relay_bin, spec.clone()).await?;
    if nodes == 1 {
        let measured = measure(options, Nodes::single(&first), n, "relay-postgres").await;
        return finish(vec![first], measured).await;
    }
    // One certificate for both nodes, as behind one name.
    let second = RelaySpec {
        tls_from: Some(first.data_dir()),
        ..spec
    };
    let second = start_relay(&options.relay_bin, second).await?;
    let nodes = Nodes {
        senders: &first,
        receivers: &second,
    };
    let measured = measure(options, nodes, n, "relay-postgres").await;
    finish(vec![first, second], measured).await
}

/// Stops the relays; on failure quotes the end of their logs.
async fn finish<T>(relays: Vec<BenchRelay>, measured: anyhow::Result<T>) -> anyhow::Result<T> {
    let measured = measured.map_err(|e| {
        let logs: Vec<String> = relays.iter().map(|r| tail(&r.log(), LOG_TAIL)).collect();
        e.context(format!("relay log (last lines):\n{}", logs.join("\n---\n")))
    });
    let mut stopped = Ok(());
    for relay in relays {
        stopped = stopped.and(stop_relay(relay).await);
    }
    let value = measured?;
    stopped?;
    Ok(value)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One level: setup, both phases, the checks; the peak and half-peak rows.
async fn measure(
    options: &Options,
    nodes: Nodes<'_>,
    n: usize,
    scenario: &str,
) -> anyhow::Result<Vec<Figures>> {
    let (peak_total, half_total) = if options.quick {
        (QUICK_PEAK_MESSAGES, QUICK_HALF_PEAK_MESSAGES)
    } else {
        (PEAK_MESSAGES, HALF_PEAK_MESSAGES)
    };
    let (mut level, [peak_envelopes, half_envelopes]) =
        Level::set_up(nodes, n, [peak_total, half_total]).await?;

    let mut peak = level
        .phase(nodes, peak_envelopes, Pace::Window(WINDOW))
        .await
        .context("peak phase")?;
    let mut peak_row = peak.figures(scenario, n, "peak");
    if !peak.complete() {
        return Ok(vec![peak_row]);
    }
    peak_row.set("decrypted", level.verify(peak.bodies).await?);

    let offered = peak.summary.rate() / 2.0;
    let per_sender = offered / n.max(1) as f64;
    let mut half = level
        .phase(nodes, half_envelopes, Pace::PerSenderRate(per_sender))
        .await
        .context("half-peak phase")?;
    let lag = half.summary.lag_p99_ms();
    let mut half_row = half.figures(scenario, n, "half-peak");
    half_row.set("offered_per_sec", offered.round());
    if let Some(lag) = lag {
        half_row.set("schedule_lag_p99_ms", lag);
    }
    if half.complete() {
        half_row.set("decrypted", level.verify(half.bodies).await?);
    }
    Ok(vec![peak_row, half_row])
}

/// A level's pairs between phases.
struct Level {
    /// Per pair: sender and receiver connections.
    links: Vec<(Link, Link)>,
    /// Per pair: the receiver's side.
    inbound: Vec<Inbound>,
    /// Per pair: the receiver's device.
    recipients: Vec<DeviceId>,
}

/// What one phase measured.
struct Measured {
    summary: Summary,
    usage: Usage,
    bodies: Delivered,
}

impl Level {
    /// Registers the pairs, starts their sessions and makes the envelopes of every phase
    /// (`totals[i]` messages for phase `i`, split over the pairs) before any clock starts.
    async fn set_up<const PHASES: usize>(
        nodes: Nodes<'_>,
        n: usize,
        totals: [usize; PHASES],
    ) -> anyhow::Result<(Self, [Envelopes; PHASES])> {
        let pairs = set_up_pairs(nodes, n).await?;
        let mut level = Self {
            links: Vec::with_capacity(n),
            inbound: Vec::with_capacity(n),
            recipients: Vec::with_capacity(n),
        };
        let mut outbound = Vec::with_capacity(n);
        for pair in pairs {
            level.links.push((pair.sender, pair.receiver));
            level.recipients.push(pair.outbound.recipient());
            outbound.push(pair.outbound);
            level.inbound.push(pair.inbound);
        }
        let mut made = Vec::with_capacity(PHASES);
        for total in totals {
            let envelopes;
            (outbound, envelopes) = envelopes::make(outbound, split(total, n)).await?;
            made.push(envelopes);
        }
        let made = made
            .try_into()
            .map_err(|_| anyhow::anyhow!("one set of envelopes per phase"))?;
        Ok((level, made))
    }

    /// Encodes the frames, runs the phase and watches the relay(s) meanwhile.
    async fn phase(
        &mut self,
        nodes: Nodes<'_>,
        mut envelopes: Envelopes,
        pace: Pace,
    ) -> anyhow::Result<Measured> {
        let tag = MessageTag::new();
        let per_pair = std::mem::take(&mut envelopes.per_pair);
        let mut loads = Vec::with_capacity(per_pair.len());
        let pairs = self.links.drain(..).zip(per_pair).zip(&self.recipients);
        for (pair, (((mut sender, receiver), bodies), &recipient)) in pairs.enumerate() {
            let frames = send_frames(&mut sender, &tag, pair, bodies, recipient)?;
            loads.push(PairLoad {
                sender,
                receiver,
                frames,
            });
        }
        let wire = Arc::new(RelayWire::new(tag, envelopes));
        let watch = ProcessWatch::start(nodes.pids())?;
        let phase = run_phase(wire, loads, pace).await;
        let usage = watch.finish()?;
        let mut phase = phase?;
        self.links = std::mem::take(&mut phase.links);
        Ok(Measured {
            summary: phase.summary(),
            usage,
            bodies: phase.take_bodies(),
        })
    }

    /// Opens and decrypts a phase's deliveries; returns how many.
    async fn verify(&mut self, bodies: Delivered) -> anyhow::Result<u64> {
        let inbound = std::mem::take(&mut self.inbound);
        let (inbound, decrypted) = envelopes::verify(inbound, bodies).await?;
        self.inbound = inbound;
        Ok(decrypted)
    }
}

impl Measured {
    /// Every message delivered exactly once (otherwise the row fails the run and the level
    /// stops there).
    fn complete(&self) -> bool {
        self.summary.complete()
    }

    fn figures(&mut self, scenario: &str, n: usize, phase: &str) -> Figures {
        let mut f = self.summary.figures(scenario, n as u64);
        f.set("phase", phase);
        self.usage.record(&mut f, "relay");
        f
    }
}
