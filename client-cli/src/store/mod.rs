//! The local store: a sled database under the home directory whose every value is sealed with
//! XChaCha20-Poly1305 under a key that only the passphrase unlocks (Argon2id).
//!
//! Layout (see `vault.rs` for the cryptography):
//!
//! - sled's default tree holds one unencrypted entry, the header: format version, Argon2id
//!   parameters, a random salt and the random data key wrapped under the passphrase key.
//! - the tree `data` holds every record. A stored key is
//!   `table:u8 ‖ HMAC-SHA256(index_key, table ‖ len(group) ‖ group)[..16] ‖ item`:
//!   the *group* (a handle, a device id, …) is hidden behind a keyed hash, and the *item*
//!   (a sequence number or prekey id) stays in clear so records of a group keep their order.
//! - a stored value is `nonce:[24] ‖ ciphertext ‖ tag:[16]` with associated data
//!   `"kith-store-v1" ‖ stored key`, so a value cannot be moved to another key unnoticed.
//!
//! The header layout is drawn in `vault.rs`, the key schedule and record sealing in `keys.rs`,
//! and sled's locking (a second open is [`StoreError::InUse`]) in `disk.rs`. Any value or
//! header that fails authentication is an error ([`StoreError::Corrupt`] or
//! [`StoreError::WrongPassphrase`]), never garbage.
//!
//! [`LocalStore::apply`] writes a [`Batch`] atomically and returns only after sled has flushed
//! it to disk: a caller that shows a message as sent or received after `apply` returned never
//! loses the state behind it.

mod disk;
mod error;
mod keys;
#[cfg(test)]
mod tests;
mod vault;

pub use error::StoreError;
pub use vault::{KdfParams, Passphrase};

use std::path::Path;

use zeroize::Zeroizing;

use error::sled_error;
use keys::{GROUP_PREFIX_LEN, StoreKeys};
use vault::Header;

/// The key of the header in sled's default tree.
const HEADER_KEY: &[u8] = b"kith-header";
/// The sled tree that holds every record.
const DATA_TREE: &[u8] = b"data";

/// The tables of the store. Append-only: the byte values are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Table {
    /// This account and device: keys, handle, relay, counters. One record.
    Account = 1,
    /// Prekey secrets, by kind and id.
    Prekeys = 2,
    /// Sessions, grouped by remote device id.
    Sessions = 3,
    /// Base keys of prekey messages already accepted (replay detection).
    BaseKeys = 4,
    /// Contacts, grouped by handle.
    Contacts = 5,
    /// Message history, grouped by conversation, items ordered by sequence number.
    History = 6,
    /// Circles this account is in, by group id.
    Groups = 7,
    /// Other members' sender keys, grouped by group, account and device; items by epoch.
    PeerSenderKeys = 8,
    /// Ids of messages already accepted (SPEC.md §13.3 rule 4), grouped by sending account
    /// and conversation; items are message ids.
    SeenMessages = 9,
}

/// An opened, unlocked local store.
pub(crate) struct LocalStore {
    /// The database: one per store, holding sled's lock on the directory.
    db: sled::Db,
    /// The `data` tree.
    data: sled::Tree,
    /// The value and index keys.
    keys: StoreKeys,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").finish_non_exhaustive()
    }
}

/// One write of a [`Batch`], on logical keys.
enum Op {
    /// Store a value.
    Put {
        /// The table.
        table: Table,
        /// The group.
        group: Vec<u8>,
        /// The item.
        item: Vec<u8>,
        /// The plaintext, wiped on drop.
        value: Zeroizing<Vec<u8>>,
    },
    /// Remove a value.
    Remove {
        /// The table.
        table: Table,
        /// The group.
        group: Vec<u8>,
        /// The item.
        item: Vec<u8>,
    },
}

/// A set of writes applied atomically by [`LocalStore::apply`]. A later write to the same
/// key replaces an earlier one.
#[derive(Default)]
pub(crate) struct Batch {
    /// The writes, in order.
    ops: Vec<Op>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("writes", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `(table, group, item)`, replacing what was there.
    pub(crate) fn put(&mut self, table: Table, group: &[u8], item: &[u8], value: &[u8]) {
        self.ops.push(Op::Put {
            table,
            group: group.to_vec(),
            item: item.to_vec(),
            value: Zeroizing::new(value.to_vec()),
        });
    }

    /// Removes `(table, group, item)` if present.
    pub(crate) fn remove(&mut self, table: Table, group: &[u8], item: &[u8]) {
        self.ops.push(Op::Remove {
            table,
            group: group.to_vec(),
            item: item.to_vec(),
        });
    }

    /// Whether the batch holds no writes.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Pairs of `(item, value)`, as the scans return them.
type Items = Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>;

impl LocalStore {
    /// Creates a new store in `dir` (which must not hold one yet), locked by `passphrase`.
    pub(crate) fn create(
        dir: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        if !params.is_sane() {
            return Err(StoreError::InvalidKdfParams);
        }
        disk::create_dir(dir)?;
        let db = disk::open_db(dir)?;
        let (header, keys) = Header::create(passphrase, params)?;
        db.compare_and_swap(
            HEADER_KEY,
            None as Option<&[u8]>,
            Some(&header.encode()[..]),
        )
        .map_err(sled_error)?
        .map_err(|_| StoreError::AlreadyExists)?;
        db.flush().map_err(sled_error)?;
        Self::with_keys(db, keys)
    }

    /// Opens the store in `dir` with `passphrase`.
    pub(crate) fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self, StoreError> {
        if !disk::exists(dir)? {
            return Err(StoreError::NotFound);
        }
        let db = disk::open_db(dir)?;
        let header = db
            .get(HEADER_KEY)
            .map_err(sled_error)?
            .ok_or(StoreError::NotFound)?;
        let keys = Header::decode(&header)?.unlock(passphrase)?;
        Self::with_keys(db, keys)
    }

    /// The store over an opened database and unlocked keys.
    fn with_keys(db: sled::Db, keys: StoreKeys) -> Result<Self, StoreError> {
        let data = db.open_tree(DATA_TREE).map_err(sled_error)?;
        Ok(Self { db, data, keys })
    }

    /// The value under `(table, group, item)`.
    pub(crate) fn get(
        &self,
        table: Table,
        group: &[u8],
        item: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let key = self.keys.stored_key(table as u8, group, item);
        match self.data.get(&key).map_err(sled_error)? {
            Some(sealed) => self.keys.open(&key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Every `(item, value)` of `(table, group)`, in item byte order.
    pub(crate) fn scan_group(&self, table: Table, group: &[u8]) -> Result<Items, StoreError> {
        let prefix = self.keys.group_prefix(table as u8, group);
        self.data
            .scan_prefix(prefix)
            .map(|entry| self.open_item(entry))
            .collect()
    }

    /// The last `limit` `(item, value)` pairs of `(table, group)`, in item byte order.
    pub(crate) fn scan_group_last(
        &self,
        table: Table,
        group: &[u8],
        limit: usize,
    ) -> Result<Items, StoreError> {
        let prefix = self.keys.group_prefix(table as u8, group);
        let mut items = self
            .data
            .scan_prefix(prefix)
            .rev()
            .take(limit)
            .map(|entry| self.open_item(entry))
            .collect::<Result<Items, _>>()?;
        items.reverse();
        Ok(items)
    }

    /// Every value of `table`, across groups (in no particular order).
    pub(crate) fn scan_table(&self, table: Table) -> Result<Vec<Zeroizing<Vec<u8>>>, StoreError> {
        self.data
            .scan_prefix([table as u8])
            .map(|entry| {
                let (key, sealed) = entry.map_err(sled_error)?;
                self.keys.open(&key, &sealed)
            })
            .collect()
    }

    /// Applies `batch` atomically and flushes it to disk before returning.
    pub(crate) fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writes = sled::Batch::default();
        for op in batch.ops {
            match op {
                Op::Put {
                    table,
                    group,
                    item,
                    value,
                } => {
                    let key = self.keys.stored_key(table as u8, &group, &item);
                    let sealed = self.keys.seal(&key, &value)?;
                    writes.insert(key, sealed);
                }
                Op::Remove { table, group, item } => {
                    writes.remove(self.keys.stored_key(table as u8, &group, &item));
                }
            }
        }
        self.data.apply_batch(writes).map_err(sled_error)?;
        self.db.flush().map_err(sled_error)?;
        Ok(())
    }

    /// Decrypts one scanned entry into `(item, value)`.
    fn open_item(
        &self,
        entry: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), StoreError> {
        let (key, sealed) = entry.map_err(sled_error)?;
        let item = key
            .get(GROUP_PREFIX_LEN..)
            .ok_or(StoreError::Corrupt)?
            .to_vec();
        Ok((item, self.keys.open(&key, &sealed)?))
    }
}
