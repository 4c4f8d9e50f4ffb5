//! This account and device: creating them, registering, and loading them from the store.

use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::{Handle, Register};
use kith_protocol::{
    AccountKeyPair, AccountPublicKey, BoundedBytes, DeviceCertificate, DeviceId, DeviceKeyPair,
    VerifiedCertificate,
};
use zeroize::Zeroizing;

use super::prekeys::{self, INITIAL_ONE_TIME_PREKEYS};
use super::records::{self, ACCOUNT_GROUP, AccountRecord, RELAY_LOGIN_GROUP, RelayLoginRecord};
use crate::error::Error;
use crate::relay::{Link, RelayUrl, TlsTermination, Trust};
use crate::store::{Batch, LocalStore, StoreError, Table};

/// The id of the device's first signed prekey (rotation counts up from it).
const SIGNED_PREKEY_ID: u32 = 1;
/// The id of the first last-resort ML-KEM prekey; one-time ML-KEM ids start above it, and
/// later last-resort ones take the next id of that shared space.
const LAST_RESORT_KEM_ID: u32 = 1;
/// The first one-time X25519 prekey id.
const FIRST_ONE_TIME_ID: u32 = 1;
/// The first one-time ML-KEM prekey id (the id space is shared with the last-resort key).
const FIRST_ONE_TIME_KEM_ID: u32 = 2;

/// This account and device, unlocked.
pub(super) struct Account {
    /// The registered handle.
    pub(super) handle: Handle,
    /// The relay.
    pub(super) relay: RelayUrl,
    /// How its certificate is trusted.
    pub(super) trust: Trust,
    /// Where the TLS connection to it ends (whether logins are bound to TLS).
    pub(super) termination: TlsTermination,
    /// The account key (signs circle changes).
    pub(super) keys: AccountKeyPair,
    /// The device's keys.
    pub(super) device: DeviceKeyPair,
    /// The account's certificate for this device.
    pub(super) certificate: VerifiedCertificate,
}

impl Account {
    /// The account's public key.
    pub(super) fn account_key(&self) -> &AccountPublicKey {
        self.certificate.account_key()
    }

    /// This device's id.
    pub(super) fn device_id(&self) -> DeviceId {
        self.certificate.device_id()
    }

    /// Loads the account from the store.
    pub(super) fn load(store: &LocalStore) -> Result<Self, StoreError> {
        let record = load_record(store)?;
        let device_secret: Zeroizing<[u8; 64]> = Zeroizing::new(
            record
                .device_secret
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt)?,
        );
        let device = DeviceKeyPair::from_secret_bytes(&device_secret);
        let keys = AccountKeyPair::from_secret_bytes(&record.account_secret);
        let certificate = DeviceCertificate::from_bytes(&record.certificate)
            .ok()
            .and_then(|c| c.verify().ok())
            .ok_or(StoreError::Corrupt)?;
        Ok(Self {
            handle: Handle::parse(&record.handle).map_err(|_| StoreError::Corrupt)?,
            relay: RelayUrl::parse(&record.relay).map_err(|_| StoreError::Corrupt)?,
            trust: Trust::from_bytes(&record.trust).ok_or(StoreError::Corrupt)?,
            termination: load_termination(store)?,
            keys,
            device,
            certificate,
        })
    }
}

/// Reads the account record.
pub(super) fn load_record(store: &LocalStore) -> Result<AccountRecord, StoreError> {
    let bytes = store
        .get(Table::Account, ACCOUNT_GROUP, &[])?
        .ok_or(StoreError::Corrupt)?;
    records::decode(&bytes)
}

/// Adds the account record to `batch`.
pub(super) fn save_record(batch: &mut Batch, record: &AccountRecord) -> Result<(), StoreError> {
    batch.put(
        Table::Account,
        ACCOUNT_GROUP,
        &[],
        &records::encode(record)?,
    );
    Ok(())
}

/// Reads where TLS ends from the relay login record; a home created before the record existed
/// has none and binds its logins to TLS, as it always did.
fn load_termination(store: &LocalStore) -> Result<TlsTermination, StoreError> {
    let Some(bytes) = store.get(Table::Account, RELAY_LOGIN_GROUP, &[])? else {
        return Ok(TlsTermination::Relay);
    };
    let record: RelayLoginRecord = records::decode(&bytes)?;
    Ok(if record.behind_proxy {
        TlsTermination::Proxy
    } else {
        TlsTermination::Relay
    })
}

/// Adds the relay login record for `termination` to `batch`.
fn save_termination(batch: &mut Batch, termination: TlsTermination) -> Result<(), StoreError> {
    let record = RelayLoginRecord {
        behind_proxy: termination == TlsTermination::Proxy,
    };
    batch.put(
        Table::Account,
        RELAY_LOGIN_GROUP,
        &[],
        &records::encode(&record)?,
    );
    Ok(())
}

/// What `create` made: the account and the registration to send.
pub(super) struct Created {
    /// The unlocked account.
    pub(super) account: Account,
    /// Everything the relay needs except the challenge signature.
    pub(super) upload: kith_protocol::wire::PrekeyUpload,
}

/// Generates the account key, this device's keys, its certificate and prekeys, and stores
/// them (not yet registered). `now` dates the certificate and starts the prekeys' rotation
/// period.
pub(super) fn create<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    handle: &Handle,
    relay: &RelayUrl,
    trust: &Trust,
    termination: TlsTermination,
    now: u64,
    rng: &mut R,
) -> Result<Created, StoreError> {
    let account_keys = AccountKeyPair::generate(rng);
    let device = DeviceKeyPair::generate(rng);
    let certificate = account_keys
        .certify_device(DeviceId::random(rng), &device, now)
        .verify()
        .map_err(|_| StoreError::Corrupt)?;
    let mut record = AccountRecord {
        handle: handle.as_str().to_owned(),
        relay: relay.to_string(),
        trust: trust.to_bytes(),
        account_secret: *account_keys.to_secret_bytes(),
        device_secret: device.to_secret_bytes().to_vec(),
        certificate: certificate.certificate().to_bytes(),
        signed_prekey_id: SIGNED_PREKEY_ID,
        last_resort_kem_id: LAST_RESORT_KEM_ID,
        next_one_time_id: FIRST_ONE_TIME_ID,
        next_one_time_kem_id: FIRST_ONE_TIME_KEM_ID,
        registered: false,
    };
    let mut batch = Batch::new();
    let mut upload =
        prekeys::generate_long_term(&mut batch, prekeys::current_ids(&record), &device, rng);
    let one_time = prekeys::generate_one_time(
        &mut batch,
        &mut record,
        &device,
        INITIAL_ONE_TIME_PREKEYS,
        rng,
    );
    upload.one_time_prekeys = one_time.one_time_prekeys;
    upload.one_time_kem_prekeys = one_time.one_time_kem_prekeys;
    save_record(&mut batch, &record)?;
    save_termination(&mut batch, termination)?;
    prekeys::start_rotation(&mut batch, now)?;
    store.apply(batch)?;
    let account = Account {
        handle: handle.clone(),
        relay: relay.clone(),
        trust: trust.clone(),
        termination,
        keys: account_keys,
        device,
        certificate,
    };
    Ok(Created { account, upload })
}

/// Registers the created account on `link` and records that it is registered.
pub(super) async fn register(
    store: &LocalStore,
    link: &mut Link,
    created: &Created,
    invite: Option<&str>,
) -> Result<(), Error> {
    let account = &created.account;
    let invite = invite
        .map(|token| {
            BoundedBytes::new(token.trim().as_bytes().to_vec()).ok_or(Error::Registration(
                kith_protocol::wire::ErrorKind::InviteInvalid,
            ))
        })
        .transpose()?;
    let register = Register {
        handle: account.handle.clone(),
        certificate: account.certificate.certificate().clone(),
        prekeys: created.upload.clone(),
        invite,
        signature: link.sign_challenge(&account.device, account.device_id()),
    };
    link.register(register).await.map_err(|e| match e {
        crate::relay::LinkError::Relay(kind) => Error::Registration(kind),
        other => Error::Link(other),
    })?;
    let mut record = load_record(store)?;
    record.registered = true;
    let mut batch = Batch::new();
    save_record(&mut batch, &record)?;
    store.apply(batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use getrandom::SysRng;
    use kith_protocol::rand_core::UnwrapErr;
    use tempfile::TempDir;

    use super::*;
    use crate::store::{KdfParams, Passphrase};

    /// Cheap Argon2id parameters so the tests run fast.
    const FAST: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    fn passphrase() -> Passphrase {
        Passphrase::new("correct horse battery staple".to_owned())
    }

    /// A store in a temporary home holding an account created for `termination`.
    fn home_with(termination: TlsTermination) -> (TempDir, LocalStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::create(&tmp.path().join("store"), &passphrase(), FAST).unwrap();
        let relay = RelayUrl::parse("wss://relay.example:7443").unwrap();
        let handle = Handle::parse("alice").unwrap();
        let rng = &mut UnwrapErr(SysRng);
        create(
            &store,
            &handle,
            &relay,
            &Trust::System,
            termination,
            crate::client::now(),
            rng,
        )
        .unwrap();
        (tmp, store)
    }

    #[test]
    fn the_tls_termination_survives_reopening_the_store() {
        for termination in [TlsTermination::Relay, TlsTermination::Proxy] {
            let (tmp, store) = home_with(termination);
            drop(store);
            let store = LocalStore::open(&tmp.path().join("store"), &passphrase()).unwrap();
            let account = Account::load(&store).unwrap();
            assert_eq!(account.termination, termination);
            assert_eq!(account.relay.host(), "relay.example");
        }
    }

    #[test]
    fn a_home_from_before_the_setting_binds_its_logins() {
        let (_tmp, store) = home_with(TlsTermination::Proxy);
        // What a home created before the relay login record existed holds.
        let mut batch = Batch::new();
        batch.remove(Table::Account, RELAY_LOGIN_GROUP, &[]);
        store.apply(batch).unwrap();
        let account = Account::load(&store).unwrap();
        assert_eq!(account.termination, TlsTermination::Relay);
    }
}
