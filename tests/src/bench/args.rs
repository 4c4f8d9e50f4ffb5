//! The command line, the scenario dispatch, and the output (table and JSON lines).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use super::{Figures, bare, catchup, crypto, group, idle, relay, store};

/// The environment variable naming the PostgreSQL database for `relay-postgres` (falls back to
/// `KITH_TEST_DATABASE_URL`, which CI sets).
pub(super) const DATABASE_ENV: &str = "KITH_BENCH_DATABASE_URL";

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in this order.
    All,
    /// The ceiling: a minimal rustls + tokio-tungstenite forwarder, no storage or crypto.
    Bare,
    /// The real kith-relay (sled) carrying real sealed envelopes between N pairs.
    Relay,
    /// The storage ceiling: the sled engine alone, insert + delete pairs with group commit.
    Store,
    /// `relay` against the PostgreSQL engine, one node and two nodes.
    RelayPostgres,
    /// 10,000 authenticated idle connections: relay RSS per connection.
    Idle,
    /// One device receives a queue of 10,000 envelopes on connect: time to drain.
    Catchup,
    /// One message to a 50-member circle: upload bytes, time to every member.
    Group,
    /// Protocol operations next to the raw primitives they are made of.
    Crypto,
}

impl Scenario {
    /// Every concrete scenario, in the order `all` runs them.
    pub const EVERY: [Scenario; 8] = [
        Scenario::Crypto,
        Scenario::Store,
        Scenario::Bare,
        Scenario::Relay,
        Scenario::RelayPostgres,
        Scenario::Idle,
        Scenario::Catchup,
        Scenario::Group,
    ];

    /// The name on the command line and in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Bare => "bare",
            Scenario::Relay => "relay",
            Scenario::Store => "store",
            Scenario::RelayPostgres => "relay-postgres",
            Scenario::Idle => "idle",
            Scenario::Catchup => "catchup",
            Scenario::Group => "group",
            Scenario::Crypto => "crypto",
        }
    }
}

/// `kith-bench`: Kith's benchmark driver.
#[derive(Debug, Parser)]
#[command(
    name = "kith-bench",
    about = "Kith's benchmark driver: the relay, its storage and its protocol next to the \
             ceilings of their own stack, measured in one run on loopback.",
    after_help = "Build first (the relay runs as a child process, the kith-relay next to kith-bench):
  cargo build --release -p kith-relay -p kith-tests --bins
Examples:
  target/release/kith-bench all --json bench.jsonl
  target/release/kith-bench relay bare --pairs 1,10,100
  target/release/kith-bench all --quick                # a smoke run: checks nothing is lost
  KITH_BENCH_DATABASE_URL=postgres://kith:kith@127.0.0.1/kith_bench target/release/kith-bench relay-postgres

Every scenario checks that each message sent was delivered exactly once (and decrypted where
it is encrypted); a run that loses or duplicates one exits 1. See BENCHMARKS.md."
)]
pub struct Args {
    /// Scenarios to run, in order.
    #[arg(value_enum, required = true, num_args = 1..)]
    pub scenarios: Vec<Scenario>,
    /// A short run with small counts (under a minute for `all`): for smoke tests, not figures.
    #[arg(long)]
    pub quick: bool,
    /// Also write one JSON object per result line to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Pair counts for `bare`, `relay` and `relay-postgres` [default: 1,10,100,1000; quick:
    /// 1,10,100].
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub pairs: Option<Vec<u64>>,
    /// PostgreSQL URL of a role that may create databases, for `relay-postgres` [env:
    /// KITH_BENCH_DATABASE_URL, then KITH_TEST_DATABASE_URL]. Without one the scenario is
    /// skipped (and fails under CI=true).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The kith-relay executable [default: the one next to kith-bench].
    #[arg(long, value_name = "PATH")]
    pub relay_bin: Option<PathBuf>,
}

/// What every scenario gets.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// Small counts for a smoke run.
    pub(super) quick: bool,
    /// Pair counts for the pair scenarios.
    pub(super) pairs: Vec<u64>,
    /// PostgreSQL URL (a role with CREATEDB), if any.
    pub(super) database_url: Option<String>,
    /// The kith-relay executable.
    pub(super) relay_bin: PathBuf,
}

pub(super) fn main() -> ExitCode {
    if let Some(code) = bare::child_main_if_requested() {
        return code;
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let relay_bin = match args.relay_bin {
        Some(path) => path,
        None => sibling("kith-relay")?,
    };
    if !relay_bin.is_file() {
        bail!(
            "{} does not exist: build it first with `cargo build --release -p kith-relay -p kith-tests --bins` \
             (or pass --relay-bin)",
            relay_bin.display()
        );
    }
    let options = Options {
        quick: args.quick,
        pairs: args.pairs.unwrap_or_else(|| {
            if args.quick {
                vec![1, 10, 100]
            } else {
                vec![1, 10, 100, 1000]
            }
        }),
        database_url: args
            .database_url
            .or_else(|| std::env::var(DATABASE_ENV).ok())
            .or_else(|| std::env::var("KITH_TEST_DATABASE_URL").ok()),
        relay_bin,
    };
    let mut scenarios = Vec::new();
    for s in args.scenarios {
        if s == Scenario::All {
            scenarios.extend(Scenario::EVERY);
        } else {
            scenarios.push(s);
        }
    }
    let mut json = match &args.json {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let started = Instant::now();
    print_header();
    let mut failures = Vec::new();
    for scenario in scenarios {
        let result = runtime.block_on(run_scenario(scenario, &options));
        match result {
            Ok(rows) => {
                for row in &rows {
                    print_row(row);
                    if let Some(file) = json.as_mut() {
                        serde_json::to_writer(&mut *file, row)?;
                        writeln!(file)?;
                    }
                    if let Err(e) = row.check_delivery() {
                        failures.push(format!("{e:#}"));
                    }
                }
            }
            Err(e) => {
                eprintln!("{}: FAILED: {e:#}", scenario.name());
                failures.push(format!("{}: {e:#}", scenario.name()));
            }
        }
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} failure(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
    }
}

async fn run_scenario(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Figures>> {
    match scenario {
        Scenario::All => bail!("`all` is expanded before running"),
        Scenario::Bare => bare::run(options).await,
        Scenario::Relay => relay::run(options).await,
        Scenario::Store => store::run(options).await,
        Scenario::RelayPostgres => match &options.database_url {
            Some(url) => relay::run_postgres(options, url).await,
            None if std::env::var_os("CI").is_some_and(|v| v == "true") => bail!(
                "no PostgreSQL: set {DATABASE_ENV} or KITH_TEST_DATABASE_URL (required under CI)"
            ),
            None => {
                println!(
                    "relay-postgres: skipped: no PostgreSQL URL (set {DATABASE_ENV} or pass --database-url)"
                );
                Ok(Vec::new())
            }
        },
        Scenario::Idle => idle::run(options).await,
        Scenario::Catchup => catchup::run(options).await,
        Scenario::Group => group::run(options).await,
        Scenario::Crypto => crypto::run(options).await,
    }
}

/// `target/<profile>/<name>`, next to this executable.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the path of kith-bench")?;
    let dir = exe.parent().context("kith-bench has no directory")?;
    // Under `cargo test`, binaries of integration tests run from target/<profile>/deps.
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    Ok(dir.join(name))
}

fn print_header() {
    println!(
        "{:<15} {:>6} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>5} {:>4} {:>9} {:>8} {:>7}  other",
        "scenario",
        "n",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "sent",
        "delivered",
        "lost",
        "dup",
        "rss MiB",
        "B/conn",
        "sec"
    );
}

fn print_row(f: &Figures) {
    let opt = |v: Option<f64>, decimals: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
    };
    let int = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let extra: Vec<String> = f
        .extra
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(x) if n.is_f64() => format!("{k}={x:.3}"),
                _ => format!("{k}={n}"),
            },
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    println!(
        "{:<15} {:>6} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>5} {:>4} {:>9} {:>8} {:>7.2}  {}",
        f.scenario,
        f.n,
        opt(f.messages_per_sec, 0),
        opt(f.p50_ms, 2),
        opt(f.p99_ms, 2),
        opt(f.p999_ms, 2),
        int(f.sent),
        int(f.delivered),
        int(f.lost),
        int(f.duplicated),
        opt(f.rss_bytes.map(|b| b as f64 / 1_048_576.0), 1),
        int(f.rss_bytes_per_connection),
        f.seconds,
        extra.join(" ")
    );
    let _ = std::io::stdout().flush();
}
