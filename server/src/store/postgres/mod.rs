//! The PostgreSQL engine: several stateless relay nodes share one database; a node that stores
//! an envelope for a device connected elsewhere wakes that node with `LISTEN/NOTIFY`.
//!
//! ## Layout
//!
//! Versioned migrations in `server/migrations/postgres/` (embedded, applied by
//! [`PostgresStore::connect`], see [`schema`]). One table per record kind, the same records as
//! the sled engine: `accounts`, `devices`, `invites`, `signed_prekeys`,
//! `last_resort_kem_prekeys`, `one_time_prekeys`, `one_time_kem_prekeys`, `mailboxes` (per
//! device: next delivery id and quota counters), `entries`, `bodies` (stored once per send,
//! reference-counted), `idempotency`.
//!
//! ## Concurrency
//!
//! Transactions run at READ COMMITTED with explicit row locks, always taken in one order
//! (entries, then bodies by id, then mailboxes by device id), so that concurrent writers on any
//! number of nodes do not deadlock; a serialisation failure or deadlock that happens anyway is
//! retried ([`transaction!`]). Every write returns after its COMMIT.
//!
//! ## Wake-ups
//!
//! An enqueue notifies channel `kith_wake` once per recipient device, in its transaction (so the
//! notification is delivered at commit). Each store listens on one dedicated connection
//! ([`listener`]), because pooled connections drop notifications.

mod accounts;
mod codec;
mod import;
mod listener;
mod mailbox;
mod prekeys;
mod schema;
mod stats;
mod store_impl;
mod tls;

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, Object, Pool, PoolError, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;

pub use self::import::{Conflict, ImportError};
use self::listener::Listener;
use super::{StoreError, Wakeup};

/// How to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database` (libpq keyword form also accepted).
    pub url: String,
    /// Connections in the pool (the LISTEN connection comes on top).
    pub pool_size: usize,
    /// PEM certificates trusted, besides the system's roots, to verify the database server
    /// when the URL says `sslmode=require` (see `tls.rs`).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Written by hand: the URL may carry a password.
impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The PostgreSQL-backed [`Store`](crate::store::Store).
///
/// Connect once per process inside a tokio runtime (it starts the listening task). Call
/// [`Store::close`](crate::store::Store::close) before dropping it; dropping also stops the
/// listening task.
pub struct PostgresStore {
    pool: Pool,
    /// This store's random id: the prefix of its notifications, so it skips its own.
    node: String,
    closed: AtomicBool,
    listener: Listener,
    wakeups: Mutex<Option<mpsc::Receiver<Wakeup>>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node", &self.node)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Room for wake-ups not yet taken by the relay; when full, one [`Wakeup::Resync`] follows.
const WAKEUP_CAPACITY: usize = 1024;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive idle time, so a silently dead connection (notably the listening one) is
/// noticed in about a minute rather than the system default of two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// How long a request waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Retries of a transaction after a serialisation failure or deadlock.
const MAX_RETRIES: u32 = 8;

impl PostgresStore {
    /// Connects, applies the migrations this binary knows (refusing a newer schema with
    /// [`StoreError::SchemaTooNew`]), and starts the listening connection.
    ///
    /// Fails with [`StoreError::DatabaseUnreachable`] when the database cannot be reached, and
    /// with [`StoreError::Backend`] on an invalid URL, a zero pool size or outside a runtime.
    pub async fn connect(options: PostgresOptions) -> Result<Self, StoreError> {
        tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Backend("PostgresStore::connect needs a tokio runtime".into())
        })?;
        if options.pool_size == 0 {
            return Err(StoreError::Backend("pool_size must be at least 1".into()));
        }
        let mut config = parse_url(&options.url)?;
        let tls = tls::configure(&mut config, options.ca_file.as_deref())?;
        schema::migrate(&config, &tls).await?;
        let pool = Pool::builder(Manager::new(config.clone(), tls.clone()))
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}")))?;
        let node = node_id()?;
        let (sender, receiver) = mpsc::channel(WAKEUP_CAPACITY);
        let listener = Listener::start(config, tls, node.clone(), sender).await?;
        Ok(Self {
            pool,
            node,
            closed: AtomicBool::new(false),
            listener,
            wakeups: Mutex::new(Some(receiver)),
        })
    }

    /// Fails with [`StoreError::Closed`] once the store is closed.
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Marks the store closed, stops the listening task and closes the pool.
    async fn shut_down(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.listener.stop().await;
        self.pool.close();
    }

    /// Takes the wake-up receiver (once).
    fn take_receiver(&self) -> Option<mpsc::Receiver<Wakeup>> {
        self.wakeups.lock().ok()?.take()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.cancel();
    }
}

/// Runs `$body` (an expression using the transaction `$tx`, with `?` converting into
/// [`Failure`]) in a transaction on a pooled connection and commits it. Retries the whole
/// transaction on a serialisation failure or deadlock; evaluates to `Result<T, StoreError>`.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            let mut client = $store.client().await?;
            let outcome: Result<_, $crate::store::postgres::Failure> = async {
                let $tx = client.transaction().await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Ok(value) => break Ok(value),
                Err(failure)
                    if failure.retryable() && attempt < $crate::store::postgres::MAX_RETRIES =>
                {
                    attempt += 1;
                }
                Err(failure) => break Err(failure.into_store()),
            }
        }
    }};
}
pub(crate) use transaction;

/// Why a transaction attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A result to give the caller (after rolling back).
    Store(StoreError),
    /// A database error: mapped by [`db_error`], or retried.
    Db(tokio_postgres::Error),
    /// A race the transaction lost; run it again.
    Retry,
}

impl Failure {
    /// Whether running the transaction again may succeed.
    fn retryable(&self) -> bool {
        match self {
            Self::Retry => true,
            Self::Db(e) => matches!(
                e.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
            ),
            Self::Store(_) => false,
        }
    }

    /// The error to give the caller.
    fn into_store(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Db(e) => db_error(&e),
            Self::Retry => StoreError::Backend("transaction kept conflicting; giving up".into()),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Maps a database error without user data: a server error by its SQLSTATE only (its message
/// and detail may quote stored values), a unique violation by its constraint.
fn db_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            && let Some(mapped) = db.constraint().and_then(unique_violation)
        {
            return mapped;
        }
        // 53100 disk_full: the server could not extend a file. The statement was rolled back.
        if *code == SqlState::DISK_FULL {
            return StoreError::StorageFull;
        }
        let what = match code.code().get(..2) {
            Some("08") => "connection failure",
            Some("28") => "authentication failed",
            Some("3D") => "the database does not exist",
            Some("53") => "the server is out of resources (too many connections?)",
            Some("57") => "the server is shutting down or not accepting connections",
            _ => return StoreError::Backend(format!("database error SQLSTATE {}", code.code())),
        };
        return StoreError::DatabaseUnreachable(format!("{what} (SQLSTATE {})", code.code()));
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        // Client-side errors name the failure (refused, timed out), never the URL.
        return StoreError::DatabaseUnreachable(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

/// The error a unique constraint's violation means (names from `V1__initial.sql`).
fn unique_violation(constraint: &str) -> Option<StoreError> {
    match constraint {
        "accounts_pkey" => Some(StoreError::AccountExists),
        "accounts_handle_key" => Some(StoreError::HandleTaken),
        "devices_pkey" => Some(StoreError::DeviceExists),
        "one_time_prekeys_pkey" | "one_time_kem_prekeys_pkey" => Some(StoreError::DuplicatePrekey),
        _ => None,
    }
}

/// Maps a pool error.
fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(e) => db_error(&e),
        PoolError::Timeout(_) => {
            StoreError::DatabaseUnreachable("timed out waiting for a database connection".into())
        }
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Backend("connection pool misconfigured".into())
        }
    }
}

/// Parses the URL (the error never repeats it: it may hold a password) and sets timeouts.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
        StoreError::Backend(
            "the database URL is invalid (not shown: it may hold a password)".into(),
        )
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
    Ok(config)
}

/// A random id for this store instance (hex).
fn node_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|_| StoreError::Backend("the OS random source failed".into()))?;
    Ok(hex::encode(bytes))
}
