//! A circle as this device keeps it: the current verified state, the one before (for envelopes
//! in flight during a change), this device's sender key and who holds it.

use kith_protocol::rand_core::CryptoRng;
use kith_protocol::{
    AccountPublicKey, DeviceId, GroupId, OwnSenderKey, PeerSenderKey, VerifiedGroupState,
};

use super::super::records::{self, GroupRecord};
use super::super::{GroupInfo, GroupMember};
use crate::error::Error;
use crate::store::{Batch, LocalStore, StoreError, Table};

/// Shortest id prefix accepted where a circle is named.
const MIN_ID_PREFIX: usize = 4;

/// A circle, unlocked.
pub(super) struct Circle {
    /// The group id.
    pub(super) id: GroupId,
    /// The current state.
    pub(super) state: VerifiedGroupState,
    /// The stored record (its `state` is refreshed from `state` on save).
    pub(super) record: GroupRecord,
}

impl Circle {
    /// A new circle at `state`.
    pub(super) fn new(state: VerifiedGroupState) -> Self {
        Self {
            id: state.state().group_id(),
            state,
            record: GroupRecord::default(),
        }
    }

    fn from_record(record: GroupRecord) -> Result<Self, StoreError> {
        let state =
            VerifiedGroupState::from_bytes(&record.state).map_err(|_| StoreError::Corrupt)?;
        Ok(Self {
            id: state.state().group_id(),
            state,
            record,
        })
    }

    /// The circle with this id, if this device knows it.
    pub(super) fn load(store: &LocalStore, id: &GroupId) -> Result<Option<Self>, StoreError> {
        store
            .get(Table::Groups, id.as_bytes(), &[])?
            .map(|bytes| Self::from_record(records::decode(&bytes)?))
            .transpose()
    }

    /// Every circle this device knows, left ones included.
    pub(super) fn all(store: &LocalStore) -> Result<Vec<Self>, StoreError> {
        store
            .scan_table(Table::Groups)?
            .iter()
            .map(|bytes| Self::from_record(records::decode(bytes)?))
            .collect()
    }

    /// The circle the user means by `query`: its exact name, or a prefix of its id.
    pub(super) fn resolve(store: &LocalStore, query: &str) -> Result<Self, Error> {
        let mut active: Vec<Self> = Self::all(store)?
            .into_iter()
            .filter(|c| !c.record.left)
            .collect();
        let by_name: Vec<usize> = (0..active.len())
            .filter(|&i| active[i].name() == query)
            .collect();
        let by_id: Vec<usize> = (0..active.len())
            .filter(|&i| {
                query.len() >= MIN_ID_PREFIX
                    && active[i]
                        .id
                        .to_string()
                        .starts_with(&query.to_ascii_lowercase())
            })
            .collect();
        let matches = if by_name.is_empty() { by_id } else { by_name };
        match matches.as_slice() {
            [one] => Ok(active.swap_remove(*one)),
            [] => Err(Error::UnknownGroup {
                group: query.to_owned(),
            }),
            _ => Err(Error::AmbiguousGroup {
                group: query.to_owned(),
            }),
        }
    }

    /// The circle's name.
    pub(super) fn name(&self) -> &str {
        self.state.state().name()
    }

    /// The state before the current one, if kept.
    pub(super) fn previous(&self) -> Option<VerifiedGroupState> {
        let bytes = self.record.previous.as_ref()?;
        VerifiedGroupState::from_bytes(bytes).ok()
    }

    /// Moves to `next`: the current state becomes the previous one, and this device's sender
    /// key is dropped (a new epoch needs a fresh one).
    pub(super) fn advance(&mut self, next: VerifiedGroupState) {
        self.record.previous = Some(self.state.to_bytes().to_vec());
        self.state = next;
        self.record.own_key = None;
        self.record.distributed.clear();
    }

    /// This device's sender key for the current epoch, made now if there is none.
    pub(super) fn own_key<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<OwnSenderKey, StoreError> {
        let epoch = self.state.state().epoch();
        if let Some(bytes) = &self.record.own_key {
            let key = OwnSenderKey::from_bytes(bytes).map_err(|_| StoreError::Corrupt)?;
            if key.epoch() == epoch {
                return Ok(key);
            }
        }
        self.record.distributed.clear();
        Ok(OwnSenderKey::generate(self.id, epoch, rng))
    }

    /// Adds the circle to `batch`, with `own_key` as this device's sender key.
    pub(super) fn save(
        &mut self,
        batch: &mut Batch,
        own_key: Option<&OwnSenderKey>,
    ) -> Result<(), StoreError> {
        self.record.state = self.state.to_bytes().to_vec();
        if let Some(key) = own_key {
            self.record.own_key = Some(key.to_bytes().to_vec());
        }
        batch.put(
            Table::Groups,
            self.id.as_bytes(),
            &[],
            &records::encode(&self.record)?,
        );
        Ok(())
    }

    /// The public description, from `me`'s point of view.
    pub(super) fn info(&self, me: &AccountPublicKey) -> GroupInfo {
        let state = self.state.state();
        GroupInfo {
            id: self.id.to_string(),
            name: state.name().to_owned(),
            epoch: state.epoch(),
            members: state
                .members()
                .iter()
                .map(|m| GroupMember {
                    handle: m.handle.clone(),
                    admin: m.admin,
                    you: m.account_key == *me,
                })
                .collect(),
            admin: state.is_admin(me),
            last_message_at: self.record.last_message_at,
        }
    }
}

/// The store group of a member device's sender keys in a circle.
fn peer_group(id: &GroupId, account: &AccountPublicKey, device: DeviceId) -> Vec<u8> {
    [
        id.as_bytes().as_slice(),
        account.as_bytes(),
        device.as_bytes(),
    ]
    .concat()
}

/// A member device's sender key for `epoch`, if received.
pub(super) fn load_peer_key(
    store: &LocalStore,
    id: &GroupId,
    (account, device): (&AccountPublicKey, DeviceId),
    epoch: u64,
) -> Result<Option<PeerSenderKey>, StoreError> {
    store
        .get(
            Table::PeerSenderKeys,
            &peer_group(id, account, device),
            &epoch.to_be_bytes(),
        )?
        .map(|bytes| PeerSenderKey::from_bytes(&bytes).map_err(|_| StoreError::Corrupt))
        .transpose()
}

/// Adds a member device's sender key to `batch`.
pub(super) fn save_peer_key(batch: &mut Batch, key: &PeerSenderKey) {
    batch.put(
        Table::PeerSenderKeys,
        &peer_group(&key.group_id(), key.sender_account(), key.sender_device()),
        &key.epoch().to_be_bytes(),
        &key.to_bytes(),
    );
}

/// The identity under which `distributed` remembers a device.
pub(super) fn device_tag(account: &AccountPublicKey, device: DeviceId) -> Vec<u8> {
    [account.as_bytes().as_slice(), device.as_bytes()].concat()
}
