//! The sled engine: one embedded database in one data directory.
//!
//! ## Layout
//!
//! One `sled::Db`, one tree per record kind (keys and values in [`codec`]):
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `meta` | `"schema"` | layout version (u32 BE) |
//! | `accounts` | account key (32) | handle, device ids, created_at |
//! | `handles` | handle bytes | account key |
//! | `devices` | device id (16) | account key, certificate, added_at |
//! | `invites` | SHA-256 of token (32) | uses left, expires_at |
//! | `signed_prekeys` | device id | `SignedPrekey` |
//! | `last_resort_kem` | device id | `KemPrekey` |
//! | `one_time_prekeys` | device id ‖ prekey id (BE) | `OneTimePrekey` |
//! | `one_time_kem_prekeys` | device id ‖ prekey id (BE) | `KemPrekey` |
//! | `mailboxes` | device id | next delivery id, entry and byte counters |
//! | `entries` | device id ‖ delivery id (BE) | body id, part, arrived_at, expires_at |
//! | `bodies` | body id (BE) | the body bytes, raw |
//! | `body_refs` | body id (BE) | reference count, body length |
//! | `idempotency` | idempotency key (32) | delivery ids, expires_at |
//! | `expiry` | expires_at (BE) ‖ kind ‖ id | empty |
//!
//! Updates touching several trees run in one sled transaction. One-time prekeys are taken with a
//! plain `remove`, which returns the value to exactly one caller (see [`prekeys`]).
//!
//! ## Durability
//!
//! Every write returns after a group-commit flush covering it ([`commit`]). sled's own
//! periodic flush is turned off: the group committer is the only flusher.
//!
//! ## Blocking
//!
//! sled calls are synchronous and mostly in-memory (microseconds); they run on the calling
//! task. Only the flush, the slow part, is awaited off-thread (`flush_async`). `expire` works
//! in batches so that one call does not hold a worker for long.

mod accounts;
mod backup;
mod codec;
mod combiner;
mod commit;
mod export;
mod faults;
mod mailbox;
mod prekeys;
mod space;
mod stats;
mod store_impl;
#[cfg(test)]
mod tests;

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::{Db, Tree};

use self::codec::{SCHEMA_KEY, SCHEMA_VERSION};
use self::combiner::Combiner;
use self::commit::GroupCommit;
pub use self::export::Records;
use self::faults::Faults;
use self::space::SpaceGuard;
use crate::store::StoreError;

/// Options for [`SledStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledOptions {
    /// sled's page cache size in bytes. sled's own default is 1 GiB; ours is 64 MiB.
    pub cache_capacity: u64,
    /// Writes that grow the store (sends, registrations, prekeys, invites) are refused with
    /// [`StoreError::StorageFull`] while the data directory's file system has less than this
    /// available (see `space.rs`). 0, the default here, keeps no reserve; the relay's
    /// configuration sets one (`min_free_disk_mb`).
    pub min_free_bytes: u64,
    /// A flush taking longer than this counts as failed (see `commit.rs`): the store stops
    /// accepting writes and reports itself broken.
    pub flush_timeout: std::time::Duration,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 64 * 1024 * 1024,
            min_free_bytes: 0,
            flush_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The sled-backed [`Store`](crate::store::Store).
///
/// Open it once per process and data directory, inside a tokio runtime (it starts the
/// group-commit flusher task). Call [`Store::close`](crate::store::Store::close) before
/// dropping it: dropping also ends the flusher, but without waiting for its last flush.
#[derive(Debug)]
pub struct SledStore {
    trees: Arc<Trees>,
    commit: Arc<GroupCommit>,
    /// The writer thread that batches enqueues and acks into shared transactions.
    combiner: Combiner,
    /// The free-space reserve.
    space: SpaceGuard,
    /// Injected failures (tests only).
    #[cfg_attr(not(test), allow(dead_code))]
    faults: Arc<Faults>,
    closed: AtomicBool,
    // Held for the lifetime of the store: the directory lock.
    _lock: File,
}

/// The trees of one database.
#[derive(Debug)]
struct Trees {
    db: Db,
    meta: Tree,
    accounts: Tree,
    handles: Tree,
    devices: Tree,
    invites: Tree,
    signed_prekeys: Tree,
    last_resort_kem: Tree,
    one_time_prekeys: Tree,
    one_time_kem_prekeys: Tree,
    mailboxes: Tree,
    entries: Tree,
    bodies: Tree,
    body_refs: Tree,
    idempotency: Tree,
    expiry: Tree,
}

/// Name of the lock file in the data directory.
const LOCK_FILE: &str = "kith-relay.lock";

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// Fails with [`StoreError::InUse`] when another process has the directory open, and with
    /// [`StoreError::Backend`] outside a tokio runtime or on a layout version it does not know.
    pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Backend("SledStore::open needs a tokio runtime".into()))?;
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(io_error)?;
        let lock = lock_directory(path)?;
        let db = ::sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(None)
            .open()
            .map_err(backend)?;
        let trees = Trees::open(db)?;
        trees.check_schema()?;
        trees.skip_undurable_delivery_ids()?;
        let trees = Arc::new(trees);
        let faults = Arc::new(Faults::default());
        let commit = Arc::new(GroupCommit::start(
            trees.db.clone(),
            &runtime,
            options.flush_timeout,
            Arc::clone(&faults),
        ));
        let combiner = Combiner::start(
            Arc::clone(&trees),
            Arc::clone(&commit),
            runtime,
            Arc::clone(&faults),
        )?;
        Ok(Self {
            trees,
            commit,
            combiner,
            faults,
            space: SpaceGuard::new(path.to_path_buf(), options.min_free_bytes),
            closed: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// How many group-commit flushes have completed since open (for metrics: compare with the
    /// number of writes to see how many writes a flush serves).
    pub fn flush_count(&self) -> u64 {
        self.commit.flushes()
    }

    /// Fails with [`StoreError::Closed`] once the store is closed.
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Fails with [`StoreError::Closed`] once the store is closed, and with
    /// [`StoreError::StorageFull`] below the free-space reserve: the check before a write
    /// that grows the store.
    fn check_writable(&self) -> Result<(), StoreError> {
        self.check_open()?;
        self.space.check()
    }

    /// Failure injection for tests.
    #[cfg(test)]
    fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Raw access for tests that damage stored bytes.
    #[cfg(test)]
    fn trees(&self) -> &Trees {
        &self.trees
    }
}

/// Takes an exclusive lock on `<path>/kith-relay.lock`, so a second relay on the same
/// directory gets a clear error (sled's own lock error is an opaque I/O error).
fn lock_directory(path: &Path) -> Result<File, StoreError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(LOCK_FILE))
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::InUse),
        Err(TryLockError::Error(e)) => Err(io_error(e)),
    }
}

impl Trees {
    fn open(db: Db) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            meta: tree("meta")?,
            accounts: tree("accounts")?,
            handles: tree("handles")?,
            devices: tree("devices")?,
            invites: tree("invites")?,
            signed_prekeys: tree("signed_prekeys")?,
            last_resort_kem: tree("last_resort_kem")?,
            one_time_prekeys: tree("one_time_prekeys")?,
            one_time_kem_prekeys: tree("one_time_kem_prekeys")?,
            mailboxes: tree("mailboxes")?,
            entries: tree("entries")?,
            bodies: tree("bodies")?,
            body_refs: tree("body_refs")?,
            idempotency: tree("idempotency")?,
            expiry: tree("expiry")?,
            db,
        })
    }

    /// Writes the layout version into a new database, or checks it in an existing one.
    fn check_schema(&self) -> Result<(), StoreError> {
        let version = SCHEMA_VERSION.to_be_bytes();
        match self.meta.get(SCHEMA_KEY).map_err(backend)? {
            None => {
                self.meta.insert(SCHEMA_KEY, &version).map_err(backend)?;
                self.db.flush().map_err(backend)?;
                Ok(())
            }
            Some(found) if found.as_ref() == version => Ok(()),
            Some(_) => Err(StoreError::Backend(
                "data directory has a storage layout this kith-relay does not know".into(),
            )),
        }
    }
}

/// Maps a sled error (never includes user data).
fn backend(e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Io(e) => io_error(e),
        ::sled::Error::Corruption { .. } => StoreError::Corrupt("sled page"),
        ::sled::Error::CollectionNotFound(_) => StoreError::Backend("sled: tree not found".into()),
        ::sled::Error::Unsupported(what) => {
            StoreError::Backend(format!("sled: unsupported: {what}"))
        }
        ::sled::Error::ReportableBug(what) => StoreError::Backend(format!("sled bug: {what}")),
    }
}

/// Maps an I/O error by kind only (its message may carry a path).
fn io_error(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return StoreError::StorageFull;
    }
    StoreError::Backend(format!("I/O error: {}", e.kind()))
}

/// Maps the result of a transaction.
fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

/// Aborts a transaction with `e`.
fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}
