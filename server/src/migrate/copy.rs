//! The copy, phase by phase, each in batches of one transaction.
//!
//! The order follows the foreign keys: accounts (with devices and their mailboxes) before
//! prekeys and entries, bodies before entries, and the mailboxes' next ids and counters after
//! the entries they are derived from.

use std::future::Future;

use super::MigrateError;
use super::progress::Progress;
use crate::store::{
    AccountRecord, BodyRecord, DevicePrekeys, EntryRecord, ImportError, PostgresStore, Records,
    SledStore, SnapshotCounts,
};

/// Most records in one batch.
const BATCH_RECORDS: usize = 500;
/// Roughly the most bytes in one batch (bodies and KEM prekeys are the large records).
const BATCH_BYTES: usize = 4 << 20;
/// About the size of an ML-KEM-768 prekey record (public key and signature).
const KEM_PREKEY_BYTES: usize = 1_300;
/// The weight of a small record.
const SMALL: usize = 128;

/// Copies every kind; returns the counts the database holds identically.
pub(super) async fn all(
    sled: &SledStore,
    target: &PostgresStore,
    counts: &SnapshotCounts,
    bars: bool,
) -> Result<SnapshotCounts, MigrateError> {
    let start = |name, total| Progress::start(name, total, bars);
    let mut copied = SnapshotCounts::default();
    let accounts = start("accounts", Some(counts.accounts));
    copied.add(
        &phase(
            accounts,
            sled.export_accounts(),
            account_weight,
            |b| async move { target.import_accounts(&b).await },
        )
        .await?,
    );
    let prekeys = start("devices' prekeys", Some(counts.devices));
    copied.add(
        &phase(
            prekeys,
            sled.export_prekeys(),
            prekey_weight,
            |b| async move { target.import_prekeys(&b).await },
        )
        .await?,
    );
    copied.bodies = count(
        start("bodies", Some(counts.bodies)),
        sled.export_bodies(),
        |b| async move { target.import_bodies(&b).await },
    )
    .await?;
    let entries = start("mailbox entries", Some(counts.entries));
    copied.entries = count(entries, sled.export_entries(), |b| async move {
        target.import_entries(&b).await
    })
    .await?;
    count(
        start("mailboxes", None),
        sled.export_mailboxes(),
        |b| async move { target.import_mailboxes(&b).await },
    )
    .await?;
    copied.invites = count(
        start("invites", Some(counts.invites)),
        sled.export_invites(),
        |b| async move { target.import_invites(&b).await },
    )
    .await?;
    let idempotency = start("idempotency records", Some(counts.idempotency_keys));
    copied.idempotency_keys = count(idempotency, sled.export_idempotency(), |b| async move {
        target.import_idempotency(&b).await
    })
    .await?;
    Ok(copied)
}

/// A phase whose import returns one count.
async fn count<T: Weighed, F, Fut>(
    progress: Progress,
    records: Records<'_, T>,
    mut import: F,
) -> Result<u64, MigrateError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<u64, ImportError>>,
{
    let counted = phase(progress, records, T::weight, |batch| {
        let imported = import(batch);
        async move {
            let n = imported.await?;
            Ok(SnapshotCounts {
                entries: n,
                ..SnapshotCounts::default()
            })
        }
    })
    .await?;
    Ok(counted.entries)
}

/// Reads `records` into batches of about [`BATCH_BYTES`] (by `weight`) and at most
/// [`BATCH_RECORDS`], imports each, and adds up what the imports return.
async fn phase<T, F, Fut>(
    mut progress: Progress,
    records: Records<'_, T>,
    weight: fn(&T) -> usize,
    mut import: F,
) -> Result<SnapshotCounts, MigrateError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<SnapshotCounts, ImportError>>,
{
    let mut total = SnapshotCounts::default();
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    for record in records {
        let record = record?;
        bytes = bytes.saturating_add(weight(&record));
        batch.push(record);
        if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
            let n = batch.len();
            total.add(&import(std::mem::take(&mut batch)).await?);
            progress.advance(n);
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        let n = batch.len();
        total.add(&import(batch).await?);
        progress.advance(n);
    }
    progress.finish();
    Ok(total)
}

/// How much of a batch a record fills.
trait Weighed {
    /// About its size in bytes.
    fn weight(&self) -> usize;
}

impl Weighed for BodyRecord {
    fn weight(&self) -> usize {
        self.body.len()
    }
}

impl Weighed for EntryRecord {
    fn weight(&self) -> usize {
        SMALL + self.part.as_ref().map_or(0, Vec::len)
    }
}

/// Mailboxes, invites and idempotency records are small.
macro_rules! small {
    ($($t:ty),*) => {$(
        impl Weighed for $t {
            fn weight(&self) -> usize {
                SMALL
            }
        }
    )*};
}
small!(
    crate::store::MailboxRecord,
    crate::store::InviteRecord,
    crate::store::IdempotencyRecord
);

fn account_weight(record: &AccountRecord) -> usize {
    SMALL * (1 + record.devices.len())
}

fn prekey_weight(record: &DevicePrekeys) -> usize {
    let p = &record.prekeys;
    let kem = p.one_time_kem.len() + usize::from(p.last_resort_kem.is_some());
    SMALL * (1 + p.one_time.len()) + KEM_PREKEY_BYTES * kem
}
