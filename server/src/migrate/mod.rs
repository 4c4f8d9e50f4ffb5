//! `kith-relay migrate`: copies a stopped single-node relay's sled store into PostgreSQL.
//!
//! [`run`] opens the sled store (its directory lock proves no relay uses it), connects to
//! PostgreSQL (applying the migrations, as a relay start does), and copies every record kind
//! in batches, one transaction each ([`PostgresStore`]'s `import_*` methods): accounts with
//! their devices in order, prekeys, bodies (each once, under its id), mailbox entries (with
//! their delivery ids), the mailboxes' next ids, invites and idempotency records. Each batch
//! inserts only what is missing and then compares every record with what the database holds,
//! so a run after an interrupted one completes the copy, and different data under the same
//! key (a handle of another account) stops the copy with a [`Conflict`] before that batch
//! writes anything.
//!
//! At the end the counts are compared, kind by kind: the records in sled against those
//! PostgreSQL holds identically. When they match, the database remembers that this sled store
//! (named by a random id kept in its `meta` tree) was copied, with its counts. Running the
//! copy again then writes nothing: once the relay has run on PostgreSQL, copying again would
//! bring back acknowledged messages and one-time prekeys already handed out. The later run
//! only checks that the sled store still has the counts it had, and refuses if it changed
//! (a sled relay was started again after the copy).

mod copy;
mod progress;
mod report;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::DatabaseUrl;
use crate::store::{
    Conflict, ImportError, PostgresOptions, PostgresStore, SledOptions, SledStore, Store,
    StoreError,
};

pub use self::report::Report;

/// What to copy where.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The stopped relay's data directory (its `sled/` is used), or the sled directory itself.
    pub sled_dir: PathBuf,
    /// The target database.
    pub database: DatabaseUrl,
    /// CA certificates for verifying the database server (`sslmode=require`).
    pub database_ca: Option<PathBuf>,
    /// Draw progress bars (stderr is a terminal) rather than plain progress lines.
    pub progress_bars: bool,
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// No sled store in the directory given.
    #[error("no sled store in {0} (give the relay's data directory or its sled/ directory)")]
    NoSledStore(PathBuf),
    /// A relay has the sled store open.
    #[error("the sled store is in use by a running kith-relay: stop the relay first")]
    InUse,
    /// The database holds different data for a key being copied.
    #[error(
        "{0}. Nothing of that batch was written and the copy stopped: migrate into a fresh \
         database, or remove the conflicting data first"
    )]
    Conflict(Conflict),
    /// This sled store was copied completely before, and has changed since.
    #[error(
        "this sled store was migrated into this database at {at}, and its contents changed \
         since (was the sled relay started again?); refusing to copy it again: the relay may \
         have delivered and deleted messages in PostgreSQL since. Migrate into a fresh \
         database instead"
    )]
    SourceChanged {
        /// When the earlier copy completed (RFC 3339).
        at: String,
    },
    /// Reading sled or writing PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ImportError> for MigrateError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Conflict(c) => Self::Conflict(c),
            ImportError::Store(e) => Self::Store(e),
        }
    }
}

/// Copies the sled store into the database and checks the counts. Returns the counts of both
/// sides ([`Report::matches`] says whether they agree; the copy is recorded only then).
pub async fn run(options: &MigrateOptions) -> Result<Report, MigrateError> {
    let path = sled_path(&options.sled_dir)?;
    let sled = SledStore::open(&path, SledOptions::default()).map_err(|e| match e {
        StoreError::InUse => MigrateError::InUse,
        e => e.into(),
    })?;
    let target = PostgresStore::connect(PostgresOptions {
        url: options.database.expose().to_owned(),
        pool_size: 2,
        ca_file: options.database_ca.clone(),
    })
    .await;
    let result = match target {
        Ok(target) => {
            let result = copy_checked(&sled, &target, options.progress_bars).await;
            target.close().await?;
            result
        }
        Err(e) => Err(e.into()),
    };
    sled.close().await?;
    result.map(|report| report.located(&path, &options.database))
}

/// The copy, or the check of an earlier complete one.
async fn copy_checked(
    sled: &SledStore,
    target: &PostgresStore,
    progress_bars: bool,
) -> Result<Report, MigrateError> {
    let source = sled.export_id()?;
    let counts = sled.snapshot_counts()?;
    if let Some((at, recorded)) = target.completed_import(&source).await? {
        if recorded != counts {
            return Err(MigrateError::SourceChanged { at: rfc3339(at) });
        }
        return Ok(Report::already_copied(counts, rfc3339(at)));
    }
    let copied = copy::all(sled, target, &counts, progress_bars).await?;
    let report = Report::copied(counts, copied);
    if report.matches() {
        target.record_import(&source, now(), &counts).await?;
    }
    Ok(report)
}

/// The sled directory: `<dir>/sled` (a data directory) or `dir` itself, whichever holds a
/// sled database. Never creates one.
fn sled_path(dir: &Path) -> Result<PathBuf, MigrateError> {
    let is_sled = |p: &Path| p.join("conf").is_file() && p.join("db").is_file();
    let nested = dir.join(crate::service::STORE_DIR);
    if is_sled(&nested) {
        Ok(nested)
    } else if is_sled(dir) {
        Ok(dir.to_path_buf())
    } else {
        Err(MigrateError::NoSledStore(dir.to_path_buf()))
    }
}

/// Parses `sled:DIR` (the `--from` argument).
pub fn parse_source(text: &str) -> Result<PathBuf, String> {
    match text.split_once(':') {
        Some(("sled", dir)) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err("write sled:DIR, DIR being the stopped relay's data directory".into()),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rfc3339(secs: u64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(at).to_string()
}
