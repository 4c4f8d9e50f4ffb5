//! Prekeys: publish, take for a bundle, count.
//!
//! Taking a one-time prekey is a plain sled `remove` of the first key under the device's prefix.
//! `remove` is atomic and returns the old value to exactly one caller: concurrent takers that
//! lose the race get `None` and move on to the next key. So every one-time prekey is handed out
//! once, without a transaction (sled transactions cannot scan for "the first key").

use ::sled::transaction::{ConflictableTransactionResult, TransactionalTree};
use ::sled::{Transactional, Tree};
use kith_protocol::{DeviceId, KemPrekey, OneTimePrekey, SignedPrekey};
use serde::de::DeserializeOwned;

use super::codec::{decode, encode, prekey_key};
use super::{Trees, abort, backend, tx_error};
use crate::store::{BundleMaterial, PrekeyCounts, Prekeys, StoreError};

impl Trees {
    /// Stores a device's prekeys in one transaction; any duplicate id aborts all of it.
    pub(super) fn publish_prekeys(
        &self,
        device: &DeviceId,
        prekeys: &Prekeys,
    ) -> Result<(), StoreError> {
        let signed = prekeys.signed.as_ref().map(encode).transpose()?;
        let last_resort = prekeys.last_resort_kem.as_ref().map(encode).transpose()?;
        let one_time = encode_batch(device, &prekeys.one_time, OneTimePrekey::id)?;
        let one_time_kem = encode_batch(device, &prekeys.one_time_kem, KemPrekey::id)?;
        (
            &self.devices,
            &self.signed_prekeys,
            &self.last_resort_kem,
            &self.one_time_prekeys,
            &self.one_time_kem_prekeys,
        )
            .transaction(
                |(devices, signed_tree, last_resort_tree, ot_tree, otk_tree)| {
                    if devices.get(device.as_bytes())?.is_none() {
                        return Err(abort(StoreError::DeviceNotFound));
                    }
                    insert_new(ot_tree, &one_time)?;
                    insert_new(otk_tree, &one_time_kem)?;
                    if let Some(bytes) = &signed {
                        signed_tree.insert(&device.as_bytes()[..], &bytes[..])?;
                    }
                    if let Some(bytes) = &last_resort {
                        last_resort_tree.insert(&device.as_bytes()[..], &bytes[..])?;
                    }
                    Ok(())
                },
            )
            .map_err(tx_error)
    }

    /// Takes the material for one bundle. Returns `Ok((material, taken))` where `taken` says
    /// whether a one-time key was removed (and so a flush is needed).
    pub(super) fn take_bundle_material(
        &self,
        device: &DeviceId,
    ) -> Result<(BundleMaterial, bool), StoreError> {
        self.require_device(device)?;
        let signed: Option<SignedPrekey> = read(&self.signed_prekeys, device, "signed prekey")?;
        let last_resort: Option<KemPrekey> = read(&self.last_resort_kem, device, "kem prekey")?;
        let (Some(signed), Some(last_resort)) = (signed, last_resort) else {
            return Err(StoreError::PrekeysMissing);
        };
        let one_time: Option<OneTimePrekey> =
            take_first(&self.one_time_prekeys, device, "one-time prekey")?;
        let one_time_kem: Option<KemPrekey> =
            take_first(&self.one_time_kem_prekeys, device, "one-time kem prekey")?;
        let taken = one_time.is_some() || one_time_kem.is_some();
        let material = BundleMaterial {
            signed,
            one_time,
            kem: one_time_kem.unwrap_or(last_resort),
        };
        Ok((material, taken))
    }

    /// Counts a device's prekeys.
    pub(super) fn prekey_counts(&self, device: &DeviceId) -> Result<PrekeyCounts, StoreError> {
        self.require_device(device)?;
        Ok(PrekeyCounts {
            signed: self
                .signed_prekeys
                .contains_key(device.as_bytes())
                .map_err(backend)?,
            last_resort_kem: self
                .last_resort_kem
                .contains_key(device.as_bytes())
                .map_err(backend)?,
            one_time: count_prefix(&self.one_time_prekeys, device)?,
            one_time_kem: count_prefix(&self.one_time_kem_prekeys, device)?,
        })
    }

    /// Fails with [`StoreError::DeviceNotFound`] for an unknown device.
    pub(super) fn require_device(&self, device: &DeviceId) -> Result<(), StoreError> {
        if self
            .devices
            .contains_key(device.as_bytes())
            .map_err(backend)?
        {
            Ok(())
        } else {
            Err(StoreError::DeviceNotFound)
        }
    }
}

type Encoded = Vec<(Vec<u8>, Vec<u8>)>;

/// Encodes one-time prekeys as (key, value) pairs.
fn encode_batch<T: serde::Serialize>(
    device: &DeviceId,
    prekeys: &[T],
    id: fn(&T) -> u32,
) -> Result<Encoded, StoreError> {
    prekeys
        .iter()
        .map(|p| Ok((prekey_key(device, id(p)).to_vec(), encode(p)?)))
        .collect()
}

/// Inserts pairs whose keys must not exist yet (in the tree or earlier in the batch).
fn insert_new(
    tree: &TransactionalTree,
    batch: &Encoded,
) -> ConflictableTransactionResult<(), StoreError> {
    for (key, value) in batch {
        if tree.insert(&key[..], &value[..])?.is_some() {
            return Err(abort(StoreError::DuplicatePrekey));
        }
    }
    Ok(())
}

/// Reads and decodes the value under a device id.
fn read<T: DeserializeOwned>(
    tree: &Tree,
    device: &DeviceId,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    tree.get(device.as_bytes())
        .map_err(backend)?
        .map(|bytes| decode(&bytes, what))
        .transpose()
}

/// Removes and returns the first value under the device's prefix that this caller wins.
fn take_first<T: DeserializeOwned>(
    tree: &Tree,
    device: &DeviceId,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    for key in tree.scan_prefix(device.as_bytes()).keys() {
        let key = key.map_err(backend)?;
        if let Some(bytes) = tree.remove(&key).map_err(backend)? {
            return decode(&bytes, what).map(Some);
        }
    }
    Ok(None)
}

fn count_prefix(tree: &Tree, device: &DeviceId) -> Result<u32, StoreError> {
    let mut count: u32 = 0;
    for key in tree.scan_prefix(device.as_bytes()).keys() {
        key.map_err(backend)?;
        count = count.saturating_add(1);
    }
    Ok(count)
}
