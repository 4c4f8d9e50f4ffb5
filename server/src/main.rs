//! `kith-relay`: parses the command line and calls the library ([`kith_relay::service`],
//! [`kith_relay::admin::client`], [`kith_relay::config`]). Exit codes: 0 success, 1 runtime
//! error, 2 usage error.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kith_relay::admin::client::AdminClient;
use kith_relay::admin::{CreateInvite, MAX_INVITE_USES, Stats};
use kith_relay::backup::{self, BackupFrom, BackupOptions, RestoreOptions};
use kith_relay::config::{self, Config, DatabaseUrl, StoreKind};
use kith_relay::migrate::{self, MigrateOptions};
use kith_relay::relay::Registration;
use kith_relay::service::{self, SignalEvent, Signals};

const DEFAULT_DATA: &str = "./kith-data";

#[derive(Debug, Parser)]
#[command(
    name = "kith-relay",
    version,
    about = "The Kith relay: stores and forwards sealed messages for an organisation's devices."
)]
#[command(after_help = "Examples:
  kith-relay serve                                  # ./kith-data, 127.0.0.1:7443, invite-only
  kith-relay invite create --data ./kith-data       # while the relay runs
  kith-relay stats --data ./kith-data
  kith-relay check-config /etc/kith/relay.toml
  kith-relay check-config --example > relay.toml    # a commented config with every key
  kith-relay backup --to kith-$(date +%F).kbak       # while the relay runs
  kith-relay restore --from kith-2025-01-31.kbak --data ./kith-data-restored
  KITH_RELAY_DATABASE_URL=postgres://… kith-relay migrate --from sled:./kith-data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay until SIGTERM or SIGINT, then drain and exit 0.
    Serve(ServeArgs),
    /// Manage invites (needs a running relay).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Print accounts, devices, queued envelopes and bytes, and connections of a running relay.
    #[command(after_help = "Examples:
  kith-relay stats                       # the relay on ./kith-data
  kith-relay stats --data /var/lib/kith-relay --json
  kith-relay stats --admin http://127.0.0.1:7444 --admin-token \"$TOKEN\"")]
    Stats(StatsArgs),
    /// Validate a config file (and KITH_RELAY_* variables) and explain every error.
    #[command(
        after_help = "Exit status 0 when the configuration is valid, 1 otherwise.
Environment variables KITH_RELAY_<KEY> are applied on top of the file, as `serve` does.

Examples:
  kith-relay check-config /etc/kith/relay.toml
  kith-relay check-config --example > relay.toml"
    )]
    CheckConfig(CheckConfigArgs),
    /// Copy a stopped relay's sled store into PostgreSQL, then compare the counts.
    #[command(
        after_help = "Stop the relay first: the copy refuses a sled store in use. It copies \
accounts, devices, prekeys, queued envelopes (delivery ids kept, each body once), invites and \
idempotency records, then compares the counts kind by kind (exit status 1 on a difference). \
Running it again is safe: after an interrupted run it completes the copy; after a complete one \
it copies nothing. Data in the database that differs under the same key (a handle held by \
another account) stops the copy with exit status 1. Then start the relay with \
--store postgres.

Other local users can read a command line: give the database URL in KITH_RELAY_DATABASE_URL \
rather than --to.

Examples:
  KITH_RELAY_DATABASE_URL=postgres://kith:PASSWORD@db:5432/kith \\
      kith-relay migrate --from sled:/var/lib/kith-relay"
    )]
    Migrate(MigrateArgs),
    /// Write a backup of a sled relay's data to a file (while it runs, or stopped).
    #[command(
        after_help = "With --data, a running relay is asked through its admin listener \
(found in DIR/admin.json) for a copy while it keeps serving; if no relay runs on DIR, \
its store is read directly. The file is written as FILE.partial, read back and checked, then \
renamed to FILE. It holds only what the relay keeps anyway (no message contents, no senders) and, \
if the relay uses one, the development certificate with its private key: keep it private. \
A relay on PostgreSQL is backed up with pg_dump instead (docs/operating.md).

Examples:
  kith-relay backup --to /var/backups/kith-$(date +%F).kbak --data /var/lib/kith-relay
  kith-relay backup --to kith.kbak --admin http://127.0.0.1:7444 --admin-token \"$TOKEN\""
    )]
    Backup(BackupArgs),
    /// Restore a backup into a data directory (the relay must be stopped).
    #[command(
        after_help = "The whole file is checked first (format, version, SHA-256 \
checksum); a damaged file changes nothing. A data directory that already holds a relay's data \
is refused unless --force, which moves that data aside (kept as sled.before-restore-<time>). \
Devices upload fresh one-time prekeys when they next connect.

Examples:
  systemctl stop kith-relay
  kith-relay restore --from kith-2025-01-31.kbak --data /var/lib/kith-relay --force
  systemctl start kith-relay"
    )]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The backup file to write.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    #[command(flatten)]
    target: AdminTarget,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup file (written by `kith-relay backup`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The data directory to restore into (created if missing).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Move the data already in DIR aside instead of refusing.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Settings come from, weakest first: defaults, the config file, \
KITH_RELAY_<KEY> environment variables, these flags. With no certificate the relay creates a \
self-signed development certificate in <data>/tls/ on first start and prints its SHA-256 \
fingerprint. While running, <data>/admin.json (0600) holds the admin URL and token that \
`invite create` and `stats` use.

Examples:
  kith-relay serve
  kith-relay serve --data /var/lib/kith-relay --listen 0.0.0.0:7443 \\
      --tls-cert /etc/kith/fullchain.pem --tls-key /etc/kith/privkey.pem
  KITH_RELAY_DATABASE_URL=postgres://kith:PASSWORD@db:5432/kith kith-relay serve --store postgres
  KITH_RELAY_REGISTRATION=open kith-relay serve --config relay.toml"
)]
struct ServeArgs {
    /// Config file (TOML; `kith-relay check-config --example` prints one).
    #[arg(long, value_name = "FILE", env = config::CONFIG_ENV)]
    config: Option<PathBuf>,
    /// Data directory: database, development certificate, admin.json [default: ./kith-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address for clients (wss) [default: 127.0.0.1:7443].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the admin listener (plain http, loopback) [default: 127.0.0.1:7444].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Who may register [default: invite].
    #[arg(long, value_enum)]
    registration: Option<RegistrationArg>,
    /// PEM certificate chain, server certificate first (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Storage engine: sled (embedded, one node) or postgres (shared by several nodes)
    /// [default: sled].
    #[arg(long, value_enum)]
    store: Option<StoreArg>,
    /// PostgreSQL connection string for --store postgres. Other local users can read a
    /// command line: prefer the KITH_RELAY_DATABASE_URL environment variable.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreArg {
    /// sled in <data>/sled/.
    Sled,
    /// PostgreSQL at --database-url (or KITH_RELAY_DATABASE_URL).
    Postgres,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RegistrationArg {
    /// Only holders of an invite token.
    Invite,
    /// Anyone who can reach the relay.
    Open,
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create an invite token; prints it alone on the last line.
    #[command(after_help = "The token is shown once; the relay keeps only its hash.

Examples:
  kith-relay invite create
  kith-relay invite create --data /var/lib/kith-relay --uses 5 --expires 2d
  kith-relay invite create --admin http://127.0.0.1:7444 --admin-token \"$TOKEN\"")]
    Create(InviteCreateArgs),
}

/// How the command line reaches the running relay.
#[derive(Debug, Args)]
struct AdminTarget {
    /// Data directory of the running relay; its admin.json gives the admin URL and token
    /// [default: ./kith-data].
    #[arg(long, value_name = "DIR", conflicts_with = "admin")]
    data: Option<PathBuf>,
    /// Admin URL instead of --data, e.g. http://127.0.0.1:7444 (with --admin-token).
    #[arg(long, value_name = "URL", requires = "admin_token")]
    admin: Option<String>,
    /// Admin token for --admin (the "token" in the relay's admin.json).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KITH_RELAY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
}

#[derive(Debug, Args)]
struct InviteCreateArgs {
    #[command(flatten)]
    target: AdminTarget,
    /// How many accounts may register with this token.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_INVITE_USES)))]
    uses: u32,
    /// How long the token stays valid, e.g. 1h, 2d, 30d (at most 365d).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    expires: Duration,
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    target: AdminTarget,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CheckConfigArgs {
    /// The config file to check.
    #[arg(value_name = "FILE", required_unless_present = "example")]
    file: Option<PathBuf>,
    /// Print a commented example config with every key at its default, and exit.
    #[arg(long, conflicts_with = "file")]
    example: bool,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// The stopped relay's store: sled:DIR, DIR being its data directory (or its sled/).
    #[arg(long, value_name = "sled:DIR", value_parser = migrate::parse_source)]
    from: PathBuf,
    /// The PostgreSQL connection string to copy into (prefer KITH_RELAY_DATABASE_URL).
    #[arg(
        long,
        value_name = "URL",
        env = "KITH_RELAY_DATABASE_URL",
        hide_env_values = true
    )]
    to: String,
    /// PEM file of the CA that signed the database server's certificate, for a URL with
    /// sslmode=require (the system's trusted roots are used too).
    #[arg(long, value_name = "FILE", env = "KITH_RELAY_DATABASE_CA")]
    database_ca: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e}; write e.g. 12h, 7d or 30d"))
}

#[tokio::main]
async fn main() -> ExitCode {
    // First thing: rustls's process-wide provider. An Err means one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Invite(InviteCommand::Create(args)) => invite_create(args).await,
        Command::Stats(args) => stats(args).await,
        Command::CheckConfig(args) => check_config(&args),
        Command::Migrate(args) => migrate(args).await,
        Command::Backup(args) => run_backup(args).await,
        Command::Restore(args) => run_restore(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Defence in depth: no error should carry the database password, but mask any.
            eprintln!("error: {}", config::redact_passwords(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    config.listen = args.listen.unwrap_or(config.listen);
    config.admin_listen = args.admin_listen.unwrap_or(config.admin_listen);
    if let Some(registration) = args.registration {
        config.registration = match registration {
            RegistrationArg::Invite => Registration::Invite,
            RegistrationArg::Open => Registration::Open,
        };
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    }
    if let Some(store) = args.store {
        config.store = match store {
            StoreArg::Sled => StoreKind::Sled,
            StoreArg::Postgres => StoreKind::Postgres,
        };
    }
    if let Some(url) = args.database_url {
        config.database_url = Some(DatabaseUrl::new(url));
    }
    config.validate()?;
    service::init_logging(config.log_format, &config.log_level)?;
    let mut signals = Signals::install()?;
    let running = service::start(config).await?;
    print!("{}", running.banner());
    std::io::stdout().flush()?;
    let failed = running.shutdown_token();
    let stopped_by_failure = loop {
        tokio::select! {
            event = signals.wait() => match event {
                SignalEvent::Stop(signal) => {
                    tracing::info!(signal, "shutting down: draining connections");
                    break false;
                }
                SignalEvent::Reload => reload_tls(&running),
            },
            () = failed.cancelled() => break true,
        }
    };
    if !stopped_by_failure {
        running.shutdown().await?;
        return Ok(());
    }
    // The relay or its store failed. A store whose disk failed may never finish closing (a
    // sled flush stuck on a full disk), so the shutdown gets a deadline, and the process
    // ends without waiting for stuck threads.
    match tokio::time::timeout(FAILED_SHUTDOWN, running.shutdown()).await {
        Ok(Ok(())) => anyhow::bail!("the relay stopped after a failure (see the log above)"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            eprintln!(
                "error: the relay failed and did not shut down within {} s (the store is \
                 stuck; see the log above); exiting",
                FAILED_SHUTDOWN.as_secs()
            );
            std::process::exit(1);
        }
    }
}

/// How long a relay that failed may take to shut down before the process just exits.
const FAILED_SHUTDOWN: Duration = Duration::from_secs(10);

/// SIGHUP: swaps in the certificate files' current contents, or keeps serving the old
/// certificate and says why.
fn reload_tls(running: &service::Running) {
    let Some(old) = running.certificate_fingerprint() else {
        tracing::info!(
            "SIGHUP ignored: TLS is off (listen_plaintext_behind_proxy); reload the proxy"
        );
        return;
    };
    match running.reload_tls() {
        Ok(new) if new == old => tracing::info!(
            fingerprint = %new,
            "SIGHUP: certificate files re-read; the certificate is unchanged"
        ),
        Ok(new) => tracing::info!(
            fingerprint = %new,
            previous = %old,
            "SIGHUP: TLS certificate reloaded; new connections use it"
        ),
        Err(e) => tracing::error!(
            error = %e,
            still_serving = %old,
            "SIGHUP: TLS certificate NOT reloaded, still serving the previous one; fix the \
             files and send SIGHUP again"
        ),
    }
}

async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let from = match (&args.target.admin, &args.target.data) {
        (Some(_), _) => BackupFrom::Admin(args.target.client()?),
        (None, data) => BackupFrom::DataDir(data.clone().unwrap_or_else(|| DEFAULT_DATA.into())),
    };
    let summary = backup::backup(BackupOptions {
        to: args.to,
        from,
        force: args.force,
        progress_bars: std::io::stderr().is_terminal(),
    })
    .await
    .map_err(with_causes)?;
    println!("{summary}");
    Ok(())
}

async fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let report = backup::restore(&RestoreOptions {
        from: args.from,
        data_dir: args.data,
        force: args.force,
        progress_bars: std::io::stderr().is_terminal(),
    })
    .await
    .map_err(with_causes)?;
    println!("{report}");
    Ok(())
}

/// An error whose message includes its causes ("cannot create FILE: Permission denied").
fn with_causes(e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

impl AdminTarget {
    fn client(&self) -> anyhow::Result<AdminClient> {
        Ok(match (&self.admin, &self.admin_token) {
            (Some(url), Some(token)) => AdminClient::new(url, token)?,
            (Some(_), None) => bail!("--admin needs --admin-token (or KITH_RELAY_ADMIN_TOKEN)"),
            (None, _) => {
                let data = self.data.as_deref().unwrap_or(Path::new(DEFAULT_DATA));
                AdminClient::from_data_dir(data)?
            }
        })
    }
}

async fn invite_create(args: InviteCreateArgs) -> anyhow::Result<()> {
    let client = args.target.client()?;
    let request = CreateInvite {
        uses: args.uses,
        expires_in_secs: args.expires.as_secs().max(1),
    };
    let created = client.create_invite(request).await?;
    let until =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(created.expires_at));
    let uses = match created.uses {
        1 => "1 registration".to_owned(),
        n => format!("{n} registrations"),
    };
    println!("Invite created: valid for {uses} until {until}.");
    println!("Give this token to the person you invite; it is shown only this once:");
    println!("{}", created.token);
    Ok(())
}

async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let stats = args.target.client()?.stats().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", format_stats(&stats));
    }
    Ok(())
}

fn format_stats(s: &Stats) -> String {
    format!(
        "accounts:          {}\ndevices:           {}\nqueued envelopes:  {}\n\
         queued bytes:      {}\nconnections:       {} ({} authenticated)\n",
        s.accounts, s.devices, s.queued_envelopes, s.queued_bytes, s.connections, s.authenticated
    )
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let database = DatabaseUrl::new(args.to);
    if let Err(e) = database.check() {
        bail!("the database URL is invalid: {e}");
    }
    let options = MigrateOptions {
        sled_dir: args.from,
        database,
        database_ca: args.database_ca,
        progress_bars: std::io::stderr().is_terminal(),
    };
    let report = migrate::run(&options).await?;
    print!("{report}");
    if !report.matches() {
        bail!(
            "count check failed for: {}; the copy is not recorded as complete",
            report.mismatched().join(", ")
        );
    }
    Ok(())
}

fn check_config(args: &CheckConfigArgs) -> anyhow::Result<()> {
    if args.example {
        print!("{}", config::EXAMPLE);
        return Ok(());
    }
    let Some(file) = &args.file else {
        bail!("give a config file to check, or --example");
    };
    match Config::check(file) {
        Ok(_) => {
            println!("{}: the configuration is valid", file.display());
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}
