//! Contacts: the account key pinned for each handle (trust on first use), the directory lookups
//! that feed them, and key-change detection.

use kith_protocol::wire::{ErrorKind, Handle, Request, Response};
use kith_protocol::{AccountPublicKey, VerifiedCertificate};

use super::records::{self, ContactRecord};
use crate::error::Error;
use crate::relay::{Link, LinkError};
use crate::store::{Batch, LocalStore, StoreError, Table};

/// What the relay's directory says about a handle, certificates verified.
pub(super) struct Directory {
    /// The account key behind the handle.
    pub(super) account_key: AccountPublicKey,
    /// The account's devices whose certificates verify under `account_key`.
    pub(super) devices: Vec<VerifiedCertificate>,
}

/// Looks `handle` up at the relay. Every certificate must verify under the account key.
pub(super) async fn lookup(link: &mut Link, handle: &Handle) -> Result<Directory, Error> {
    let request = Request::Lookup {
        handle: handle.clone(),
    };
    let (account_key, certificates) = match link.request(request).await {
        Ok(Response::Account {
            account_key,
            devices,
        }) => (account_key, devices.into_vec()),
        Ok(_) => {
            return Err(Error::UnexpectedResponse {
                what: "a directory entry",
            });
        }
        Err(LinkError::Relay(ErrorKind::NotFound)) => {
            return Err(Error::UnknownHandle {
                handle: handle.clone(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let devices = certificates
        .iter()
        .map(|c| c.verify_for(&account_key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::BadKeys {
            handle: handle.clone(),
        })?;
    Ok(Directory {
        account_key,
        devices,
    })
}

/// The contact record for `handle`, if any.
pub(super) fn load(
    store: &LocalStore,
    handle: &Handle,
) -> Result<Option<ContactRecord>, StoreError> {
    store
        .get(Table::Contacts, handle.as_str().as_bytes(), &[])?
        .map(|bytes| records::decode(&bytes))
        .transpose()
}

/// Adds `contact` to `batch`.
pub(super) fn save(batch: &mut Batch, contact: &ContactRecord) -> Result<(), StoreError> {
    batch.put(
        Table::Contacts,
        contact.handle.as_bytes(),
        &[],
        &records::encode(contact)?,
    );
    Ok(())
}

/// Every contact record.
pub(super) fn all(store: &LocalStore) -> Result<Vec<ContactRecord>, StoreError> {
    store
        .scan_table(Table::Contacts)?
        .iter()
        .map(|bytes| records::decode(bytes))
        .collect()
}

/// The contact whose pinned (or pending) account key is `key`.
pub(super) fn find_by_key(
    store: &LocalStore,
    key: &AccountPublicKey,
) -> Result<Option<ContactRecord>, StoreError> {
    Ok(all(store)?
        .into_iter()
        .find(|c| c.account_key == *key.as_bytes() || c.pending_key == Some(*key.as_bytes())))
}

/// A new contact pinned to `directory`'s account key (trust on first use, not verified).
pub(super) fn new_contact(handle: &Handle, directory: &Directory) -> ContactRecord {
    ContactRecord {
        handle: handle.as_str().to_owned(),
        account_key: *directory.account_key.as_bytes(),
        verified: false,
        pending_key: None,
        devices: encode_devices(&directory.devices),
        next_seq: 0,
        last_message_at: None,
    }
}

/// The encoded certificates of `devices`, as a contact record keeps them.
pub(super) fn encode_devices(devices: &[VerifiedCertificate]) -> Vec<Vec<u8>> {
    devices.iter().map(|c| c.certificate().to_bytes()).collect()
}

/// Compares the relay's answer with the pinned contact. Returns the contact (new or updated
/// with the current devices), or — when the account key differs from the pinned one — records
/// the new key as pending and returns `Err(KeyChanged)` after saving that.
pub(super) fn pin(
    store: &LocalStore,
    handle: &Handle,
    directory: &Directory,
) -> Result<ContactRecord, Error> {
    let mut batch = Batch::new();
    let contact = match load(store, handle)? {
        None => new_contact(handle, directory),
        Some(mut contact) if contact.account_key == *directory.account_key.as_bytes() => {
            contact.pending_key = None;
            contact.devices = encode_devices(&directory.devices);
            contact
        }
        Some(mut contact) => {
            if contact.pending_key != Some(*directory.account_key.as_bytes()) {
                contact.pending_key = Some(*directory.account_key.as_bytes());
                save(&mut batch, &contact)?;
                store.apply(batch)?;
            }
            return Err(Error::KeyChanged {
                handle: handle.clone(),
            });
        }
    };
    save(&mut batch, &contact)?;
    store.apply(batch)?;
    Ok(contact)
}
