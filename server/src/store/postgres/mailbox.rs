//! Mailboxes: enqueue, list, ack, and the removal of entries shared with expiry.
//!
//! An enqueue is one transaction:
//! 1. `INSERT` the idempotency key `ON CONFLICT DO NOTHING`. A second sender of the same key,
//!    on any node, waits on the first's uncommitted row; once it commits, the second finds the
//!    row and returns its receipt as a duplicate, storing nothing.
//! 2. Lock the recipients' `mailboxes` rows in device id order (`FOR NO KEY UPDATE`; a missing
//!    row is an unknown device), check every quota, assign delivery ids from the counters.
//!    The lock serialises a device's enqueues, so its ids commit in increasing order and a
//!    reader listing "after id n" never skips a later-committing smaller id.
//! 3. Insert the body once, an entry per recipient, update the counters and the receipt.
//! 4. `pg_notify` each recipient device: delivered to the other nodes at commit.
//!
//! Any failed check returns an error, which rolls everything back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deadpool_postgres::{GenericClient, Transaction};
use kith_protocol::DeviceId;

use super::codec::{
    column, device_id, execute, len_i64, query, query_one, query_opt, to_i64, to_u64,
};
use super::{Failure, listener};
use crate::store::{DeliveryId, Enqueue, Envelope, Receipt, StoreError};

/// A mailbox row while an enqueue holds its lock.
struct Mailbox {
    next_delivery: i64,
    entries: i64,
    charged_bytes: i64,
}

/// Stores a send (or finds it stored already) and returns its receipt.
pub(super) async fn enqueue(
    tx: &Transaction<'_>,
    send: &Enqueue,
    node: &str,
) -> Result<Receipt, Failure> {
    let key = &send.idempotency_key.0[..];
    let claimed = execute(
        tx,
        "INSERT INTO idempotency (key, deliveries, expires_at) VALUES ($1, '{}', $2) \
         ON CONFLICT (key) DO NOTHING",
        &[&key, &to_i64(send.idempotent_until)],
    )
    .await?;
    if claimed == 0 {
        return first_receipt(tx, key).await;
    }
    let mut mailboxes = lock_mailboxes(tx, send).await?;
    let mut deliveries = Vec::with_capacity(send.recipients.len());
    for recipient in &send.recipients {
        let part = recipient.part.as_ref().map_or(0, Vec::len);
        let mailbox = mailboxes
            .get_mut(recipient.device.as_bytes())
            .ok_or(StoreError::DeviceNotFound)?;
        deliveries.push(charge(mailbox, send, part)?);
    }
    let body_row = query_one(
        tx,
        "INSERT INTO bodies (refs, body) VALUES ($1, $2) RETURNING body_id",
        &[&len_i64(send.recipients.len()), &send.body],
    )
    .await?;
    let body_id: i64 = column(&body_row, 0, "body id")?;
    insert_entries(tx, send, body_id, &deliveries).await?;
    store_counters(tx, &mailboxes).await?;
    execute(
        tx,
        "UPDATE idempotency SET deliveries = $2 WHERE key = $1",
        &[&key, &deliveries],
    )
    .await?;
    notify(tx, node, mailboxes.keys()).await?;
    let deliveries = deliveries
        .into_iter()
        .map(|id| to_u64(id, "delivery id"))
        .collect::<Result<_, _>>()?;
    Ok(Receipt {
        deliveries,
        duplicate: false,
    })
}

/// The receipt of the send that recorded `key` first.
async fn first_receipt(tx: &Transaction<'_>, key: &[u8]) -> Result<Receipt, Failure> {
    let row = query_opt(
        tx,
        "SELECT deliveries FROM idempotency WHERE key = $1",
        &[&key],
    )
    .await?;
    // Gone already (expired between the two statements): try again, as a new send.
    let row = row.ok_or(Failure::Retry)?;
    let ids: Vec<i64> = column(&row, 0, "idempotency")?;
    let deliveries = ids
        .into_iter()
        .map(|id| to_u64(id, "idempotency"))
        .collect::<Result<_, _>>()?;
    Ok(Receipt {
        deliveries,
        duplicate: true,
    })
}

/// Locks the recipients' mailbox rows in device id order; any missing is an unknown device.
async fn lock_mailboxes(
    tx: &Transaction<'_>,
    send: &Enqueue,
) -> Result<BTreeMap<[u8; 16], Mailbox>, Failure> {
    let wanted: BTreeSet<[u8; 16]> = send
        .recipients
        .iter()
        .map(|r| *r.device.as_bytes())
        .collect();
    let ids: Vec<&[u8]> = wanted.iter().map(|d| &d[..]).collect();
    let rows = query(
        tx,
        "SELECT device_id, next_delivery, entries, charged_bytes FROM mailboxes \
         WHERE device_id = ANY($1) ORDER BY device_id FOR NO KEY UPDATE",
        &[&ids],
    )
    .await?;
    let mut mailboxes = BTreeMap::new();
    for row in &rows {
        let device: &[u8] = column(row, 0, "mailbox")?;
        let mailbox = Mailbox {
            next_delivery: column(row, 1, "mailbox")?,
            entries: column(row, 2, "mailbox")?,
            charged_bytes: column(row, 3, "mailbox")?,
        };
        mailboxes.insert(*device_id(device)?.as_bytes(), mailbox);
    }
    if mailboxes.len() != wanted.len() {
        return Err(StoreError::DeviceNotFound.into());
    }
    Ok(mailboxes)
}

/// Charges one entry (body + part) to a mailbox and assigns its delivery id.
fn charge(mailbox: &mut Mailbox, send: &Enqueue, part: usize) -> Result<i64, StoreError> {
    let cost = len_i64(send.body.len()).saturating_add(len_i64(part));
    let entries = mailbox.entries.saturating_add(1);
    let bytes = mailbox.charged_bytes.saturating_add(cost);
    if entries > to_i64(send.limits.max_entries) || bytes > to_i64(send.limits.max_bytes) {
        return Err(StoreError::MailboxFull);
    }
    let id = mailbox.next_delivery.max(1);
    mailbox.next_delivery = id.saturating_add(1);
    mailbox.entries = entries;
    mailbox.charged_bytes = bytes;
    Ok(id)
}

async fn insert_entries(
    tx: &Transaction<'_>,
    send: &Enqueue,
    body_id: i64,
    deliveries: &[i64],
) -> Result<(), Failure> {
    let devices: Vec<&[u8]> = send
        .recipients
        .iter()
        .map(|r| &r.device.as_bytes()[..])
        .collect();
    let parts: Vec<Option<&[u8]>> = send.recipients.iter().map(|r| r.part.as_deref()).collect();
    execute(
        tx,
        "INSERT INTO entries (device_id, delivery_id, body_id, part, arrived_at, expires_at) \
         SELECT r.device_id, r.delivery_id, $3, r.part, $5, $6 \
         FROM unnest($1::bytea[], $2::int8[], $4::bytea[]) AS r(device_id, delivery_id, part)",
        &[
            &devices,
            &deliveries,
            &body_id,
            &parts,
            &to_i64(send.arrived_at),
            &to_i64(send.expires_at),
        ],
    )
    .await?;
    Ok(())
}

/// Writes back the counters of the locked mailboxes.
async fn store_counters(
    tx: &Transaction<'_>,
    mailboxes: &BTreeMap<[u8; 16], Mailbox>,
) -> Result<(), Failure> {
    let devices: Vec<&[u8]> = mailboxes.keys().map(|d| &d[..]).collect();
    let next: Vec<i64> = mailboxes.values().map(|m| m.next_delivery).collect();
    let entries: Vec<i64> = mailboxes.values().map(|m| m.entries).collect();
    let bytes: Vec<i64> = mailboxes.values().map(|m| m.charged_bytes).collect();
    execute(
        tx,
        "UPDATE mailboxes m SET next_delivery = r.next, entries = r.entries, \
                charged_bytes = r.bytes \
         FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::int8[]) \
              AS r(device_id, next, entries, bytes) \
         WHERE m.device_id = r.device_id",
        &[&devices, &next, &entries, &bytes],
    )
    .await?;
    Ok(())
}

/// Wakes the recipient devices on the other nodes (at commit).
async fn notify<'a>(
    tx: &Transaction<'_>,
    node: &str,
    devices: impl Iterator<Item = &'a [u8; 16]>,
) -> Result<(), Failure> {
    let payloads: Vec<String> = devices
        .map(|d| listener::payload(node, &DeviceId::from_bytes(*d)))
        .collect();
    let sql = format!(
        "SELECT pg_notify('{}', p) FROM unnest($1::text[]) AS p",
        listener::CHANNEL
    );
    query(tx, &sql, &[&payloads]).await?;
    Ok(())
}

/// Up to `limit` entries after `after`, in delivery-id order, with their bodies (one
/// statement, one snapshot).
pub(super) async fn list<C: GenericClient>(
    client: &C,
    device: &DeviceId,
    after: Option<DeliveryId>,
    limit: usize,
) -> Result<Vec<Envelope>, Failure> {
    let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
        return Ok(Vec::new());
    };
    let rows = query(
        client,
        "SELECT e.delivery_id, e.arrived_at, e.expires_at, b.body, e.part \
         FROM entries e JOIN bodies b ON b.body_id = e.body_id \
         WHERE e.device_id = $1 AND e.delivery_id > $2 \
         ORDER BY e.delivery_id LIMIT $3",
        &[&&device.as_bytes()[..], &after, &len_i64(limit)],
    )
    .await?;
    let envelope = |row: &tokio_postgres::Row| -> Result<Envelope, StoreError> {
        Ok(Envelope {
            delivery_id: to_u64(column(row, 0, "mailbox entry")?, "mailbox entry")?,
            arrived_at: to_u64(column(row, 1, "mailbox entry")?, "mailbox entry")?,
            expires_at: to_u64(column(row, 2, "mailbox entry")?, "mailbox entry")?,
            body: column(row, 3, "body")?,
            part: column(row, 4, "mailbox entry")?,
        })
    };
    Ok(rows.iter().map(envelope).collect::<Result<_, _>>()?)
}

/// Deletes the device's entries with these ids; returns how many existed.
pub(super) async fn ack(
    tx: &Transaction<'_>,
    device: &DeviceId,
    ids: &[DeliveryId],
) -> Result<u64, Failure> {
    let ids: Vec<i64> = ids
        .iter()
        .filter_map(|id| i64::try_from(*id).ok())
        .collect();
    let rows = query(
        tx,
        "DELETE FROM entries WHERE device_id = $1 AND delivery_id = ANY($2) \
         RETURNING device_id, body_id, COALESCE(octet_length(part), 0)",
        &[&&device.as_bytes()[..], &ids],
    )
    .await?;
    let removed = removed_entries(&rows)?;
    release(tx, &removed).await?;
    Ok(u64::try_from(removed.len()).unwrap_or(u64::MAX))
}

/// An entry just deleted: its device, body and part length.
pub(super) struct Removed {
    device: [u8; 16],
    body: i64,
    part_len: i64,
}

/// Reads `RETURNING device_id, body_id, part length` rows.
pub(super) fn removed_entries(rows: &[tokio_postgres::Row]) -> Result<Vec<Removed>, StoreError> {
    rows.iter()
        .map(|row| {
            let device: &[u8] = column(row, 0, "mailbox entry")?;
            Ok(Removed {
                device: *device_id(device)?.as_bytes(),
                body: column(row, 1, "mailbox entry")?,
                part_len: i64::from(column::<i32>(row, 2, "mailbox entry")?),
            })
        })
        .collect()
}

/// After deleting entries: drops their body references (deleting bodies with the last one)
/// and their share of the mailbox counters. Locks bodies, then mailboxes, each in id order.
/// Returns how many bodies were deleted.
pub(super) async fn release(tx: &Transaction<'_>, removed: &[Removed]) -> Result<u64, Failure> {
    if removed.is_empty() {
        return Ok(0);
    }
    let mut refs: BTreeMap<i64, i64> = BTreeMap::new();
    for entry in removed {
        *refs.entry(entry.body).or_default() += 1;
    }
    let ids: Vec<i64> = refs.keys().copied().collect();
    let counts: Vec<i64> = refs.values().copied().collect();
    let rows = query(
        tx,
        "SELECT body_id, octet_length(body) FROM bodies WHERE body_id = ANY($1) \
         ORDER BY body_id FOR NO KEY UPDATE",
        &[&ids],
    )
    .await?;
    let mut body_len = HashMap::new();
    for row in &rows {
        let len: i32 = column(row, 1, "body")?;
        body_len.insert(column::<i64>(row, 0, "body")?, i64::from(len));
    }
    execute(
        tx,
        "UPDATE bodies b SET refs = b.refs - r.n FROM unnest($1::int8[], $2::int8[]) AS r(id, n) \
         WHERE b.body_id = r.id",
        &[&ids, &counts],
    )
    .await?;
    let gone = execute(
        tx,
        "DELETE FROM bodies WHERE body_id = ANY($1) AND refs <= 0",
        &[&ids],
    )
    .await?;
    uncharge(tx, removed, &body_len).await?;
    Ok(gone)
}

/// Takes removed entries off their mailboxes' counters.
async fn uncharge(
    tx: &Transaction<'_>,
    removed: &[Removed],
    body_len: &HashMap<i64, i64>,
) -> Result<(), Failure> {
    let mut per_device: BTreeMap<[u8; 16], (i64, i64)> = BTreeMap::new();
    for entry in removed {
        let len = body_len
            .get(&entry.body)
            .ok_or(StoreError::Corrupt("mailbox entry without body"))?;
        let slot = per_device.entry(entry.device).or_default();
        slot.0 += 1;
        slot.1 = slot.1.saturating_add(len.saturating_add(entry.part_len));
    }
    let devices: Vec<&[u8]> = per_device.keys().map(|d| &d[..]).collect();
    let entries: Vec<i64> = per_device.values().map(|v| v.0).collect();
    let bytes: Vec<i64> = per_device.values().map(|v| v.1).collect();
    query(
        tx,
        "SELECT 1 FROM mailboxes WHERE device_id = ANY($1) ORDER BY device_id FOR NO KEY UPDATE",
        &[&devices],
    )
    .await?;
    execute(
        tx,
        "UPDATE mailboxes m SET entries = greatest(m.entries - r.n, 0), \
                charged_bytes = greatest(m.charged_bytes - r.bytes, 0) \
         FROM unnest($1::bytea[], $2::int8[], $3::int8[]) AS r(device_id, n, bytes) \
         WHERE m.device_id = r.device_id",
        &[&devices, &entries, &bytes],
    )
    .await?;
    Ok(())
}
