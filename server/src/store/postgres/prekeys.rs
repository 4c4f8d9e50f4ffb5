//! Prekeys: publish, take for a bundle, count.
//!
//! A one-time prekey is taken with `DELETE … WHERE key_id = (SELECT … ORDER BY key_id LIMIT 1
//! FOR UPDATE SKIP LOCKED) RETURNING prekey`: the row lock gives each key to exactly one
//! transaction on any node, and concurrent takers skip keys another taker holds instead of
//! queueing behind it. (A taker that then rolls back leaves its key for later takers; one that
//! raced it may meanwhile have fallen back to the last-resort key: safe, just not optimal.)

use deadpool_postgres::{GenericClient, Transaction};
use kith_protocol::{DeviceId, KemPrekey, OneTimePrekey, SignedPrekey};
use serde::de::DeserializeOwned;

use super::Failure;
use super::codec::{column, decode, encode, execute, query_opt};
use crate::store::{BundleMaterial, PrekeyCounts, Prekeys, StoreError};

/// Stores a device's prekeys; a duplicate id (stored or within the upload) fails the
/// transaction on the primary key ([`StoreError::DuplicatePrekey`]).
pub(super) async fn publish(
    tx: &Transaction<'_>,
    device: &DeviceId,
    prekeys: &Prekeys,
) -> Result<(), Failure> {
    require_device(tx, device).await?;
    let id = &device.as_bytes()[..];
    let one_time = batch(&prekeys.one_time, OneTimePrekey::id)?;
    let one_time_kem = batch(&prekeys.one_time_kem, KemPrekey::id)?;
    insert_batch(tx, "one_time_prekeys", id, one_time).await?;
    insert_batch(tx, "one_time_kem_prekeys", id, one_time_kem).await?;
    if let Some(signed) = &prekeys.signed {
        replace(tx, "signed_prekeys", id, encode(signed)?).await?;
    }
    if let Some(last_resort) = &prekeys.last_resort_kem {
        replace(tx, "last_resort_kem_prekeys", id, encode(last_resort)?).await?;
    }
    Ok(())
}

/// Ids and encodings of a batch of one-time prekeys.
fn batch<T: serde::Serialize>(
    prekeys: &[T],
    id: fn(&T) -> u32,
) -> Result<(Vec<i64>, Vec<Vec<u8>>), StoreError> {
    let ids = prekeys.iter().map(|p| i64::from(id(p))).collect();
    let encoded = prekeys.iter().map(encode).collect::<Result<_, _>>()?;
    Ok((ids, encoded))
}

async fn insert_batch(
    tx: &Transaction<'_>,
    table: &str,
    device: &[u8],
    (ids, encoded): (Vec<i64>, Vec<Vec<u8>>),
) -> Result<(), Failure> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} (device_id, key_id, prekey) \
         SELECT $1, k.id, k.prekey FROM unnest($2::int8[], $3::bytea[]) AS k(id, prekey)"
    );
    execute(tx, &sql, &[&device, &ids, &encoded]).await?;
    Ok(())
}

async fn replace(
    tx: &Transaction<'_>,
    table: &str,
    device: &[u8],
    encoded: Vec<u8>,
) -> Result<(), Failure> {
    let sql = format!(
        "INSERT INTO {table} (device_id, prekey) VALUES ($1, $2) \
         ON CONFLICT (device_id) DO UPDATE SET prekey = EXCLUDED.prekey"
    );
    execute(tx, &sql, &[&device, &encoded]).await?;
    Ok(())
}

/// Takes the material for one bundle, removing the one-time keys it hands out.
pub(super) async fn take(
    tx: &Transaction<'_>,
    device: &DeviceId,
) -> Result<BundleMaterial, Failure> {
    let id = &device.as_bytes()[..];
    let row = query_opt(
        tx,
        "SELECT (SELECT prekey FROM signed_prekeys WHERE device_id = $1), \
                (SELECT prekey FROM last_resort_kem_prekeys WHERE device_id = $1) \
         FROM devices WHERE device_id = $1",
        &[&id],
    )
    .await?
    .ok_or(StoreError::DeviceNotFound)?;
    let signed: Option<&[u8]> = column(&row, 0, "signed prekey")?;
    let last_resort: Option<&[u8]> = column(&row, 1, "kem prekey")?;
    let (Some(signed), Some(last_resort)) = (signed, last_resort) else {
        return Err(StoreError::PrekeysMissing.into());
    };
    let signed: SignedPrekey = decode(signed, "signed prekey")?;
    let last_resort: KemPrekey = decode(last_resort, "kem prekey")?;
    let one_time: Option<OneTimePrekey> =
        take_first(tx, "one_time_prekeys", id, "one-time prekey").await?;
    let one_time_kem: Option<KemPrekey> =
        take_first(tx, "one_time_kem_prekeys", id, "one-time kem prekey").await?;
    Ok(BundleMaterial {
        signed,
        one_time,
        kem: one_time_kem.unwrap_or(last_resort),
    })
}

/// Deletes and returns the lowest-id one-time prekey no other transaction holds.
async fn take_first<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &str,
    device: &[u8],
    what: &'static str,
) -> Result<Option<T>, Failure> {
    let sql = format!(
        "DELETE FROM {table} WHERE device_id = $1 AND key_id = \
           (SELECT key_id FROM {table} WHERE device_id = $1 \
            ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING prekey"
    );
    let Some(row) = query_opt(tx, &sql, &[&device]).await? else {
        return Ok(None);
    };
    let bytes: &[u8] = column(&row, 0, what)?;
    Ok(Some(decode(bytes, what)?))
}

/// Counts a device's prekeys (one statement, one snapshot).
pub(super) async fn counts<C: GenericClient>(
    client: &C,
    device: &DeviceId,
) -> Result<PrekeyCounts, Failure> {
    let row = query_opt(
        client,
        "SELECT EXISTS (SELECT 1 FROM signed_prekeys WHERE device_id = $1), \
                EXISTS (SELECT 1 FROM last_resort_kem_prekeys WHERE device_id = $1), \
                (SELECT count(*) FROM one_time_prekeys WHERE device_id = $1), \
                (SELECT count(*) FROM one_time_kem_prekeys WHERE device_id = $1) \
         FROM devices WHERE device_id = $1",
        &[&&device.as_bytes()[..]],
    )
    .await?
    .ok_or(StoreError::DeviceNotFound)?;
    let count = |index| -> Result<u32, StoreError> {
        let n: i64 = column(&row, index, "prekey count")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(PrekeyCounts {
        signed: column(&row, 0, "prekey count")?,
        last_resort_kem: column(&row, 1, "prekey count")?,
        one_time: count(2)?,
        one_time_kem: count(3)?,
    })
}

/// Fails with [`StoreError::DeviceNotFound`] for an unknown device.
async fn require_device(tx: &Transaction<'_>, device: &DeviceId) -> Result<(), Failure> {
    let found = query_opt(
        tx,
        "SELECT 1 FROM devices WHERE device_id = $1",
        &[&&device.as_bytes()[..]],
    )
    .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::DeviceNotFound.into()),
    }
}
