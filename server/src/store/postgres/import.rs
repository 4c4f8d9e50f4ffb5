//! Writing records copied from another engine, for `kith-relay migrate`.
//!
//! Each batch is one transaction: insert what is missing (`ON CONFLICT DO NOTHING`), then read
//! back every key of the batch and compare it with the record ([`verify`]). A key that holds
//! different data, or a record that could not be stored because another record holds one of
//! its unique values (a handle), is an [`ImportError::Conflict`]: the transaction rolls back,
//! so the batch writes nothing. Copying a batch again therefore stores nothing twice.
//!
//! Ids are kept: delivery ids, body ids (inserted over the identity column, which
//! [`PostgresStore::import_mailboxes`] then moves past them) and the devices' order (inserted
//! in order). The quota counters are recomputed from the copied entries.

use std::collections::BTreeMap;
use std::fmt;

use deadpool_postgres::Transaction;
use sha2::{Digest, Sha256};

use super::codec::{Params, column, execute, query};
use super::{PostgresStore, db_error};
use crate::store::{
    AccountRecord, BodyRecord, EntryRecord, IdempotencyRecord, InviteRecord, MailboxRecord,
    SnapshotCounts, StoreError,
};

mod kinds;

/// Why a batch was not imported.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportError {
    /// The database holds different data under a key of the batch.
    Conflict(Conflict),
    /// The database failed.
    Store(StoreError),
}

/// A record the database holds differently (or cannot hold next to what it has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The record kind, as in [`SnapshotCounts::named`].
    pub kind: &'static str,
    /// The start of the record's key, in hex (keys and ids only: never a body or a handle).
    pub key: String,
    /// Whether a row exists under the key (with other data) or the record could not be
    /// inserted at all (another row holds one of its unique values, e.g. the handle).
    pub present: bool,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, key) = (self.kind, &self.key);
        if self.present {
            write!(
                f,
                "{kind}: the database holds different data for key {key}…"
            )
        } else {
            write!(
                f,
                "{kind}: key {key}… cannot be stored: another record in the database holds one \
                 of its unique values (for an account: its handle)"
            )
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict(c) => write!(f, "conflict: {c}"),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(db_error(&e))
    }
}

/// The table where completed imports are remembered: the migration tool's own bookkeeping,
/// which the relay never reads (so it is not part of the relay's versioned schema).
const IMPORTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS kith_sled_imports (\
    source_id BYTEA NOT NULL PRIMARY KEY, completed_at BIGINT NOT NULL, counts BIGINT[] NOT NULL)";

/// Runs `$body` (using the transaction `$tx`) in a transaction: commits on `Ok`, rolls back
/// (by dropping the transaction) on `Err`.
macro_rules! batch {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client.transaction().await?;
        let value = $body;
        $tx.commit().await?;
        Ok(value)
    }};
}

impl PostgresStore {
    /// Imports accounts with their devices (in order) and the devices' empty mailboxes.
    pub async fn import_accounts(
        &self,
        records: &[AccountRecord],
    ) -> Result<SnapshotCounts, ImportError> {
        batch!(self, |tx| kinds::accounts(&tx, records).await?)
    }

    /// Imports every prekey of these devices.
    pub async fn import_prekeys(
        &self,
        records: &[crate::store::DevicePrekeys],
    ) -> Result<SnapshotCounts, ImportError> {
        batch!(self, |tx| kinds::prekeys(&tx, records).await?)
    }

    /// Imports bodies under their ids.
    pub async fn import_bodies(&self, records: &[BodyRecord]) -> Result<u64, ImportError> {
        batch!(self, |tx| kinds::bodies(&tx, records).await?)
    }

    /// Imports mailbox entries (their devices and bodies must be imported first).
    pub async fn import_entries(&self, records: &[EntryRecord]) -> Result<u64, ImportError> {
        batch!(self, |tx| kinds::entries(&tx, records).await?)
    }

    /// Imports invites.
    pub async fn import_invites(&self, records: &[InviteRecord]) -> Result<u64, ImportError> {
        batch!(self, |tx| kinds::invites(&tx, records).await?)
    }

    /// Imports idempotency records.
    pub async fn import_idempotency(
        &self,
        records: &[IdempotencyRecord],
    ) -> Result<u64, ImportError> {
        batch!(self, |tx| kinds::idempotency(&tx, records).await?)
    }

    /// After the entries: sets each mailbox's next delivery id (never lowering it) and
    /// recomputes its quota counters from its entries; moves the body id sequence past the
    /// imported ids. Returns how many mailboxes were updated.
    pub async fn import_mailboxes(&self, records: &[MailboxRecord]) -> Result<u64, ImportError> {
        batch!(self, |tx| kinds::mailboxes(&tx, records).await?)
    }

    /// When the source `source` was imported completely, and the counts it had then.
    pub async fn completed_import(
        &self,
        source: &[u8; 16],
    ) -> Result<Option<(u64, SnapshotCounts)>, ImportError> {
        let client = self.client().await?;
        client.batch_execute(IMPORTS_TABLE).await?;
        let rows = query(
            &client,
            "SELECT completed_at, counts FROM kith_sled_imports WHERE source_id = $1",
            &[&&source[..]],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let at: i64 = column(row, 0, "import record")?;
        let counts: Vec<i64> = column(row, 1, "import record")?;
        let counts: Vec<u64> = counts.into_iter().map(|n| n.unsigned_abs()).collect();
        let counts =
            SnapshotCounts::from_slice(&counts).ok_or(StoreError::Corrupt("import record"))?;
        Ok(Some((at.unsigned_abs(), counts)))
    }

    /// Remembers that `source` was imported completely at `now`, with these counts.
    pub async fn record_import(
        &self,
        source: &[u8; 16],
        now: u64,
        counts: &SnapshotCounts,
    ) -> Result<(), ImportError> {
        let client = self.client().await?;
        client.batch_execute(IMPORTS_TABLE).await?;
        let counts: Vec<i64> = counts
            .to_vec()
            .into_iter()
            .map(super::codec::to_i64)
            .collect();
        execute(
            &client,
            "INSERT INTO kith_sled_imports (source_id, completed_at, counts) VALUES ($1, $2, $3) \
             ON CONFLICT (source_id) DO NOTHING",
            &[&&source[..], &super::codec::to_i64(now), &counts],
        )
        .await?;
        Ok(())
    }
}

/// Reads back `(key, value)` rows for a batch with `select` and compares them with `expected`;
/// returns how many keys hold exactly the expected value. Any other outcome is a conflict.
async fn verify(
    tx: &Transaction<'_>,
    kind: &'static str,
    select: &str,
    params: &Params<'_>,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<u64, ImportError> {
    let rows = query(tx, select, params).await?;
    let mut found = BTreeMap::new();
    for row in &rows {
        let key: Vec<u8> = column(row, 0, "imported key")?;
        found.insert(key, column::<Vec<u8>>(row, 1, "imported value")?);
    }
    for (key, want) in expected {
        match found.get(key) {
            Some(value) if value == want => {}
            Some(_) => return Err(conflict(kind, key, true)),
            None => return Err(conflict(kind, key, false)),
        }
    }
    Ok(u64::try_from(expected.len()).unwrap_or(u64::MAX))
}

fn conflict(kind: &'static str, key: &[u8], present: bool) -> ImportError {
    let key = hex::encode(key.get(..8).unwrap_or(key));
    ImportError::Conflict(Conflict { kind, key, present })
}

/// The concatenation of `parts` (how [`verify`]'s expected values are spelled).
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A value as PostgreSQL's `int8send` spells it.
fn be(value: u64) -> [u8; 8] {
    super::codec::to_i64(value).to_be_bytes()
}

/// SHA-256, as PostgreSQL's `sha256()` (bodies are compared by digest).
fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
