//! Expiry and totals.
//!
//! Expiry is safe to run on every node at once: each batch claims its rows with
//! `FOR UPDATE SKIP LOCKED`, so two runs never delete (or count) the same row, and neither
//! waits for the other. Rows another transaction holds are left to that transaction (an ack
//! deleting them) or to a later run.

use deadpool_postgres::{GenericClient, Transaction};

use super::Failure;
use super::codec::{column, execute, query, query_one, to_i64, to_u64};
use super::mailbox::{release, removed_entries};
use crate::store::{ExpireCounts, QueueStats, StoreStats};

/// Rows handled per transaction, so one transaction stays small.
pub(super) const EXPIRE_BATCH: i64 = 256;

/// Deletes one batch of expired entries (and bodies left without entries). Returns the
/// entries and bodies deleted; `(0, 0)` when there is nothing (left) to claim.
pub(super) async fn expire_entries(tx: &Transaction<'_>, now: u64) -> Result<(u64, u64), Failure> {
    let rows = query(
        tx,
        "DELETE FROM entries WHERE (device_id, delivery_id) IN \
           (SELECT device_id, delivery_id FROM entries WHERE expires_at <= $1 \
            LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING device_id, body_id, COALESCE(octet_length(part), 0)",
        &[&to_i64(now), &EXPIRE_BATCH],
    )
    .await?;
    let removed = removed_entries(&rows)?;
    let bodies = release(tx, &removed).await?;
    Ok((u64::try_from(removed.len()).unwrap_or(u64::MAX), bodies))
}

/// Deletes one batch of expired rows of `table` (`idempotency` or `invites`, keyed by
/// `key`); returns how many.
pub(super) async fn expire_keys<C: GenericClient>(
    client: &C,
    table: Expiring,
    now: u64,
) -> Result<u64, Failure> {
    let (table, key) = match table {
        Expiring::Idempotency => ("idempotency", "key"),
        Expiring::Invites => ("invites", "token_hash"),
    };
    let sql = format!(
        "DELETE FROM {table} WHERE {key} IN \
           (SELECT {key} FROM {table} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
    );
    Ok(execute(client, &sql, &[&to_i64(now), &EXPIRE_BATCH]).await?)
}

/// The tables [`expire_keys`] cleans.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expiring {
    /// Idempotency records.
    Idempotency,
    /// Invites.
    Invites,
}

/// Adds one run's counts to a total.
pub(super) fn add(total: &mut ExpireCounts, entries: u64, bodies: u64) {
    total.entries = total.entries.saturating_add(entries);
    total.bodies = total.bodies.saturating_add(bodies);
}

/// Queue totals (one statement, one snapshot).
pub(super) async fn queue_stats<C: GenericClient>(client: &C) -> Result<QueueStats, Failure> {
    let row = query_one(
        client,
        "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM bodies), \
                (SELECT COALESCE(sum(octet_length(body)), 0) FROM bodies) \
                + (SELECT COALESCE(sum(octet_length(part)), 0) FROM entries)",
        &[],
    )
    .await?;
    Ok(QueueStats {
        entries: to_u64(column(&row, 0, "totals")?, "totals")?,
        bodies: to_u64(column(&row, 1, "totals")?, "totals")?,
        bytes: to_u64(column(&row, 2, "totals")?, "totals")?,
    })
}

/// Totals for `kith-relay stats`.
pub(super) async fn stats<C: GenericClient>(client: &C) -> Result<StoreStats, Failure> {
    let row = query_one(
        client,
        "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM devices)",
        &[],
    )
    .await?;
    let queue = queue_stats(client).await?;
    Ok(StoreStats {
        accounts: to_u64(column(&row, 0, "totals")?, "totals")?,
        devices: to_u64(column(&row, 1, "totals")?, "totals")?,
        queued_envelopes: queue.entries,
        queued_bytes: queue.bytes,
    })
}
