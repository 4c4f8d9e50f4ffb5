//! Accounts, devices and invites.

use ::sled::Transactional;
use ::sled::transaction::{ConflictableTransactionResult, TransactionalTree};
use kith_protocol::consts::MAX_DEVICES_PER_ACCOUNT;
use kith_protocol::{AccountPublicKey, DeviceId, VerifiedCertificate};

use super::codec::{AccountValue, DeviceValue, Expiring, InviteValue, decode, encode, expiry_key};
use super::{Trees, abort, backend, tx_error};
use crate::store::{Account, DeviceRecord, InviteTokenHash, NewAccount, StoreError};

impl Trees {
    /// Creates the account and its first device, using up the invite, in one transaction.
    pub(super) fn create_account(&self, new: &NewAccount) -> Result<Account, StoreError> {
        let account_key = *new.certificate.account_key();
        let device = new.certificate.device_id();
        let account = AccountValue {
            handle: new.handle.clone(),
            devices: vec![device],
            created_at: new.now,
        };
        let account_bytes = encode(&account)?;
        let device_bytes = encode(&device_value(&new.certificate, new.now))?;
        (
            &self.handles,
            &self.accounts,
            &self.devices,
            &self.invites,
            &self.expiry,
        )
            .transaction(|(handles, accounts, devices, invites, expiry)| {
                if let Some(invite) = &new.invite {
                    use_invite(invites, expiry, invite, new.now)?;
                }
                if handles.get(new.handle.as_bytes())?.is_some() {
                    return Err(abort(StoreError::HandleTaken));
                }
                if accounts.get(account_key.as_bytes())?.is_some() {
                    return Err(abort(StoreError::AccountExists));
                }
                if devices.get(device.as_bytes())?.is_some() {
                    return Err(abort(StoreError::DeviceExists));
                }
                handles.insert(new.handle.as_bytes(), &account_key.as_bytes()[..])?;
                accounts.insert(&account_key.as_bytes()[..], &account_bytes[..])?;
                devices.insert(&device.as_bytes()[..], &device_bytes[..])?;
                Ok(())
            })
            .map_err(tx_error)?;
        Ok(to_account(account_key, account))
    }

    /// Adds a device to the account its certificate names.
    pub(super) fn add_device(
        &self,
        certificate: &VerifiedCertificate,
        added_at: u64,
    ) -> Result<Account, StoreError> {
        let account_key = *certificate.account_key();
        let device = certificate.device_id();
        let device_bytes = encode(&device_value(certificate, added_at))?;
        let account = (&self.accounts, &self.devices)
            .transaction(|(accounts, devices)| {
                let Some(bytes) = accounts.get(account_key.as_bytes())? else {
                    return Err(abort(StoreError::AccountNotFound));
                };
                let mut account: AccountValue = decode(&bytes, "account").map_err(abort)?;
                if account.devices.len() >= MAX_DEVICES_PER_ACCOUNT {
                    return Err(abort(StoreError::TooManyDevices));
                }
                if devices.get(device.as_bytes())?.is_some() {
                    return Err(abort(StoreError::DeviceExists));
                }
                account.devices.push(device);
                let encoded = encode(&account).map_err(abort)?;
                accounts.insert(&account_key.as_bytes()[..], encoded)?;
                devices.insert(&device.as_bytes()[..], &device_bytes[..])?;
                Ok(account)
            })
            .map_err(tx_error)?;
        Ok(to_account(account_key, account))
    }

    /// The account with this handle.
    pub(super) fn account_by_handle(&self, handle: &str) -> Result<Option<Account>, StoreError> {
        let Some(key) = self.handles.get(handle.as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        let key: [u8; 32] = key
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt("handle"))?;
        self.account_by_key(&AccountPublicKey::from_bytes(key))
    }

    /// The account with this key.
    pub(super) fn account_by_key(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Option<Account>, StoreError> {
        let Some(bytes) = self.accounts.get(account_key.as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        Ok(Some(to_account(*account_key, decode(&bytes, "account")?)))
    }

    /// The device with this id.
    pub(super) fn device(&self, device: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let Some(bytes) = self.devices.get(device.as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        let value: DeviceValue = decode(&bytes, "device")?;
        Ok(Some(DeviceRecord {
            account_key: value.account_key,
            certificate: value.certificate,
            added_at: value.added_at,
        }))
    }

    /// The devices of an account, in the order added.
    pub(super) fn devices_of(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let account = self
            .account_by_key(account_key)?
            .ok_or(StoreError::AccountNotFound)?;
        account
            .devices
            .iter()
            .map(|d| {
                self.device(d)?
                    .ok_or(StoreError::Corrupt("account device list"))
            })
            .collect()
    }

    /// Records (or replaces) an invite.
    pub(super) fn create_invite(
        &self,
        token: &InviteTokenHash,
        uses: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let value = encode(&InviteValue {
            uses_left: uses,
            expires_at,
        })?;
        (&self.invites, &self.expiry)
            .transaction(|(invites, expiry)| {
                if let Some(old) = invites.get(token.0)? {
                    let old: InviteValue = decode(&old, "invite").map_err(abort)?;
                    expiry.remove(expiry_key(old.expires_at, Expiring::Invite(token.0)))?;
                }
                invites.insert(&token.0[..], &value[..])?;
                expiry.insert(expiry_key(expires_at, Expiring::Invite(token.0)), &[][..])?;
                Ok(())
            })
            .map_err(tx_error)
    }
}

/// Uses up one use of an invite inside a transaction; the last use deletes it.
fn use_invite(
    invites: &TransactionalTree,
    expiry: &TransactionalTree,
    token: &InviteTokenHash,
    now: u64,
) -> ConflictableTransactionResult<(), StoreError> {
    let Some(bytes) = invites.get(token.0)? else {
        return Err(abort(StoreError::InviteInvalid));
    };
    let mut invite: InviteValue = decode(&bytes, "invite").map_err(abort)?;
    if invite.uses_left == 0 || now >= invite.expires_at {
        return Err(abort(StoreError::InviteInvalid));
    }
    invite.uses_left -= 1;
    if invite.uses_left == 0 {
        invites.remove(&token.0[..])?;
        expiry.remove(expiry_key(invite.expires_at, Expiring::Invite(token.0)))?;
    } else {
        invites.insert(&token.0[..], encode(&invite).map_err(abort)?)?;
    }
    Ok(())
}

fn device_value(certificate: &VerifiedCertificate, added_at: u64) -> DeviceValue {
    DeviceValue {
        account_key: *certificate.account_key(),
        certificate: certificate.certificate().clone(),
        added_at,
    }
}

fn to_account(account_key: AccountPublicKey, value: AccountValue) -> Account {
    Account {
        account_key,
        handle: value.handle,
        devices: value.devices,
        created_at: value.created_at,
    }
}
