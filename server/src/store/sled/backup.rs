//! Raw tree access for `kith-relay backup` and `restore` (the file format is in
//! `crate::backup`).
//!
//! ## What is copied
//!
//! The primary trees, key and value as stored, in [`BACKUP_TREES`] order. Not copied:
//!
//! - `one_time_prekeys`, `one_time_kem_prekeys`: a one-time prekey handed out after the backup
//!   was taken would be handed out a second time after a restore. Without them, a restored
//!   relay hands out the signed and last-resort prekeys and tells each device to upload fresh
//!   one-time prekeys when it next connects.
//! - `body_refs`, `expiry` and the counters in `mailboxes`: derived from the others, rebuilt by
//!   [`SledStore::finish_restore`].
//! - `meta`: the schema version travels in the backup's header; the export id names the
//!   original store for `kith-relay migrate`, not its copy.
//!
//! ## Consistency while the relay runs
//!
//! The trees are read one after the other while the relay keeps writing, so they are not a
//! single instant. The order makes every difference one [`SledStore::finish_restore`] can
//! resolve towards the state at the start of the backup: parents are read before children
//! (accounts, then handles and devices, then their prekeys and entries; entries before
//! bodies and mailboxes), so a record whose parent is missing was written after the backup
//! started and is dropped, and an entry whose body is missing was acknowledged meanwhile and
//! is dropped too. A mailbox's next delivery id is raised above its highest entry, so ids
//! are never reused.

use std::collections::{BTreeMap, BTreeSet};

use ::sled::{IVec, Tree};

use super::codec::{
    AccountValue, BodyRefValue, DeviceValue, EntryValue, Expiring, IdempotencyValue, InviteValue,
    MailboxValue, SCHEMA_VERSION, body_key, decode, encode, expiry_key, parse_entry_key,
};
use super::export::Records;
use super::mailbox::len_u64;
use super::{SledStore, Trees, backend};
use crate::store::StoreError;

/// A raw (key, value) of a tree.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// The trees a backup holds, in the order they are read and written.
const BACKUP_TREES: [&str; 10] = [
    "accounts",
    "handles",
    "devices",
    "signed_prekeys",
    "last_resort_kem",
    "invites",
    "idempotency",
    "entries",
    "bodies",
    "mailboxes",
];

impl SledStore {
    /// The layout version of the trees [`backup_records`](Self::backup_records) returns; a
    /// restore needs the same version.
    pub fn backup_schema_version() -> u32 {
        SCHEMA_VERSION
    }

    /// The names of the trees a backup holds, in the order to read them (see the module docs).
    pub fn backup_trees() -> &'static [&'static str] {
        &BACKUP_TREES
    }

    /// Every (key, value) of one backed-up tree, lazily, as stored.
    pub fn backup_records(&self, tree: &str) -> Result<Records<'_, KeyValue>, StoreError> {
        let tree = self.trees.backup_tree(tree)?;
        Ok(Box::new(tree.iter().map(
            |item: Result<(IVec, IVec), _>| {
                let (key, value) = item.map_err(backend)?;
                Ok((key.to_vec(), value.to_vec()))
            },
        )))
    }

    /// Whether the store holds nothing a restore could overwrite: no account, device,
    /// invite or mailbox entry.
    pub fn is_empty_for_restore(&self) -> bool {
        let t = &self.trees;
        [&t.accounts, &t.devices, &t.invites, &t.entries, &t.bodies]
            .iter()
            .all(|tree| tree.is_empty())
    }

    /// Writes one record of a backup into its tree (a new, empty store; nothing is flushed
    /// until [`finish_restore`](Self::finish_restore)).
    pub fn restore_record(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.check_open()?;
        self.trees
            .backup_tree(tree)?
            .insert(key, value)
            .map_err(backend)?;
        Ok(())
    }

    /// After the last [`restore_record`](Self::restore_record): drops what the backup caught
    /// half-written (see the module docs), rebuilds the derived trees and counters, and
    /// flushes. Returns how many records of each kind were dropped.
    pub fn finish_restore(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        self.check_open()?;
        let t = &self.trees;
        let mut dropped = Vec::new();
        let devices = t.restore_devices(&mut dropped)?;
        for (name, tree) in [
            ("signed prekeys", &t.signed_prekeys),
            ("last-resort KEM prekeys", &t.last_resort_kem),
        ] {
            let n = retain(tree, |key, _| {
                Ok(<[u8; 16]>::try_from(key).is_ok_and(|id| devices.contains(&id)))
            })?;
            dropped.push((name, n));
        }
        let mailboxes = t.restore_entries(&devices, &mut dropped)?;
        t.restore_mailboxes(&devices, mailboxes)?;
        t.advance_body_ids()?;
        t.restore_expiry_index()?;
        t.db.flush().map_err(backend)?;
        dropped.retain(|(_, n)| *n > 0);
        Ok(dropped)
    }
}

/// What the restored entries add up to for one device's mailbox.
#[derive(Default)]
struct MailboxTotals {
    highest: u64,
    entries: u64,
    charged_bytes: u64,
    part_bytes: u64,
}

impl Trees {
    fn backup_tree(&self, name: &str) -> Result<&Tree, StoreError> {
        Ok(match name {
            "accounts" => &self.accounts,
            "handles" => &self.handles,
            "devices" => &self.devices,
            "signed_prekeys" => &self.signed_prekeys,
            "last_resort_kem" => &self.last_resort_kem,
            "invites" => &self.invites,
            "idempotency" => &self.idempotency,
            "entries" => &self.entries,
            "bodies" => &self.bodies,
            "mailboxes" => &self.mailboxes,
            _ => return Err(StoreError::Corrupt("backup: unknown tree")),
        })
    }

    /// Drops handles and devices of accounts the backup does not hold (or that do not list
    /// the device); returns the devices kept.
    fn restore_devices(
        &self,
        dropped: &mut Vec<(&'static str, u64)>,
    ) -> Result<BTreeSet<[u8; 16]>, StoreError> {
        let mut listed = BTreeSet::new();
        for item in &self.accounts {
            let (_, value) = item.map_err(backend)?;
            let account: AccountValue = decode(&value, "account")?;
            listed.extend(account.devices.iter().map(|d| *d.as_bytes()));
        }
        let handles = retain(&self.handles, |_, account_key| {
            self.accounts.contains_key(account_key).map_err(backend)
        })?;
        dropped.push(("handles", handles));
        let devices = retain(&self.devices, |key, value| {
            let device: DeviceValue = decode(value, "device")?;
            let known = self
                .accounts
                .contains_key(device.account_key.as_bytes())
                .map_err(backend)?;
            Ok(known && <[u8; 16]>::try_from(key).is_ok_and(|id| listed.contains(&id)))
        })?;
        dropped.push(("devices", devices));
        let mut kept = BTreeSet::new();
        for key in self.devices.iter().keys() {
            let key = key.map_err(backend)?;
            if let Ok(id) = <[u8; 16]>::try_from(key.as_ref()) {
                kept.insert(id);
            }
        }
        Ok(kept)
    }

    /// Drops entries of unknown devices or without their body, and bodies no entry refers
    /// to; writes every body's reference count. Returns the totals per device.
    fn restore_entries(
        &self,
        devices: &BTreeSet<[u8; 16]>,
        dropped: &mut Vec<(&'static str, u64)>,
    ) -> Result<BTreeMap<[u8; 16], MailboxTotals>, StoreError> {
        let entries = retain(&self.entries, |key, value| {
            let (device, _) = parse_entry_key(key).ok_or(StoreError::Corrupt("entry key"))?;
            let entry: EntryValue = decode(value, "mailbox entry")?;
            let has_body = self
                .bodies
                .contains_key(body_key(entry.body))
                .map_err(backend)?;
            Ok(has_body && devices.contains(device.as_bytes()))
        })?;
        dropped.push(("mailbox entries", entries));
        let mut refs: BTreeMap<u64, u64> = BTreeMap::new();
        let mut totals: BTreeMap<[u8; 16], MailboxTotals> = BTreeMap::new();
        for item in &self.entries {
            let (key, value) = item.map_err(backend)?;
            let (device, id) = parse_entry_key(&key).ok_or(StoreError::Corrupt("entry key"))?;
            let entry: EntryValue = decode(&value, "mailbox entry")?;
            let body_len = self
                .bodies
                .get(body_key(entry.body))
                .map_err(backend)?
                .map_or(0, |b| len_u64(b.len()));
            let part_len = len_u64(entry.part.as_ref().map_or(0, Vec::len));
            *refs.entry(entry.body).or_default() += 1;
            let t = totals.entry(*device.as_bytes()).or_default();
            t.highest = t.highest.max(id);
            t.entries += 1;
            t.charged_bytes = t
                .charged_bytes
                .saturating_add(body_len.saturating_add(part_len));
            t.part_bytes = t.part_bytes.saturating_add(part_len);
        }
        let bodies = retain(&self.bodies, |key, _| {
            let id = <[u8; 8]>::try_from(key).map(u64::from_be_bytes);
            Ok(id.is_ok_and(|id| refs.contains_key(&id)))
        })?;
        dropped.push(("bodies", bodies));
        self.body_refs.clear().map_err(backend)?;
        for item in &self.bodies {
            let (key, body) = item.map_err(backend)?;
            let id = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("body id"))?;
            let value = BodyRefValue {
                refs: refs.get(&id).copied().unwrap_or(0),
                len: len_u64(body.len()),
            };
            self.body_refs
                .insert(key, encode(&value)?)
                .map_err(backend)?;
        }
        Ok(totals)
    }

    /// Rewrites every kept device's mailbox: counters from its entries, and a next delivery
    /// id above the highest entry.
    fn restore_mailboxes(
        &self,
        devices: &BTreeSet<[u8; 16]>,
        totals: BTreeMap<[u8; 16], MailboxTotals>,
    ) -> Result<(), StoreError> {
        let mut next = BTreeMap::new();
        for item in &self.mailboxes {
            let (key, value) = item.map_err(backend)?;
            let mailbox: MailboxValue = decode(&value, "mailbox")?;
            if let Ok(id) = <[u8; 16]>::try_from(key.as_ref()) {
                next.insert(id, mailbox.next_delivery);
            }
        }
        self.mailboxes.clear().map_err(backend)?;
        for device in devices {
            let t = totals.get(device);
            let stored = next.get(device).copied();
            if t.is_none() && stored.is_none() {
                continue;
            }
            let highest = t.map_or(0, |t| t.highest);
            let mailbox = MailboxValue {
                next_delivery: stored.unwrap_or(1).max(highest.saturating_add(1)).max(1),
                entries: t.map_or(0, |t| t.entries),
                charged_bytes: t.map_or(0, |t| t.charged_bytes),
                part_bytes: t.map_or(0, |t| t.part_bytes),
            };
            self.mailboxes
                .insert(&device[..], encode(&mailbox)?)
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Makes sled's id generator, which names new bodies, continue above the highest restored
    /// body id: a fresh database starts it at 0, and a new body must never overwrite a
    /// restored one. sled cannot be told a start value, so ids are drawn until past it (a few
    /// nanoseconds each; sled skips ahead by two million after every restart, so a relay
    /// restarted a thousand times costs a few seconds here).
    fn advance_body_ids(&self) -> Result<(), StoreError> {
        let highest = match self.bodies.last().map_err(backend)? {
            Some((key, _)) => <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("body id"))?,
            None => return Ok(()),
        };
        while self.db.generate_id().map_err(backend)? <= highest {}
        Ok(())
    }

    /// The `expiry` index from the entries, idempotency records and invites.
    fn restore_expiry_index(&self) -> Result<(), StoreError> {
        self.expiry.clear().map_err(backend)?;
        let mut index = Vec::new();
        for item in &self.entries {
            let (key, value) = item.map_err(backend)?;
            let (device, id) = parse_entry_key(&key).ok_or(StoreError::Corrupt("entry key"))?;
            let entry: EntryValue = decode(&value, "mailbox entry")?;
            index.push(expiry_key(entry.expires_at, Expiring::Entry(device, id)));
        }
        for item in &self.idempotency {
            let (key, value) = item.map_err(backend)?;
            let record: IdempotencyValue = decode(&value, "idempotency")?;
            let key = <[u8; 32]>::try_from(key.as_ref())
                .map_err(|_| StoreError::Corrupt("idempotency key"))?;
            index.push(expiry_key(record.expires_at, Expiring::Idempotency(key)));
        }
        for item in &self.invites {
            let (key, value) = item.map_err(backend)?;
            let invite: InviteValue = decode(&value, "invite")?;
            let key = <[u8; 32]>::try_from(key.as_ref())
                .map_err(|_| StoreError::Corrupt("invite key"))?;
            index.push(expiry_key(invite.expires_at, Expiring::Invite(key)));
        }
        for key in index {
            self.expiry.insert(key, &[][..]).map_err(backend)?;
        }
        Ok(())
    }
}

/// Removes every record of `tree` for which `keep` is false; returns how many.
fn retain(
    tree: &Tree,
    mut keep: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<u64, StoreError> {
    let mut doomed = Vec::new();
    for item in tree {
        let (key, value) = item.map_err(backend)?;
        if !keep(&key, &value)? {
            doomed.push(key);
        }
    }
    for key in &doomed {
        tree.remove(key).map_err(backend)?;
    }
    Ok(len_u64(doomed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{NOW, register, rng};
    use crate::store::{Enqueue, IdempotencyKey, MailboxLimits, Recipient, Store};

    fn open(dir: &tempfile::TempDir) -> SledStore {
        SledStore::open(dir.path(), crate::store::SledOptions::default()).unwrap()
    }

    fn send(key: u8, recipients: &[kith_protocol::DeviceId]) -> Enqueue {
        Enqueue {
            idempotency_key: IdempotencyKey([key; 32]),
            body: vec![key; 64],
            recipients: recipients
                .iter()
                .map(|d| Recipient {
                    device: *d,
                    part: Some(vec![key; 3]),
                })
                .collect(),
            arrived_at: NOW,
            expires_at: NOW + 100,
            idempotent_until: NOW + 50,
            limits: MailboxLimits {
                max_entries: 1000,
                max_bytes: 1 << 20,
            },
        }
    }

    /// Copies every backed-up tree of `from` into `to`, leaving out the records `skip` names.
    fn copy(from: &SledStore, to: &SledStore, skip: impl Fn(&str, &[u8]) -> bool) {
        for tree in SledStore::backup_trees() {
            for record in from.backup_records(tree).unwrap() {
                let (key, value) = record.unwrap();
                if !skip(tree, &key) {
                    to.restore_record(tree, &key, &value).unwrap();
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_matches_the_original_and_drops_what_was_half_written() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let original = open(&a);
        let mut rng = rng(7);
        let alice = register(&original, "alice", &mut rng).await;
        let bob = register(&original, "bob", &mut rng).await;
        original
            .publish_prekeys(bob.id(), bob.prekeys(1, 3, 2, &mut rng))
            .await
            .unwrap();
        original
            .enqueue(send(1, &[alice.id(), bob.id()]))
            .await
            .unwrap();
        original.enqueue(send(2, &[bob.id()])).await.unwrap();
        original.ack(bob.id(), &[1]).await.unwrap();

        // As if bob's second message was acknowledged between reading entries and bodies: its
        // body is missing from the copy.
        let restored = open(&b);
        assert!(restored.is_empty_for_restore());
        let body_two = original.trees.entries.iter().values().find_map(|v| {
            let entry: EntryValue = decode(&v.unwrap(), "entry").unwrap();
            (entry.body != 0 && original.list_body(entry.body) == vec![2; 64]).then_some(entry.body)
        });
        let body_two = body_key(body_two.unwrap());
        copy(&original, &restored, |tree, key| {
            tree == "bodies" && key == body_two
        });
        let dropped = restored.finish_restore().unwrap();
        assert_eq!(dropped, [("mailbox entries", 1)]);

        let stats = restored.stats().await.unwrap();
        assert_eq!(
            (stats.accounts, stats.devices, stats.queued_envelopes),
            (2, 2, 1)
        );
        let for_alice = restored.list(alice.id(), None, 10).await.unwrap();
        assert_eq!(for_alice.len(), 1);
        assert_eq!(for_alice[0].body, vec![1; 64]);
        assert!(restored.list(bob.id(), None, 10).await.unwrap().is_empty());
        let counts = restored.prekey_counts(bob.id()).await.unwrap();
        assert!(counts.signed && counts.last_resort_kem);
        assert_eq!(counts.one_time, 0, "one-time prekeys are not restored");
        // The next delivery id continues after the highest one ever assigned.
        let receipt = restored.enqueue(send(3, &[bob.id()])).await.unwrap();
        assert_eq!(receipt.deliveries, [3]);
        // Acknowledging and expiring work on the rebuilt reference counts and index.
        assert_eq!(restored.ack(alice.id(), &[1]).await.unwrap(), 1);
        let expired = restored.expire(NOW + 1000).await.unwrap();
        assert_eq!(expired.entries, 1);
        assert_eq!(restored.queue_stats().await.unwrap().bytes, 0);
        original.close().await.unwrap();
        restored.close().await.unwrap();
    }

    impl SledStore {
        fn list_body(&self, body: u64) -> Vec<u8> {
            self.trees
                .bodies
                .get(body_key(body))
                .unwrap()
                .map(|b| b.to_vec())
                .unwrap_or_default()
        }
    }
}
