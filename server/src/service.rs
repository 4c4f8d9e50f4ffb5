//! Starts and stops a whole relay: data directory, store, TLS, client and admin listeners.
//!
//! [`start`] returns a [`Running`] relay; [`Running::shutdown`] drains and closes it. The
//! binary uses them with [`Signals`]; tests use them in-process (several relays in one process
//! work, each with its own data directory; the metrics recorder is shared).
//!
//! The engine is chosen by `store` in the [`Config`]: [`start`] opens sled or connects to
//! PostgreSQL, and from there one generic path (`start_with_store`) runs the relay over it.
//!
//! Layout of the data directory (mode 0700; used with either engine):
//!
//! | path | what |
//! | --- | --- |
//! | `sled/` | the sled database ([`STORE_DIR`]; not with PostgreSQL) |
//! | `tls/cert.pem`, `tls/key.pem` | the development certificate, if no certificate is configured |
//! | `admin.json` | admin URL and token while the relay runs (0600), removed on clean shutdown |

use std::fmt::{self, Write as _};
use std::future::Future;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, AdminToken};
use crate::backup::BackupSource;
use crate::config::{Config, ConfigError, LogFormat, StoreKind};
use crate::relay::{Registration, Relay, RelayHandle};
use crate::store::{PostgresStore, SledOptions, SledStore, Store, StoreError, StoreStats};
use crate::tls::{self, CertificateKind, ServerTls, TlsError};

/// The database's directory inside the data directory.
pub const STORE_DIR: &str = "sled";

/// How often the metrics recorder's histograms are drained.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Why the relay could not start or stop cleanly. Says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store failed to open or to close.
    #[error("store {location}: {source}{hint}")]
    Store {
        /// Which engine and where, e.g. `sled (./kith-data/sled)` or
        /// `postgres (db.example.org:5432/kith, password hidden)`.
        location: StoreLocation,
        /// The store's error.
        source: StoreError,
        /// What to do.
        hint: &'static str,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}; choose another address with {flag}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The flag that sets it.
        flag: &'static str,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another I/O step failed (`admin.json`, signals, randomness, a task).
    #[error("{what}: {reason}")]
    Other {
        /// The step.
        what: &'static str,
        /// What happened.
        reason: String,
    },
}

fn other(what: &'static str, reason: impl std::fmt::Display) -> ServiceError {
    ServiceError::Other {
        what,
        reason: reason.to_string(),
    }
}

/// Which engine a relay stores its data in, and where; shown in the banner and in errors
/// without the database password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// sled, in this directory.
    Sled(PathBuf),
    /// PostgreSQL at `host:port/database` (no user, no password).
    Postgres(String),
}

impl StoreLocation {
    /// Where the store of `config` is.
    pub fn of(config: &Config) -> Self {
        match (config.store, &config.database_url) {
            (StoreKind::Postgres, Some(url)) => Self::Postgres(url.describe()),
            (StoreKind::Postgres, None) => Self::Postgres("no database_url".to_owned()),
            (StoreKind::Sled, _) => Self::Sled(config.data_dir.join(STORE_DIR)),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sled(path) => write!(f, "sled ({})", path.display()),
            Self::Postgres(target) => write!(f, "postgres ({target}, password hidden)"),
        }
    }
}

/// A boxed future of the store, so that [`Running`] does not depend on the engine.
type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What [`Running`] needs of its store once the relay runs, whichever engine it is.
trait RunningStore: Send + Sync {
    /// [`Store::stats`].
    fn stats(&self) -> StoreFuture<'_, StoreStats>;
    /// [`Store::close`].
    fn close(&self) -> StoreFuture<'_, ()>;
}

impl<S: Store> RunningStore for S {
    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        Box::pin(Store::stats(self))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(Store::close(self))
    }
}

/// The running relay's store, with where it is.
struct StoreHandle {
    location: StoreLocation,
    store: Arc<dyn RunningStore>,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A running relay. Dropping it without [`Running::shutdown`] leaves its tasks running until
/// the runtime stops and `admin.json` in place.
#[derive(Debug)]
pub struct Running {
    config: Config,
    relay_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: Option<ServerTls>,
    store: StoreHandle,
    relay: RelayHandle,
    shutdown: CancellationToken,
    relay_task: JoinHandle<Result<(), String>>,
    admin_task: JoinHandle<io::Result<()>>,
    upkeep_task: JoinHandle<()>,
}

/// Starts a relay: validates `config`, creates the data directory, sets up TLS, opens the
/// store the config chooses (sled, or PostgreSQL), binds both listeners (port 0 picks a free
/// port: see [`Running::relay_addr`]), writes `admin.json` and spawns the relay and the admin
/// listener.
pub async fn start(config: Config) -> Result<Running, ServiceError> {
    config.validate()?;
    let metrics = crate::metrics::install();
    let data_dir = config.data_dir.clone();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .map_err(|source| ServiceError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        _ if config.listen_plaintext_behind_proxy => None,
        (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
        _ => Some(tls::development(&data_dir, &config.relay_name)?),
    };
    match config.store {
        StoreKind::Sled => {
            let store = Arc::new(open_sled(&config)?);
            let backup = BackupSource {
                store: Arc::clone(&store),
                data_dir,
            };
            start_with_store(config, tls, store, Some(backup), metrics).await
        }
        StoreKind::Postgres => {
            let store = Arc::new(connect_postgres(&config).await?);
            start_with_store(config, tls, store, None, metrics).await
        }
    }
}

/// The rest of [`start`], the same for every engine: binds, spawns, and on failure closes
/// the store again.
async fn start_with_store<S: Store>(
    config: Config,
    tls: Option<ServerTls>,
    store: Arc<S>,
    backup: Option<BackupSource>,
    metrics: PrometheusHandle,
) -> Result<Running, ServiceError> {
    match bind_and_spawn(config, tls, Arc::clone(&store), backup, metrics).await {
        Ok(running) => Ok(running),
        Err(e) => {
            if let Err(close) = store.close().await {
                tracing::warn!(error = %close, "closing the store after a failed start");
            }
            Err(e)
        }
    }
}

fn open_sled(config: &Config) -> Result<SledStore, ServiceError> {
    let path = config.data_dir.join(STORE_DIR);
    let options = SledOptions {
        cache_capacity: config.sled_cache_mb.saturating_mul(1024 * 1024),
        min_free_bytes: config.min_free_disk_mb.saturating_mul(1024 * 1024),
        flush_timeout: config.flush_timeout,
    };
    SledStore::open(&path, options).map_err(|source| {
        let hint = match source {
            StoreError::InUse => {
                " (another kith-relay uses this data directory: stop it, or give this one \
                 another --data)"
            }
            _ => "",
        };
        ServiceError::Store {
            location: StoreLocation::Sled(path),
            source,
            hint,
        }
    })
}

async fn connect_postgres(config: &Config) -> Result<PostgresStore, ServiceError> {
    let location = StoreLocation::of(config);
    let options = config.postgres_options().ok_or(ServiceError::Store {
        location: location.clone(),
        source: StoreError::Closed,
        hint: " (store is postgres but database_url is not set)",
    })?;
    PostgresStore::connect(options)
        .await
        .map_err(|source| ServiceError::Store {
            location,
            source,
            hint: " (check database_url or KITH_RELAY_DATABASE_URL, and that the database \
                   accepts connections from this host)",
        })
}

async fn bind_and_spawn<S: Store>(
    config: Config,
    tls: Option<ServerTls>,
    store: Arc<S>,
    backup: Option<BackupSource>,
    metrics: PrometheusHandle,
) -> Result<Running, ServiceError> {
    let relay_listener = bind(config.listen, "client listener", "--listen").await?;
    let admin_listener = bind(config.admin_listen, "admin listener", "--admin-listen").await?;
    let relay_addr = local_addr(&relay_listener)?;
    let admin_addr = local_addr(&admin_listener)?;
    let token = AdminToken::generate().map_err(|e| other("generating the admin token", e))?;
    admin::write_admin_file(&config.data_dir, admin_addr, &token)
        .map_err(|e| other("writing admin.json", e))?;

    let shutdown = CancellationToken::new();
    let relay = Relay::new(Arc::clone(&store), config.relay_settings());
    let handle = relay.handle();
    let server_config = tls.as_ref().map(|t| Arc::clone(&t.config));
    let relay_token = shutdown.clone();
    let relay_task = tokio::spawn(async move {
        let result = relay
            .serve(relay_listener, server_config, relay_token.clone())
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "relay stopped; shutting down");
            relay_token.cancel();
        }
        result
    });
    let state = Arc::new(AdminState {
        store: Arc::clone(&store),
        relay: handle.clone(),
        token,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        backup,
    });
    let admin_task = tokio::spawn(
        axum::serve(admin_listener, admin::router(state))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let upkeep_task = tokio::spawn(upkeep(metrics, shutdown.clone()));
    tokio::spawn(stop_if_broken(Arc::clone(&store), shutdown.clone()));
    let location = StoreLocation::of(&config);
    tracing::info!(%relay_addr, %admin_addr, registration = ?config.registration, store = %location, "relay started");
    if tls.is_none() {
        tracing::warn!("{PLAINTEXT_WARNING}");
    }
    Ok(Running {
        config,
        relay_addr,
        admin_addr,
        tls,
        store: StoreHandle { location, store },
        relay: handle,
        shutdown,
        relay_task,
        admin_task,
        upkeep_task,
    })
}

/// Fail-stop: once the store cannot make writes durable, every further "accepted" would be a
/// lie, so the relay shuts down (and exits non-zero: closing the store reports the failure)
/// for its supervisor to restart it once the operator has fixed the disk.
async fn stop_if_broken<S: Store>(store: Arc<S>, shutdown: CancellationToken) {
    tokio::select! {
        e = store.broken() => {
            tracing::error!(
                error = %e,
                "the store can no longer make writes durable: stopping the relay so that no send \
                 is answered \"accepted\" without being stored; check the disk (free space, \
                 I/O errors in the kernel log), then start the relay again"
            );
            shutdown.cancel();
        }
        () = shutdown.cancelled() => {}
    }
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, ServiceError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind {
            what,
            addr,
            flag,
            source,
        })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ServiceError> {
    listener
        .local_addr()
        .map_err(|e| other("reading the bound address", e))
}

async fn upkeep(metrics: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
        metrics.run_upkeep();
    }
}

impl Running {
    /// The client listener's address (the actual port when 0 was configured).
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The certificate file's PEM text (with the development certificate: what clients must
    /// trust); `None` when TLS is off.
    pub fn certificate_pem(&self) -> Option<String> {
        self.tls.as_ref().map(ServerTls::certificate_pem)
    }

    /// SHA-256 fingerprint of the leaf certificate; `None` when TLS is off.
    pub fn certificate_fingerprint(&self) -> Option<String> {
        self.tls.as_ref().map(ServerTls::fingerprint)
    }

    /// Reads the certificate and key files again (on SIGHUP): new connections get the new
    /// certificate, open ones keep theirs. On error the old certificate stays and the error
    /// says which file is wrong. Returns the new fingerprint.
    pub fn reload_tls(&self) -> Result<String, ServiceError> {
        let Some(tls) = &self.tls else {
            return Err(other(
                "reloading the certificate",
                "TLS is off (listen_plaintext_behind_proxy): the proxy holds the certificate",
            ));
        };
        Ok(tls.reload()?)
    }

    /// The configuration the relay runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Live connection counts.
    pub fn relay_handle(&self) -> RelayHandle {
        self.relay.clone()
    }

    /// Which engine the relay stores its data in, and where.
    pub fn store_location(&self) -> &StoreLocation {
        &self.store.location
    }

    /// The store's totals.
    pub async fn store_stats(&self) -> Result<StoreStats, StoreError> {
        self.store.store.stats().await
    }

    /// Cancelled when shutdown begins, including when the relay fails by itself.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the relay: stops accepting, lets connections finish their request and close,
    /// stops the admin listener, flushes and closes the store, and removes `admin.json`. Every
    /// step runs even if an earlier one failed; the first failure is returned.
    pub async fn shutdown(self) -> Result<(), ServiceError> {
        self.shutdown.cancel();
        let mut first = None;
        let relay = self.relay_task.await.map_err(|e| e.to_string()).flatten();
        if let Err(e) = relay {
            first.get_or_insert(other("relay", e));
        }
        match self.admin_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => drop(first.get_or_insert(other("admin listener", e))),
            Err(e) => drop(first.get_or_insert(other("admin listener", e))),
        }
        self.upkeep_task.abort();
        // Wait for the aborted task to be dropped, so it releases its handle on the store
        // before the store is closed and this function returns.
        let _ = self.upkeep_task.await;
        if let Err(source) = self.store.store.close().await {
            first.get_or_insert(ServiceError::Store {
                location: self.store.location.clone(),
                source,
                hint: "",
            });
        }
        if let Err(e) = admin::remove_admin_file(&self.config.data_dir) {
            first.get_or_insert(other("removing admin.json", e));
        }
        tracing::info!("relay stopped");
        first.map_or(Ok(()), Err)
    }

    /// What an operator needs to know once the relay runs, one item per line.
    pub fn banner(&self) -> String {
        let data = self.config.data_dir.display();
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let mut out = format!("kith-relay {} is running\n", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "  listening:    {scheme}://{}", self.relay_addr);
        let _ = writeln!(
            out,
            "  admin:        http://{} (/healthz, /metrics; token in {})",
            self.admin_addr,
            admin::AdminFile::path(&self.config.data_dir).display()
        );
        let _ = match self.config.registration {
            Registration::Invite => writeln!(
                out,
                "  registration: invite (create one: kith-relay invite create --data {data})"
            ),
            Registration::Open => writeln!(out, "  registration: open (anyone can register)"),
        };
        let _ = writeln!(out, "  data:         {data}");
        let _ = writeln!(out, "  store:        {}", self.store.location);
        match &self.tls {
            None => {
                let _ = writeln!(
                    out,
                    "  tls:          off (listen_plaintext_behind_proxy: plain WebSocket for a \
                     TLS-terminating proxy)"
                );
                let _ = writeln!(out, "  warning:      {PLAINTEXT_WARNING}");
            }
            Some(t) => write_certificate(&mut out, t),
        }
        out
    }
}

/// What plain-WebSocket mode asks of devices, said in the log and the banner.
const PLAINTEXT_WARNING: &str = "without TLS at the relay, logins cannot be bound to the TLS \
session (protocol/SPEC.md 9.2): set devices up with `kith init --relay-behind-proxy` (devices \
set up without it cannot log in through the proxy). See docs/operating.md, \"TLS behind a \
proxy\"";

fn write_certificate(out: &mut String, tls: &ServerTls) {
    let what = match tls.kind {
        CertificateKind::Configured => "configured",
        CertificateKind::DevelopmentCreated => "self-signed development certificate, created now",
        CertificateKind::DevelopmentReused => "self-signed development certificate",
    };
    let _ = writeln!(out, "  certificate:  {} ({what})", tls.cert_path.display());
    let _ = writeln!(out, "  fingerprint:  SHA-256 {}", tls.fingerprint());
}

/// SIGTERM, SIGINT and SIGHUP, installed before the relay starts so that a signal arriving
/// during start-up is not lost (nor kills the process).
#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT (named): drain and stop.
    Stop(&'static str),
    /// SIGHUP: reload the TLS certificate.
    Reload,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Result<Self, ServiceError> {
        let install = |kind| signal(kind).map_err(|e| other("installing signal handlers", e));
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn wait(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.terminate.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.interrupt.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.hangup.recv() => SignalEvent::Reload,
        }
    }
}

/// Libraries that log raw data at debug or trace level (tungstenite logs whole frames,
/// i.e. sealed envelopes; sled logs pages): they never log below `warn`, whatever `log_level`
/// says, so no level an operator can choose puts envelope contents in the logs.
const CAPPED_TARGETS: [&str; 10] = [
    "tungstenite",
    "tokio_tungstenite",
    "sled",
    "rustls",
    "tokio_rustls",
    "hyper",
    "hyper_util",
    "h2",
    "axum",
    "tower",
];

/// The log filter for `level` (a `tracing` filter such as `info` or `kith_relay=debug,info`),
/// with the libraries of [`CAPPED_TARGETS`] held at `warn`.
pub fn log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter, ServiceError> {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| other("log_level", format!("{e}; write e.g. \"info\"")))?;
    for target in CAPPED_TARGETS {
        let directive = format!("{target}=warn")
            .parse()
            .map_err(|e| other("log_level", format!("{e}")))?;
        filter = filter.add_directive(directive);
    }
    Ok(filter)
}

/// Sets up logging to standard error: `format` lines filtered by [`log_filter`]. Does nothing
/// if a subscriber is already set.
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), ServiceError> {
    let filter = log_filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    // An error means a subscriber exists already (e.g. in tests): keep it.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// The data directory's database path (for tools that open the store while the relay is
/// stopped).
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_DIR)
}
