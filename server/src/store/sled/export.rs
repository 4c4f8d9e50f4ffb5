//! Reading a whole store out, record by record, for `kith-relay migrate`.
//!
//! Each kind is a lazy iterator over its tree, so a large store is copied without holding it
//! in memory. The store must not change while it is read: the relay is stopped (the directory
//! lock proves it), so the trees are a consistent snapshot.

use ::sled::{IVec, Tree};
use kith_protocol::{AccountPublicKey, DeviceId, KemPrekey, OneTimePrekey};
use serde::de::DeserializeOwned;

use super::codec::{
    AccountValue, BodyRefValue, EntryValue, IdempotencyValue, InviteValue, MailboxValue, decode,
    parse_entry_key,
};
use super::mailbox::len_u64;
use super::{SledStore, Trees, backend};
use crate::store::{
    Account, AccountRecord, BodyRecord, DevicePrekeys, EntryRecord, IdempotencyKey,
    IdempotencyRecord, InviteRecord, InviteTokenHash, MailboxRecord, Prekeys, SnapshotCounts,
    StoreError,
};

/// `meta` key of this store's export id (see [`SledStore::export_id`]).
const EXPORT_ID_KEY: &[u8] = b"export_id";

/// A lazy sequence of exported records.
pub type Records<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + 'a>;

impl SledStore {
    /// A random id naming this store as the source of a copy, created (and flushed) the first
    /// time it is asked for. A target remembers the sources it copied completely, so copying
    /// the same store again is recognised.
    pub fn export_id(&self) -> Result<[u8; 16], StoreError> {
        let meta = &self.trees.meta;
        if let Some(found) = meta.get(EXPORT_ID_KEY).map_err(backend)? {
            return <[u8; 16]>::try_from(found.as_ref()).map_err(|_| StoreError::Corrupt("meta"));
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|_| StoreError::Backend("the OS random source failed".into()))?;
        meta.insert(EXPORT_ID_KEY, &id[..]).map_err(backend)?;
        self.trees.db.flush().map_err(backend)?;
        Ok(id)
    }

    /// How many records of each kind the store holds (counted tree by tree).
    pub fn snapshot_counts(&self) -> Result<SnapshotCounts, StoreError> {
        let t = &self.trees;
        let len = |tree: &Tree| len_u64(tree.len());
        Ok(SnapshotCounts {
            accounts: len(&t.accounts),
            devices: len(&t.devices),
            signed_prekeys: len(&t.signed_prekeys),
            last_resort_kem_prekeys: len(&t.last_resort_kem),
            one_time_prekeys: len(&t.one_time_prekeys),
            one_time_kem_prekeys: len(&t.one_time_kem_prekeys),
            bodies: len(&t.bodies),
            entries: len(&t.entries),
            invites: len(&t.invites),
            idempotency_keys: len(&t.idempotency),
        })
    }

    /// Every account with its devices, in the order added.
    pub fn export_accounts(&self) -> Records<'_, AccountRecord> {
        let trees = &self.trees;
        records(&trees.accounts, move |key, value| {
            trees.account_record(key, value)
        })
    }

    /// Every device's prekeys (devices without any are skipped).
    pub fn export_prekeys(&self) -> Records<'_, DevicePrekeys> {
        let trees = &self.trees;
        let all = records(&trees.devices, move |key, _| trees.device_prekeys(key));
        Box::new(all.filter(|r| !matches!(r, Ok(p) if is_empty(&p.prekeys))))
    }

    /// Every body with its id and reference count.
    pub fn export_bodies(&self) -> Records<'_, BodyRecord> {
        let trees = &self.trees;
        records(&trees.bodies, move |key, body| {
            let id = u64::from_be_bytes(fixed(key, "body id")?);
            let refs = trees.body_refs.get(key).map_err(backend)?;
            let refs = refs.ok_or(StoreError::Corrupt("body without reference count"))?;
            let refs: BodyRefValue = decode(&refs, "body reference")?;
            Ok(BodyRecord {
                id,
                refs: refs.refs,
                body: body.to_vec(),
            })
        })
    }

    /// Every mailbox entry, by device and delivery id.
    pub fn export_entries(&self) -> Records<'_, EntryRecord> {
        records(&self.trees.entries, |key, value| {
            let (device, delivery_id) =
                parse_entry_key(key).ok_or(StoreError::Corrupt("entry key"))?;
            let entry: EntryValue = decode(value, "mailbox entry")?;
            Ok(EntryRecord {
                device,
                delivery_id,
                body: entry.body,
                part: entry.part,
                arrived_at: entry.arrived_at,
                expires_at: entry.expires_at,
            })
        })
    }

    /// Every mailbox's next delivery id.
    pub fn export_mailboxes(&self) -> Records<'_, MailboxRecord> {
        records(&self.trees.mailboxes, |key, value| {
            let mailbox: MailboxValue = decode(value, "mailbox")?;
            Ok(MailboxRecord {
                device: DeviceId::from_bytes(fixed(key, "mailbox key")?),
                next_delivery: mailbox.next_delivery.max(1),
            })
        })
    }

    /// Every invite.
    pub fn export_invites(&self) -> Records<'_, InviteRecord> {
        records(&self.trees.invites, |key, value| {
            let invite: InviteValue = decode(value, "invite")?;
            Ok(InviteRecord {
                token: InviteTokenHash(fixed(key, "invite key")?),
                uses_left: invite.uses_left,
                expires_at: invite.expires_at,
            })
        })
    }

    /// Every idempotency record.
    pub fn export_idempotency(&self) -> Records<'_, IdempotencyRecord> {
        records(&self.trees.idempotency, |key, value| {
            let record: IdempotencyValue = decode(value, "idempotency")?;
            Ok(IdempotencyRecord {
                key: IdempotencyKey(fixed(key, "idempotency key")?),
                deliveries: record.deliveries,
                expires_at: record.expires_at,
            })
        })
    }
}

impl Trees {
    /// An `accounts` record with its devices.
    fn account_record(&self, key: &[u8], value: &[u8]) -> Result<AccountRecord, StoreError> {
        let account_key = AccountPublicKey::from_bytes(fixed(key, "account key")?);
        let value: AccountValue = decode(value, "account")?;
        let devices = self.devices_of(&account_key)?;
        Ok(AccountRecord {
            account: Account {
                account_key,
                handle: value.handle,
                devices: value.devices,
                created_at: value.created_at,
            },
            devices,
        })
    }

    /// Everything stored for one device in the four prekey trees.
    fn device_prekeys(&self, key: &[u8]) -> Result<DevicePrekeys, StoreError> {
        let device = DeviceId::from_bytes(fixed(key, "device key")?);
        Ok(DevicePrekeys {
            device,
            prekeys: Prekeys {
                signed: at(&self.signed_prekeys, &device, "signed prekey")?,
                last_resort_kem: at(&self.last_resort_kem, &device, "kem prekey")?,
                one_time: under::<OneTimePrekey>(&self.one_time_prekeys, &device, "prekey")?,
                one_time_kem: under::<KemPrekey>(&self.one_time_kem_prekeys, &device, "prekey")?,
            },
        })
    }
}

/// Maps every (key, value) of `tree` through `f`.
fn records<'a, T: 'a>(
    tree: &Tree,
    f: impl Fn(&[u8], &[u8]) -> Result<T, StoreError> + 'a,
) -> Records<'a, T> {
    Box::new(tree.iter().map(move |item: Result<(IVec, IVec), _>| {
        let (key, value) = item.map_err(backend)?;
        f(&key, &value)
    }))
}

/// The decoded value under a device id.
fn at<T: DeserializeOwned>(
    tree: &Tree,
    device: &DeviceId,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    let bytes = tree.get(device.as_bytes()).map_err(backend)?;
    bytes.map(|b| decode(&b, what)).transpose()
}

/// The decoded values under a device's prefix, in id order.
fn under<T: DeserializeOwned>(
    tree: &Tree,
    device: &DeviceId,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    tree.scan_prefix(device.as_bytes())
        .values()
        .map(|v| decode(&v.map_err(backend)?, what))
        .collect()
}

/// A key of a fixed length.
fn fixed<const N: usize>(key: &[u8], what: &'static str) -> Result<[u8; N], StoreError> {
    key.try_into().map_err(|_| StoreError::Corrupt(what))
}

fn is_empty(prekeys: &Prekeys) -> bool {
    prekeys.signed.is_none()
        && prekeys.last_resort_kem.is_none()
        && prekeys.one_time.is_empty()
        && prekeys.one_time_kem.is_empty()
}
