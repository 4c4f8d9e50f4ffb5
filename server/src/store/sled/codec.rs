//! Keys and values of the sled trees.
//!
//! Values are postcard-encoded records, decoded strictly (no trailing bytes) and never with a
//! panic: anything undecodable is [`StoreError::Corrupt`] naming the record kind. Keys are fixed
//! layouts of big-endian integers and raw ids, so sled's byte order is the order we want
//! (a device's entries by delivery id; the expiry index by time).

use kith_protocol::{AccountPublicKey, DeviceCertificate, DeviceId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{DeliveryId, StoreError};

/// The layout version of the trees below, stored under [`SCHEMA_KEY`] in the `meta` tree.
pub(super) const SCHEMA_VERSION: u32 = 1;
/// Key of the schema version in the `meta` tree.
pub(super) const SCHEMA_KEY: &[u8] = b"schema";

/// `accounts`: account key → this.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AccountValue {
    pub(super) handle: String,
    pub(super) devices: Vec<DeviceId>,
    pub(super) created_at: u64,
}

/// `devices`: device id → this.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DeviceValue {
    pub(super) account_key: AccountPublicKey,
    pub(super) certificate: DeviceCertificate,
    pub(super) added_at: u64,
}

/// `invites`: token hash → this.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct InviteValue {
    pub(super) uses_left: u32,
    pub(super) expires_at: u64,
}

/// `mailboxes`: device id → this. Counters kept in step with `entries` so that quota checks
/// need no scan (sled transactions cannot scan).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct MailboxValue {
    /// The next delivery id to assign (ids start at 1).
    pub(super) next_delivery: DeliveryId,
    /// Entries queued.
    pub(super) entries: u64,
    /// Bytes charged to the quota: body + part per entry.
    pub(super) charged_bytes: u64,
    /// Bytes of this device's parts (for [`QueueStats`](crate::store::QueueStats)).
    pub(super) part_bytes: u64,
}

/// `entries`: device id ‖ delivery id → this. No sender, by design.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EntryValue {
    pub(super) body: u64,
    pub(super) part: Option<Vec<u8>>,
    pub(super) arrived_at: u64,
    pub(super) expires_at: u64,
}

/// `body_refs`: body id → this. Kept apart from the body so an ack rewrites a few bytes, not
/// the body.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BodyRefValue {
    pub(super) refs: u64,
    pub(super) len: u64,
}

/// `idempotency`: idempotency key → this.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct IdempotencyValue {
    pub(super) deliveries: Vec<DeliveryId>,
    pub(super) expires_at: u64,
}

/// Encodes a record.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|_| StoreError::Backend("record encoding failed".into()))
}

/// Decodes a record strictly; `what` names the record kind in the error.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(StoreError::Corrupt(what)),
    }
}

/// `entries` key: device id ‖ delivery id (big-endian).
pub(super) fn entry_key(device: &DeviceId, delivery: DeliveryId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(device.as_bytes());
    key[16..].copy_from_slice(&delivery.to_be_bytes());
    key
}

/// Prekey tree key: device id ‖ prekey id (big-endian).
pub(super) fn prekey_key(device: &DeviceId, id: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(device.as_bytes());
    key[16..].copy_from_slice(&id.to_be_bytes());
    key
}

/// What an `expiry` index key points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiring {
    /// A mailbox entry.
    Entry(DeviceId, DeliveryId),
    /// An idempotency record.
    Idempotency([u8; 32]),
    /// An invite.
    Invite([u8; 32]),
}

const TAG_ENTRY: u8 = 0;
const TAG_IDEMPOTENCY: u8 = 1;
const TAG_INVITE: u8 = 2;

/// `expiry` key: expires_at (big-endian) ‖ tag ‖ id. Sorted by time, so expiring is a range
/// scan from the start.
pub(super) fn expiry_key(expires_at: u64, what: Expiring) -> Vec<u8> {
    let mut key = expires_at.to_be_bytes().to_vec();
    match what {
        Expiring::Entry(device, delivery) => {
            key.push(TAG_ENTRY);
            key.extend_from_slice(&entry_key(&device, delivery));
        }
        Expiring::Idempotency(hash) => {
            key.push(TAG_IDEMPOTENCY);
            key.extend_from_slice(&hash);
        }
        Expiring::Invite(hash) => {
            key.push(TAG_INVITE);
            key.extend_from_slice(&hash);
        }
    }
    key
}

/// The exclusive upper bound of all expiry keys with `expires_at <= now`.
pub(super) fn expiry_bound(now: u64) -> [u8; 9] {
    let mut key = [0xFF; 9];
    key[..8].copy_from_slice(&now.to_be_bytes());
    key
}

/// Parses an `expiry` key.
pub(super) fn parse_expiry_key(key: &[u8]) -> Result<Expiring, StoreError> {
    let corrupt = || StoreError::Corrupt("expiry index key");
    let (tag, rest) = key
        .get(8..)
        .and_then(|r| r.split_first())
        .ok_or_else(corrupt)?;
    match *tag {
        TAG_ENTRY => {
            let (device, delivery) = parse_entry_key(rest).ok_or_else(corrupt)?;
            Ok(Expiring::Entry(device, delivery))
        }
        TAG_IDEMPOTENCY => Ok(Expiring::Idempotency(
            rest.try_into().map_err(|_| corrupt())?,
        )),
        TAG_INVITE => Ok(Expiring::Invite(rest.try_into().map_err(|_| corrupt())?)),
        _ => Err(corrupt()),
    }
}

/// Splits an `entries` key into device id and delivery id.
pub(super) fn parse_entry_key(key: &[u8]) -> Option<(DeviceId, DeliveryId)> {
    let device: [u8; 16] = key.get(..16)?.try_into().ok()?;
    let delivery: [u8; 8] = key.get(16..)?.try_into().ok()?;
    Some((DeviceId::from_bytes(device), u64::from_be_bytes(delivery)))
}

/// A body id as a key.
pub(super) fn body_key(body: u64) -> [u8; 8] {
    body.to_be_bytes()
}
