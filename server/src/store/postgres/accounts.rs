//! Accounts, devices and invites.
//!
//! Account creation runs in one transaction with the invite's use: the invite row is updated
//! (and so locked) first, so concurrent registrations on any node queue behind it, and any later
//! failure rolls the use back. Uniqueness is the database's: a race that slips past the explicit
//! checks hits a unique constraint, mapped to the same errors (`super::unique_violation`).

use deadpool_postgres::{GenericClient, Transaction};
use kith_protocol::consts::MAX_DEVICES_PER_ACCOUNT;
use kith_protocol::{AccountPublicKey, DeviceCertificate, DeviceId, VerifiedCertificate};
use tokio_postgres::Row;

use super::Failure;
use super::codec::{
    account_key, column, device_id, execute, len_i64, query, query_one, query_opt, to_i64, to_u64,
};
use crate::store::{Account, DeviceRecord, InviteTokenHash, NewAccount, StoreError};

/// Creates the account and its first device (and mailbox), using up the invite.
pub(super) async fn create_account(
    tx: &Transaction<'_>,
    new: &NewAccount,
) -> Result<Account, Failure> {
    if let Some(invite) = &new.invite {
        use_invite(tx, invite, new.now).await?;
    }
    let key = new.certificate.account_key();
    let device = new.certificate.device_id();
    let row = query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE handle = $1), \
                    EXISTS (SELECT 1 FROM accounts WHERE account_key = $2), \
                    EXISTS (SELECT 1 FROM devices WHERE device_id = $3)",
        &[&new.handle, &&key.as_bytes()[..], &&device.as_bytes()[..]],
    )
    .await?;
    if column(&row, 0, "exists")? {
        return Err(StoreError::HandleTaken.into());
    }
    if column(&row, 1, "exists")? {
        return Err(StoreError::AccountExists.into());
    }
    if column(&row, 2, "exists")? {
        return Err(StoreError::DeviceExists.into());
    }
    execute(
        tx,
        "INSERT INTO accounts (account_key, handle, created_at) VALUES ($1, $2, $3)",
        &[&&key.as_bytes()[..], &new.handle, &to_i64(new.now)],
    )
    .await?;
    insert_device(tx, &new.certificate, new.now).await?;
    Ok(Account {
        account_key: *key,
        handle: new.handle.clone(),
        devices: vec![device],
        created_at: new.now,
    })
}

/// Uses up one use of an invite; the last use deletes it.
async fn use_invite(
    tx: &Transaction<'_>,
    token: &InviteTokenHash,
    now: u64,
) -> Result<(), Failure> {
    let row = query_opt(
        tx,
        "UPDATE invites SET uses_left = uses_left - 1 \
         WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2 RETURNING uses_left",
        &[&&token.0[..], &to_i64(now)],
    )
    .await?;
    let Some(row) = row else {
        return Err(StoreError::InviteInvalid.into());
    };
    let left: i64 = column(&row, 0, "invite")?;
    if left == 0 {
        execute(
            tx,
            "DELETE FROM invites WHERE token_hash = $1",
            &[&&token.0[..]],
        )
        .await?;
    }
    Ok(())
}

/// Inserts a device and its (empty) mailbox.
async fn insert_device(
    tx: &Transaction<'_>,
    certificate: &VerifiedCertificate,
    added_at: u64,
) -> Result<(), Failure> {
    let device = certificate.device_id();
    let bytes = certificate.certificate().to_bytes();
    execute(
        tx,
        "INSERT INTO devices (device_id, account_key, certificate, added_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            &&device.as_bytes()[..],
            &&certificate.account_key().as_bytes()[..],
            &bytes,
            &to_i64(added_at),
        ],
    )
    .await?;
    execute(
        tx,
        "INSERT INTO mailboxes (device_id) VALUES ($1)",
        &[&&device.as_bytes()[..]],
    )
    .await?;
    Ok(())
}

/// Adds a device to the account its certificate names. The account row is locked, so
/// concurrent additions count devices one after the other.
pub(super) async fn add_device(
    tx: &Transaction<'_>,
    certificate: &VerifiedCertificate,
    added_at: u64,
) -> Result<Account, Failure> {
    let key = certificate.account_key();
    let locked = query_opt(
        tx,
        "SELECT 1 FROM accounts WHERE account_key = $1 FOR NO KEY UPDATE",
        &[&&key.as_bytes()[..]],
    )
    .await?;
    if locked.is_none() {
        return Err(StoreError::AccountNotFound.into());
    }
    let row = query_one(
        tx,
        "SELECT (SELECT count(*) FROM devices WHERE account_key = $1), \
                    EXISTS (SELECT 1 FROM devices WHERE device_id = $2)",
        &[
            &&key.as_bytes()[..],
            &&certificate.device_id().as_bytes()[..],
        ],
    )
    .await?;
    let count: i64 = column(&row, 0, "device count")?;
    if count >= len_i64(MAX_DEVICES_PER_ACCOUNT) {
        return Err(StoreError::TooManyDevices.into());
    }
    if column(&row, 1, "exists")? {
        return Err(StoreError::DeviceExists.into());
    }
    insert_device(tx, certificate, added_at).await?;
    let account = account_by_key(tx, key).await?;
    Ok(account.ok_or(StoreError::Corrupt("account"))?)
}

/// One statement (one snapshot): the account with its devices in the order added.
const ACCOUNT_SELECT: &str = "SELECT a.account_key, a.handle, a.created_at, \
       COALESCE(array_agg(d.device_id ORDER BY d.position) \
                FILTER (WHERE d.device_id IS NOT NULL), '{}') \
     FROM accounts a LEFT JOIN devices d ON d.account_key = a.account_key";

/// The account with this key.
pub(super) async fn account_by_key<C: GenericClient>(
    client: &C,
    key: &AccountPublicKey,
) -> Result<Option<Account>, Failure> {
    let sql = format!("{ACCOUNT_SELECT} WHERE a.account_key = $1 GROUP BY a.account_key");
    let row = query_opt(client, &sql, &[&&key.as_bytes()[..]]).await?;
    Ok(row.as_ref().map(to_account).transpose()?)
}

/// The account with this handle.
pub(super) async fn account_by_handle<C: GenericClient>(
    client: &C,
    handle: &str,
) -> Result<Option<Account>, Failure> {
    let sql = format!("{ACCOUNT_SELECT} WHERE a.handle = $1 GROUP BY a.account_key");
    let row = query_opt(client, &sql, &[&handle]).await?;
    Ok(row.as_ref().map(to_account).transpose()?)
}

fn to_account(row: &Row) -> Result<Account, StoreError> {
    let key: &[u8] = column(row, 0, "account")?;
    let devices: Vec<&[u8]> = column(row, 3, "account devices")?;
    Ok(Account {
        account_key: account_key(key)?,
        handle: column(row, 1, "account")?,
        created_at: to_u64(column(row, 2, "account")?, "account")?,
        devices: devices
            .into_iter()
            .map(device_id)
            .collect::<Result<_, _>>()?,
    })
}

/// The device with this id.
pub(super) async fn device<C: GenericClient>(
    client: &C,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>, Failure> {
    let row = query_opt(
        client,
        "SELECT account_key, certificate, added_at FROM devices WHERE device_id = $1",
        &[&&device.as_bytes()[..]],
    )
    .await?;
    Ok(row.as_ref().map(to_device).transpose()?)
}

/// The devices of an account, in the order added.
pub(super) async fn devices_of<C: GenericClient>(
    client: &C,
    key: &AccountPublicKey,
) -> Result<Vec<DeviceRecord>, Failure> {
    let rows = query(
        client,
        "SELECT d.account_key, d.certificate, d.added_at \
         FROM accounts a LEFT JOIN devices d ON d.account_key = a.account_key \
         WHERE a.account_key = $1 ORDER BY d.position",
        &[&&key.as_bytes()[..]],
    )
    .await?;
    if rows.is_empty() {
        return Err(StoreError::AccountNotFound.into());
    }
    // An account always has a device; a lone row of NULLs would be corrupt (and fails below).
    Ok(rows.iter().map(to_device).collect::<Result<_, _>>()?)
}

fn to_device(row: &Row) -> Result<DeviceRecord, StoreError> {
    let key: &[u8] = column(row, 0, "device")?;
    let certificate: &[u8] = column(row, 1, "device")?;
    Ok(DeviceRecord {
        account_key: account_key(key)?,
        certificate: DeviceCertificate::from_bytes(certificate)
            .map_err(|_| StoreError::Corrupt("device certificate"))?,
        added_at: to_u64(column(row, 2, "device")?, "device")?,
    })
}

/// Records (or replaces) an invite.
pub(super) async fn create_invite<C: GenericClient>(
    client: &C,
    token: &InviteTokenHash,
    uses: u32,
    expires_at: u64,
) -> Result<(), Failure> {
    execute(
        client,
        "INSERT INTO invites (token_hash, uses_left, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (token_hash) DO UPDATE \
         SET uses_left = EXCLUDED.uses_left, expires_at = EXCLUDED.expires_at",
        &[&&token.0[..], &i64::from(uses), &to_i64(expires_at)],
    )
    .await?;
    Ok(())
}
