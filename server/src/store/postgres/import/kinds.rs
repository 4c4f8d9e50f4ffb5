//! The import of each record kind: its inserts, and the read-back [`verify`] compares.
//!
//! Read-backs select `(key, value)` as `bytea`, the value spelled with `int8send` (8 bytes,
//! big-endian) and concatenation; the expected values are spelled the same way in Rust.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use kith_protocol::{DeviceId, KemPrekey, OneTimePrekey};
use serde::Serialize;

use super::{ImportError, be, cat, sha256, verify};
use crate::store::postgres::codec::{encode, execute, to_i64};
use crate::store::{
    AccountRecord, BodyRecord, DevicePrekeys, EntryRecord, IdempotencyRecord, InviteRecord,
    MailboxRecord, SnapshotCounts,
};

/// Expected `(key, value)` pairs of a batch.
type Expected = BTreeMap<Vec<u8>, Vec<u8>>;

/// Accounts, then their devices in order, then the devices' mailboxes.
pub(super) async fn accounts(
    tx: &Transaction<'_>,
    records: &[AccountRecord],
) -> Result<SnapshotCounts, ImportError> {
    let keys: Vec<&[u8]> = records
        .iter()
        .map(|r| &r.account.account_key.as_bytes()[..])
        .collect();
    let handles: Vec<&str> = records.iter().map(|r| r.account.handle.as_str()).collect();
    let created: Vec<i64> = records
        .iter()
        .map(|r| to_i64(r.account.created_at))
        .collect();
    execute(
        tx,
        "INSERT INTO accounts (account_key, handle, created_at) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::int8[]) ON CONFLICT DO NOTHING",
        &[&keys, &handles, &created],
    )
    .await?;
    let (device_ids, devices) = insert_devices(tx, records).await?;
    let expected: Expected = records
        .iter()
        .map(|r| {
            let a = &r.account;
            let handle = a.handle.as_bytes();
            let len = u32::try_from(handle.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes();
            let ids: Vec<&[u8]> = a.devices.iter().map(|d| &d.as_bytes()[..]).collect();
            let value = cat(&[&be(a.created_at), &len, handle, &ids.concat()]);
            (a.account_key.as_bytes().to_vec(), value)
        })
        .collect();
    let select = "SELECT a.account_key, int8send(a.created_at) || \
           int4send(octet_length(a.handle)) || convert_to(a.handle, 'UTF8') || \
           COALESCE((SELECT string_agg(d.device_id, ''::bytea ORDER BY d.position) \
                     FROM devices d WHERE d.account_key = a.account_key), ''::bytea) \
         FROM accounts a WHERE a.account_key = ANY($1)";
    let accounts = verify(tx, "accounts", select, &[&keys], &expected).await?;
    let select = "SELECT device_id, account_key || int8send(added_at) || certificate \
                  FROM devices WHERE device_id = ANY($1)";
    let devices = verify(tx, "devices", select, &[&device_ids], &devices).await?;
    Ok(SnapshotCounts {
        accounts,
        devices,
        ..SnapshotCounts::default()
    })
}

/// Inserts the accounts' devices in order, with empty mailboxes; returns their ids and what
/// each should hold, for [`verify`] once the accounts are verified.
async fn insert_devices(
    tx: &Transaction<'_>,
    records: &[AccountRecord],
) -> Result<(Vec<Vec<u8>>, Expected), ImportError> {
    let all: Vec<_> = records.iter().flat_map(|r| &r.devices).collect();
    let ids: Vec<DeviceId> = all
        .iter()
        .map(|d| d.certificate.claimed_device_id())
        .collect();
    let id_bytes: Vec<&[u8]> = ids.iter().map(|d| &d.as_bytes()[..]).collect();
    let owners: Vec<&[u8]> = all.iter().map(|d| &d.account_key.as_bytes()[..]).collect();
    let certificates: Vec<Vec<u8>> = all.iter().map(|d| d.certificate.to_bytes()).collect();
    let added: Vec<i64> = all.iter().map(|d| to_i64(d.added_at)).collect();
    // Inserted in order, so the identity column `position` keeps each account's order. A
    // device of an account that was not stored (a conflict) is skipped; verify reports it.
    execute(
        tx,
        "INSERT INTO devices (device_id, account_key, certificate, added_at) \
         SELECT r.d, r.a, r.c, r.t \
         FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[]) \
              WITH ORDINALITY AS r(d, a, c, t, n) \
         WHERE EXISTS (SELECT 1 FROM accounts x WHERE x.account_key = r.a) \
         ORDER BY r.n ON CONFLICT DO NOTHING",
        &[&id_bytes, &owners, &certificates, &added],
    )
    .await?;
    execute(
        tx,
        "INSERT INTO mailboxes (device_id) SELECT device_id FROM devices \
         WHERE device_id = ANY($1) ON CONFLICT DO NOTHING",
        &[&id_bytes],
    )
    .await?;
    let expected: Expected = all
        .iter()
        .zip(&id_bytes)
        .zip(&certificates)
        .map(|((d, id), certificate)| {
            let value = cat(&[d.account_key.as_bytes(), &be(d.added_at), certificate]);
            (id.to_vec(), value)
        })
        .collect();
    Ok((id_bytes.iter().map(|id| id.to_vec()).collect(), expected))
}

/// The four prekey tables.
pub(super) async fn prekeys(
    tx: &Transaction<'_>,
    records: &[DevicePrekeys],
) -> Result<SnapshotCounts, ImportError> {
    let signed = records
        .iter()
        .filter_map(|r| Some((r.device, r.prekeys.signed.as_ref()?)));
    let signed: Vec<_> = signed.collect();
    let last = records
        .iter()
        .filter_map(|r| Some((r.device, r.prekeys.last_resort_kem.as_ref()?)));
    let last: Vec<_> = last.collect();
    let one_time: Vec<(DeviceId, &OneTimePrekey)> = records
        .iter()
        .flat_map(|r| r.prekeys.one_time.iter().map(|p| (r.device, p)))
        .collect();
    let one_time_kem: Vec<(DeviceId, &KemPrekey)> = records
        .iter()
        .flat_map(|r| r.prekeys.one_time_kem.iter().map(|p| (r.device, p)))
        .collect();
    Ok(SnapshotCounts {
        signed_prekeys: per_device(tx, "signed_prekeys", "signed prekeys", &signed).await?,
        last_resort_kem_prekeys: per_device(tx, "last_resort_kem_prekeys", "kem", &last).await?,
        one_time_prekeys: one_time_table(tx, "one_time_prekeys", &one_time, |p| p.id()).await?,
        one_time_kem_prekeys: one_time_table(tx, "one_time_kem_prekeys", &one_time_kem, |p| p.id())
            .await?,
        ..SnapshotCounts::default()
    })
}

/// A table with one prekey per device.
async fn per_device<T: Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    kind: &'static str,
    rows: &[(DeviceId, &T)],
) -> Result<u64, ImportError> {
    let devices: Vec<&[u8]> = rows.iter().map(|(d, _)| &d.as_bytes()[..]).collect();
    let encoded: Vec<Vec<u8>> = rows
        .iter()
        .map(|(_, p)| encode(p))
        .collect::<Result<_, _>>()?;
    let insert = format!(
        "INSERT INTO {table} (device_id, prekey) \
         SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING"
    );
    execute(tx, &insert, &[&devices, &encoded]).await?;
    let expected: Expected = devices
        .iter()
        .zip(&encoded)
        .map(|(d, p)| (d.to_vec(), p.clone()))
        .collect();
    let select = format!("SELECT device_id, prekey FROM {table} WHERE device_id = ANY($1)");
    verify(tx, kind, &select, &[&devices], &expected).await
}

/// A table of one-time prekeys keyed by device and prekey id.
async fn one_time_table<T: Serialize>(
    tx: &Transaction<'_>,
    table: &'static str,
    rows: &[(DeviceId, &T)],
    id: fn(&T) -> u32,
) -> Result<u64, ImportError> {
    let devices: Vec<&[u8]> = rows.iter().map(|(d, _)| &d.as_bytes()[..]).collect();
    let ids: Vec<i64> = rows.iter().map(|(_, p)| i64::from(id(p))).collect();
    let encoded: Vec<Vec<u8>> = rows
        .iter()
        .map(|(_, p)| encode(p))
        .collect::<Result<_, _>>()?;
    let insert = format!(
        "INSERT INTO {table} (device_id, key_id, prekey) \
         SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) ON CONFLICT DO NOTHING"
    );
    execute(tx, &insert, &[&devices, &ids, &encoded]).await?;
    let expected: Expected = rows
        .iter()
        .zip(&encoded)
        .map(|((d, p), e)| (cat(&[d.as_bytes(), &be(u64::from(id(p)))]), e.clone()))
        .collect();
    let select = format!(
        "SELECT t.device_id || int8send(t.key_id), t.prekey FROM {table} t \
         JOIN unnest($1::bytea[], $2::int8[]) AS k(d, i) ON t.device_id = k.d AND t.key_id = k.i"
    );
    verify(tx, table, &select, &[&devices, &ids], &expected).await
}

/// Bodies, under their ids.
pub(super) async fn bodies(
    tx: &Transaction<'_>,
    records: &[BodyRecord],
) -> Result<u64, ImportError> {
    let ids: Vec<i64> = records.iter().map(|r| to_i64(r.id)).collect();
    let refs: Vec<i64> = records.iter().map(|r| to_i64(r.refs)).collect();
    let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
    execute(
        tx,
        "INSERT INTO bodies (body_id, refs, body) OVERRIDING SYSTEM VALUE \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[]) ON CONFLICT DO NOTHING",
        &[&ids, &refs, &bodies],
    )
    .await?;
    let expected: Expected = records
        .iter()
        .map(|r| (be(r.id).to_vec(), cat(&[&be(r.refs), &sha256(&r.body)])))
        .collect();
    let select = "SELECT int8send(body_id), int8send(refs) || sha256(body) \
                  FROM bodies WHERE body_id = ANY($1)";
    verify(tx, "bodies", select, &[&ids], &expected).await
}

/// Mailbox entries.
pub(super) async fn entries(
    tx: &Transaction<'_>,
    records: &[EntryRecord],
) -> Result<u64, ImportError> {
    let devices: Vec<&[u8]> = records.iter().map(|r| &r.device.as_bytes()[..]).collect();
    let ids: Vec<i64> = records.iter().map(|r| to_i64(r.delivery_id)).collect();
    let bodies: Vec<i64> = records.iter().map(|r| to_i64(r.body)).collect();
    let parts: Vec<Option<&[u8]>> = records.iter().map(|r| r.part.as_deref()).collect();
    let arrived: Vec<i64> = records.iter().map(|r| to_i64(r.arrived_at)).collect();
    let expires: Vec<i64> = records.iter().map(|r| to_i64(r.expires_at)).collect();
    execute(
        tx,
        "INSERT INTO entries (device_id, delivery_id, body_id, part, arrived_at, expires_at) \
         SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::bytea[], $5::int8[], \
                              $6::int8[]) ON CONFLICT DO NOTHING",
        &[&devices, &ids, &bodies, &parts, &arrived, &expires],
    )
    .await?;
    let expected: Expected = records.iter().map(entry_pair).collect();
    let select = "SELECT e.device_id || int8send(e.delivery_id), \
           int8send(e.body_id) || int8send(e.arrived_at) || int8send(e.expires_at) || \
           CASE WHEN e.part IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || e.part END \
         FROM entries e JOIN unnest($1::bytea[], $2::int8[]) AS k(d, i) \
              ON e.device_id = k.d AND e.delivery_id = k.i";
    verify(tx, "mailbox entries", select, &[&devices, &ids], &expected).await
}

fn entry_pair(r: &EntryRecord) -> (Vec<u8>, Vec<u8>) {
    let key = cat(&[r.device.as_bytes(), &be(r.delivery_id)]);
    let part = match &r.part {
        None => vec![0],
        Some(part) => cat(&[&[1], part]),
    };
    let value = cat(&[&be(r.body), &be(r.arrived_at), &be(r.expires_at), &part]);
    (key, value)
}

/// Invites.
pub(super) async fn invites(
    tx: &Transaction<'_>,
    records: &[InviteRecord],
) -> Result<u64, ImportError> {
    let tokens: Vec<&[u8]> = records.iter().map(|r| &r.token.0[..]).collect();
    let uses: Vec<i64> = records.iter().map(|r| i64::from(r.uses_left)).collect();
    let expires: Vec<i64> = records.iter().map(|r| to_i64(r.expires_at)).collect();
    execute(
        tx,
        "INSERT INTO invites (token_hash, uses_left, expires_at) \
         SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[]) ON CONFLICT DO NOTHING",
        &[&tokens, &uses, &expires],
    )
    .await?;
    let expected: Expected = records
        .iter()
        .map(|r| {
            let value = cat(&[&be(u64::from(r.uses_left)), &be(r.expires_at)]);
            (r.token.0.to_vec(), value)
        })
        .collect();
    let select = "SELECT token_hash, int8send(uses_left) || int8send(expires_at) \
                  FROM invites WHERE token_hash = ANY($1)";
    verify(tx, "invites", select, &[&tokens], &expected).await
}

/// Idempotency records (few: they live for the short retry window), one insert each.
pub(super) async fn idempotency(
    tx: &Transaction<'_>,
    records: &[IdempotencyRecord],
) -> Result<u64, ImportError> {
    for r in records {
        let deliveries: Vec<i64> = r.deliveries.iter().map(|d| to_i64(*d)).collect();
        execute(
            tx,
            "INSERT INTO idempotency (key, deliveries, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&&r.key.0[..], &deliveries, &to_i64(r.expires_at)],
        )
        .await?;
    }
    let keys: Vec<&[u8]> = records.iter().map(|r| &r.key.0[..]).collect();
    let expected: Expected = records
        .iter()
        .map(|r| {
            let ids: Vec<[u8; 8]> = r.deliveries.iter().map(|d| be(*d)).collect();
            (r.key.0.to_vec(), cat(&[&be(r.expires_at), &ids.concat()]))
        })
        .collect();
    let select = "SELECT key, int8send(expires_at) || \
           COALESCE((SELECT string_agg(int8send(x), ''::bytea ORDER BY n) \
                     FROM unnest(deliveries) WITH ORDINALITY AS u(x, n)), ''::bytea) \
         FROM idempotency WHERE key = ANY($1)";
    verify(tx, "idempotency records", select, &[&keys], &expected).await
}

/// Next delivery ids (never lowered) and quota counters recomputed from the entries; then
/// the body id sequence moved past every stored body id.
pub(super) async fn mailboxes(
    tx: &Transaction<'_>,
    records: &[MailboxRecord],
) -> Result<u64, ImportError> {
    let devices: Vec<&[u8]> = records.iter().map(|r| &r.device.as_bytes()[..]).collect();
    let next: Vec<i64> = records.iter().map(|r| to_i64(r.next_delivery)).collect();
    let updated = execute(
        tx,
        "UPDATE mailboxes m SET \
           next_delivery = greatest(m.next_delivery, r.next, COALESCE(c.last + 1, 1)), \
           entries = COALESCE(c.n, 0), charged_bytes = COALESCE(c.bytes, 0) \
         FROM unnest($1::bytea[], $2::int8[]) AS r(device_id, next) \
         LEFT JOIN (SELECT e.device_id, max(e.delivery_id) AS last, count(*) AS n, \
                      sum(octet_length(b.body) + COALESCE(octet_length(e.part), 0))::int8 \
                        AS bytes \
                    FROM entries e JOIN bodies b ON b.body_id = e.body_id \
                    WHERE e.device_id = ANY($1) GROUP BY e.device_id) c \
              ON c.device_id = r.device_id \
         WHERE m.device_id = r.device_id",
        &[&devices, &next],
    )
    .await?;
    execute(
        tx,
        "SELECT setval(s, greatest(m, 1, COALESCE(pg_sequence_last_value(s::regclass), 0))) \
         FROM (SELECT pg_get_serial_sequence('bodies', 'body_id') AS s, \
                      (SELECT max(body_id) FROM bodies) AS m) x \
         WHERE m IS NOT NULL",
        &[],
    )
    .await?;
    Ok(updated)
}
