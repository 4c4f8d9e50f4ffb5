//! Prekey secrets: generated here, published to the relay, looked up when a contact starts a
//! session, and deleted after one use (one-time prekeys) or once replaced for long enough
//! (the signed prekey and the last-resort ML-KEM prekey, which rotate: SPEC.md §3.5).
//!
//! Rotation runs each time the device connects ([`maintain`]), in three steps that each leave
//! a working state behind if the device stops right after them:
//!
//! 1. [`stage`]: when the current pair is older than [`ROTATION_PERIOD`], generate a new pair
//!    under new ids and store its secrets, marked pending. The old pair stays current.
//! 2. publish the pending pair; the relay replaces the one it hands out.
//! 3. [`commit`], once the relay answered `Ok`: the new pair becomes current and the old one
//!    is retired, its secrets kept for [`GRACE_PERIOD`] so that prekey messages built on a
//!    bundle fetched before the rotation still decrypt; [`stage`] deletes them afterwards.
//!
//! A pending pair is published again at every connection until the relay confirms it: the
//! relay may have stored it before the device stopped, so its secrets are never dropped.

use kith_protocol::consts::MAX_PREKEYS_PER_UPLOAD;
use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::{PrekeyUpload, Request, Response};
use kith_protocol::{
    BoundedVec, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret, OneTimePrekeySecret, PrekeyMessage,
    ResponderPrekeys, SignedPrekeySecret,
};
use zeroize::Zeroizing;

use super::account::{self, Account};
use super::records::{
    self, AccountRecord, LongTermIds, PrekeySlot, ROTATION_GROUP, RetiredPrekeys, RotationRecord,
};
use crate::error::Error;
use crate::relay::Link;
use crate::store::{Batch, LocalStore, StoreError, Table};

/// One-time prekeys of each kind published at registration.
pub(super) const INITIAL_ONE_TIME_PREKEYS: usize = MAX_PREKEYS_PER_UPLOAD;
/// One-time prekeys of each kind published when the relay says it is running low.
pub(super) const TOP_UP_PREKEYS: usize = MAX_PREKEYS_PER_UPLOAD;

/// One day in seconds.
const DAY: u64 = 24 * 60 * 60;
/// How long a signed prekey and last-resort ML-KEM prekey stay current. Weekly, as Signal
/// does: a stolen prekey secret then opens only the sessions started in the week or so it was
/// handed out.
pub(super) const ROTATION_PERIOD: u64 = 7 * DAY;
/// How long a replaced pair's secrets are kept after the relay stopped handing it out: a
/// contact may have fetched the old bundle just before, and its first message may wait that
/// long in the relay's queue while this device is offline. (The reason `receive` gives for
/// dropping a message whose prekey is gone names this period: keep the two in step.)
pub(super) const GRACE_PERIOD: u64 = 30 * DAY;

/// Generates the signed prekey and the last-resort ML-KEM prekey under `ids`, adds their
/// secrets to `batch` and returns their upload (without one-time prekeys).
pub(super) fn generate_long_term<R: CryptoRng + ?Sized>(
    batch: &mut Batch,
    ids: LongTermIds,
    device: &DeviceKeyPair,
    rng: &mut R,
) -> PrekeyUpload {
    let signed = SignedPrekeySecret::generate(ids.signed, device, rng);
    put(
        batch,
        PrekeySlot::Signed,
        ids.signed,
        &*signed.to_secret_bytes(),
    );
    let kem =
        KemPrekeySecret::generate(ids.last_resort_kem, KemPrekeyKind::LastResort, device, rng);
    put(
        batch,
        PrekeySlot::LastResortKem,
        ids.last_resort_kem,
        &*kem.to_secret_bytes(),
    );
    long_term_upload(&signed, &kem)
}

/// The upload of a signed prekey and a last-resort ML-KEM prekey (no one-time prekeys).
fn long_term_upload(signed: &SignedPrekeySecret, kem: &KemPrekeySecret) -> PrekeyUpload {
    PrekeyUpload {
        signed_prekey: Some(signed.public().clone()),
        last_resort_kem_prekey: Some(kem.public().clone()),
        one_time_prekeys: BoundedVec::default(),
        one_time_kem_prekeys: BoundedVec::default(),
    }
}

/// The ids of the current pair, as the account record holds them.
pub(super) fn current_ids(record: &AccountRecord) -> LongTermIds {
    LongTermIds {
        signed: record.signed_prekey_id,
        last_resort_kem: record.last_resort_kem_id,
    }
}

/// Adds the rotation record of a pair made current at `now` (a new device's) to `batch`.
pub(super) fn start_rotation(batch: &mut Batch, now: u64) -> Result<(), StoreError> {
    save_rotation(
        batch,
        &RotationRecord {
            current_since: now,
            pending: None,
            retired: Vec::new(),
        },
    )
}

/// Runs the rotation on a freshly authenticated `link` (see the module documentation): deletes
/// retired secrets whose grace period is over, stages a new pair when the current one is due,
/// and publishes a pending pair. Returns the ids of the pair it made current, if it did.
pub(super) async fn maintain<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    now: u64,
    rng: &mut R,
) -> Result<Option<LongTermIds>, Error> {
    let Some(upload) = stage(store, account, now, rng)? else {
        return Ok(None);
    };
    match link.request(Request::PublishPrekeys(upload)).await? {
        Response::Ok => Ok(commit(store, now)?),
        _ => Err(Error::UnexpectedResponse {
            what: "an answer to publishing rotated prekeys",
        }),
    }
}

/// Steps before publishing, in one durable write: deletes the retired pairs whose grace period
/// ended by `now`, and, when the current pair is [`ROTATION_PERIOD`] old and no rotation is
/// pending, stores a new pair under new ids as pending. Returns the upload of the pending
/// pair, if there is one to publish.
pub(super) fn stage<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    account: &Account,
    now: u64,
    rng: &mut R,
) -> Result<Option<PrekeyUpload>, StoreError> {
    let stored = load_rotation(store)?;
    // A home from before rotation existed: its pair counts as made current now, so it rotates
    // one period after the upgrade.
    let mut rotation = stored.clone().unwrap_or(RotationRecord {
        current_since: now,
        pending: None,
        retired: Vec::new(),
    });
    let mut batch = Batch::new();
    delete_expired(&mut batch, &mut rotation, now);
    let upload = match rotation.pending {
        Some(ids) => Some(pending_upload(store, account, ids)?),
        None if now.saturating_sub(rotation.current_since) >= ROTATION_PERIOD => {
            let mut record = account::load_record(store)?;
            let ids = next_ids(&mut record);
            let upload = generate_long_term(&mut batch, ids, &account.device, rng);
            account::save_record(&mut batch, &record)?;
            rotation.pending = Some(ids);
            Some(upload)
        }
        None => None,
    };
    if stored.as_ref() != Some(&rotation) {
        save_rotation(&mut batch, &rotation)?;
    }
    store.apply(batch)?;
    Ok(upload)
}

/// After the relay confirmed the pending pair: makes it current and retires the old one at
/// `now`, in one durable write. Returns the new ids (`None` if nothing was pending).
pub(super) fn commit(store: &LocalStore, now: u64) -> Result<Option<LongTermIds>, StoreError> {
    let Some(mut rotation) = load_rotation(store)? else {
        return Ok(None);
    };
    let Some(ids) = rotation.pending.take() else {
        return Ok(None);
    };
    let mut record = account::load_record(store)?;
    rotation.retired.push(RetiredPrekeys {
        ids: current_ids(&record),
        retired_at: now,
    });
    rotation.current_since = now;
    record.signed_prekey_id = ids.signed;
    record.last_resort_kem_id = ids.last_resort_kem;
    let mut batch = Batch::new();
    account::save_record(&mut batch, &record)?;
    save_rotation(&mut batch, &rotation)?;
    store.apply(batch)?;
    Ok(Some(ids))
}

/// Takes the ids of the next pair and advances the counters in `record`. The signed prekey
/// counts up on its own; the last-resort ML-KEM prekey takes the next id of the KEM id space
/// it shares with the one-time ones (a prekey message names its KEM prekey by id alone).
fn next_ids(record: &mut AccountRecord) -> LongTermIds {
    let last_resort_kem = record.next_one_time_kem_id;
    record.next_one_time_kem_id = last_resort_kem.wrapping_add(1);
    LongTermIds {
        signed: record.signed_prekey_id.wrapping_add(1),
        last_resort_kem,
    }
}

/// Removes from `rotation` the retired pairs whose grace period ended by `now`, and adds the
/// deletion of their secrets to `batch`.
fn delete_expired(batch: &mut Batch, rotation: &mut RotationRecord, now: u64) {
    rotation.retired.retain(|retired| {
        let expired = now.saturating_sub(retired.retired_at) >= GRACE_PERIOD;
        if expired {
            remove(batch, PrekeySlot::Signed, retired.ids.signed);
            remove(
                batch,
                PrekeySlot::LastResortKem,
                retired.ids.last_resort_kem,
            );
        }
        !expired
    });
}

/// The upload of the pending pair, rebuilt from its stored secrets.
fn pending_upload(
    store: &LocalStore,
    account: &Account,
    ids: LongTermIds,
) -> Result<PrekeyUpload, StoreError> {
    let signed = get32(store, PrekeySlot::Signed, ids.signed)?.ok_or(StoreError::Corrupt)?;
    let signed = SignedPrekeySecret::from_secret_bytes(ids.signed, &account.device, &signed);
    let seed =
        get64(store, PrekeySlot::LastResortKem, ids.last_resort_kem)?.ok_or(StoreError::Corrupt)?;
    let kem = KemPrekeySecret::from_secret_bytes(
        ids.last_resort_kem,
        KemPrekeyKind::LastResort,
        &account.device,
        &seed,
    );
    Ok(long_term_upload(&signed, &kem))
}

/// Reads the rotation record (`None` in a home from before rotation existed).
fn load_rotation(store: &LocalStore) -> Result<Option<RotationRecord>, StoreError> {
    store
        .get(Table::Account, ROTATION_GROUP, &[])?
        .map(|bytes| records::decode(&bytes))
        .transpose()
}

/// Adds the rotation record to `batch`.
fn save_rotation(batch: &mut Batch, rotation: &RotationRecord) -> Result<(), StoreError> {
    batch.put(
        Table::Account,
        ROTATION_GROUP,
        &[],
        &records::encode(rotation)?,
    );
    Ok(())
}

/// Generates `count` (at most [`MAX_PREKEYS_PER_UPLOAD`]) one-time prekeys of each kind, adds
/// their secrets to `batch`, advances the id counters in `record`, and returns their upload.
pub(super) fn generate_one_time<R: CryptoRng + ?Sized>(
    batch: &mut Batch,
    record: &mut AccountRecord,
    device: &DeviceKeyPair,
    count: usize,
    rng: &mut R,
) -> PrekeyUpload {
    let count = count.min(MAX_PREKEYS_PER_UPLOAD);
    let mut one_time = Vec::with_capacity(count);
    let mut kem = Vec::with_capacity(count);
    for _ in 0..count {
        let id = record.next_one_time_id;
        record.next_one_time_id = id.wrapping_add(1);
        let secret = OneTimePrekeySecret::generate(id, rng);
        put(batch, PrekeySlot::OneTime, id, &*secret.to_secret_bytes());
        one_time.push(secret.public().clone());

        let kem_id = record.next_one_time_kem_id;
        record.next_one_time_kem_id = kem_id
            .wrapping_add(1)
            .max(record.last_resort_kem_id.saturating_add(1));
        let secret = KemPrekeySecret::generate(kem_id, KemPrekeyKind::OneTime, device, rng);
        put(
            batch,
            PrekeySlot::OneTimeKem,
            kem_id,
            &*secret.to_secret_bytes(),
        );
        kem.push(secret.public().clone());
    }
    PrekeyUpload {
        signed_prekey: None,
        last_resort_kem_prekey: None,
        // Both vectors hold at most MAX_PREKEYS_PER_UPLOAD items (count was capped).
        one_time_prekeys: BoundedVec::new(one_time).unwrap_or_default(),
        one_time_kem_prekeys: BoundedVec::new(kem).unwrap_or_default(),
    }
}

/// Generates and stores new one-time prekeys, then publishes them. The secrets are durable
/// before the relay can hand out the public halves.
pub(super) async fn top_up<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    rng: &mut R,
) -> Result<usize, Error> {
    let mut record = account::load_record(store)?;
    let mut batch = Batch::new();
    let upload = generate_one_time(
        &mut batch,
        &mut record,
        &account.device,
        TOP_UP_PREKEYS,
        rng,
    );
    account::save_record(&mut batch, &record)?;
    store.apply(batch)?;
    match link.request(Request::PublishPrekeys(upload)).await? {
        Response::Ok => Ok(TOP_UP_PREKEYS),
        _ => Err(Error::UnexpectedResponse {
            what: "an answer to publishing prekeys",
        }),
    }
}

/// The prekey secrets a prekey message names, loaded from the store.
pub(super) struct LoadedPrekeys {
    signed: SignedPrekeySecret,
    one_time: Option<OneTimePrekeySecret>,
    kem: KemPrekeySecret,
    kem_is_one_time: bool,
}

impl LoadedPrekeys {
    /// Loads the secrets `message` names; `None` if any is gone (used already, retired longer
    /// than the grace period, or never ours). A retired signed prekey is found by its id like
    /// the current one.
    pub(super) fn load(
        store: &LocalStore,
        account: &Account,
        message: &PrekeyMessage,
    ) -> Result<Option<Self>, StoreError> {
        let signed_id = message.signed_prekey_id();
        let Some(signed) = get32(store, PrekeySlot::Signed, signed_id)? else {
            return Ok(None);
        };
        let signed = SignedPrekeySecret::from_secret_bytes(signed_id, &account.device, &signed);
        let one_time = match message.one_time_prekey_id() {
            None => None,
            Some(id) => match get32(store, PrekeySlot::OneTime, id)? {
                Some(secret) => Some(OneTimePrekeySecret::from_secret_bytes(id, &secret)),
                None => return Ok(None),
            },
        };
        // All ML-KEM prekeys share one id space, so an id is in one slot at most. The
        // last-resort slot holds the current key, a pending one and those retired in the
        // grace period.
        let kem_id = message.kem_prekey_id();
        let (kind, seed) = match get64(store, PrekeySlot::LastResortKem, kem_id)? {
            Some(seed) => (KemPrekeyKind::LastResort, seed),
            None => match get64(store, PrekeySlot::OneTimeKem, kem_id)? {
                Some(seed) => (KemPrekeyKind::OneTime, seed),
                None => return Ok(None),
            },
        };
        let kem = KemPrekeySecret::from_secret_bytes(kem_id, kind, &account.device, &seed);
        Ok(Some(Self {
            signed,
            one_time,
            kem,
            kem_is_one_time: kind == KemPrekeyKind::OneTime,
        }))
    }

    /// The secrets in the form `Session::respond` takes.
    pub(super) fn responder(&self) -> ResponderPrekeys<'_> {
        ResponderPrekeys {
            signed_prekey: &self.signed,
            one_time_prekey: self.one_time.as_ref(),
            kem_prekey: &self.kem,
        }
    }

    /// Adds the deletion of the one-time secrets used to `batch`.
    pub(super) fn consume(&self, batch: &mut Batch) {
        if let Some(one_time) = &self.one_time {
            remove(batch, PrekeySlot::OneTime, one_time.public().id());
        }
        if self.kem_is_one_time {
            remove(batch, PrekeySlot::OneTimeKem, self.kem.public().id());
        }
    }
}

fn put(batch: &mut Batch, slot: PrekeySlot, id: u32, secret: &[u8]) {
    batch.put(Table::Prekeys, slot.group(), &id.to_be_bytes(), secret);
}

fn remove(batch: &mut Batch, slot: PrekeySlot, id: u32) {
    batch.remove(Table::Prekeys, slot.group(), &id.to_be_bytes());
}

fn get32(
    store: &LocalStore,
    slot: PrekeySlot,
    id: u32,
) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
    get_array(store, slot, id)
}

fn get64(
    store: &LocalStore,
    slot: PrekeySlot,
    id: u32,
) -> Result<Option<Zeroizing<[u8; 64]>>, StoreError> {
    get_array(store, slot, id)
}

fn get_array<const N: usize>(
    store: &LocalStore,
    slot: PrekeySlot,
    id: u32,
) -> Result<Option<Zeroizing<[u8; N]>>, StoreError> {
    let Some(bytes) = store.get(Table::Prekeys, slot.group(), &id.to_be_bytes())? else {
        return Ok(None);
    };
    let array: [u8; N] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt)?;
    Ok(Some(Zeroizing::new(array)))
}

#[cfg(test)]
mod tests {
    use getrandom::SysRng;
    use kith_protocol::rand_core::UnwrapErr;
    use kith_protocol::wire::Handle;
    use kith_protocol::{AccountKeyPair, DeviceId, PrekeyBundle, Session, SessionMessage};
    use tempfile::TempDir;

    use super::*;
    use crate::client::account::Created;
    use crate::relay::{RelayUrl, TlsTermination, Trust};
    use crate::store::{KdfParams, Passphrase};

    /// Cheap Argon2id parameters so the tests run fast.
    const FAST: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    /// When the test account was created.
    const CREATED: u64 = 1_800_000_000;

    /// A home holding an account created at [`CREATED`], with what `create` returned.
    fn home() -> (TempDir, LocalStore, Created) {
        let tmp = tempfile::tempdir().unwrap();
        let passphrase = Passphrase::new("correct horse battery staple".to_owned());
        let store = LocalStore::create(&tmp.path().join("store"), &passphrase, FAST).unwrap();
        let created = account::create(
            &store,
            &Handle::parse("bob").unwrap(),
            &RelayUrl::parse("wss://relay.example:7443").unwrap(),
            &Trust::System,
            TlsTermination::Relay,
            CREATED,
            &mut UnwrapErr(SysRng),
        )
        .unwrap();
        (tmp, store, created)
    }

    /// The first message of a session a contact starts from the bundle `upload` makes.
    fn prekey_message(account: &Account, upload: &PrekeyUpload) -> PrekeyMessage {
        let rng = &mut UnwrapErr(SysRng);
        let keys = AccountKeyPair::generate(rng);
        let device = DeviceKeyPair::generate(rng);
        let certificate = keys
            .certify_device(DeviceId::random(rng), &device, CREATED)
            .verify()
            .unwrap();
        let bundle = PrekeyBundle::new(
            account.certificate.certificate().clone(),
            upload.signed_prekey.clone().unwrap(),
            None,
            upload.last_resort_kem_prekey.clone().unwrap(),
        )
        .verify(account.account_key())
        .unwrap();
        let mut session = Session::initiate(&device, &certificate, &bundle, rng).unwrap();
        match session.encrypt(b"hello").unwrap() {
            SessionMessage::Prekey(message) => *message,
            SessionMessage::Ratchet(_) => panic!("a first message is a prekey message"),
        }
    }

    /// Whether this device can still accept `message` (every secret it names is there).
    fn accepts(store: &LocalStore, account: &Account, message: &PrekeyMessage) -> bool {
        LoadedPrekeys::load(store, account, message)
            .unwrap()
            .is_some()
    }

    /// Stages and commits a rotation at `now`, as a connection whose publish succeeded does.
    fn rotate(store: &LocalStore, account: &Account, now: u64) -> LongTermIds {
        stage(store, account, now, &mut UnwrapErr(SysRng))
            .unwrap()
            .expect("a rotation is due");
        commit(store, now).unwrap().unwrap()
    }

    #[test]
    fn the_pair_rotates_only_after_the_period_under_new_ids() {
        let (_tmp, store, created) = home();
        let account = &created.account;
        let rng = &mut UnwrapErr(SysRng);
        let due = CREATED + ROTATION_PERIOD;
        let old = current(&store);
        assert!(stage(&store, account, due - 1, rng).unwrap().is_none());

        let upload = stage(&store, account, due, rng).unwrap().unwrap();
        upload.verify(&account.device.signing_public()).unwrap();
        assert!(upload.one_time_prekeys.as_slice().is_empty());
        let ids = commit(&store, due).unwrap().unwrap();
        let record = account::load_record(&store).unwrap();
        assert_ne!(ids.signed, old.signed);
        assert_ne!(ids.last_resort_kem, old.last_resort_kem);
        assert_eq!(current_ids(&record), ids);
        assert_eq!(
            upload.signed_prekey.as_ref().map(|p| p.id()),
            Some(ids.signed)
        );
        assert_eq!(
            upload.last_resort_kem_prekey.as_ref().map(|p| p.id()),
            Some(ids.last_resort_kem)
        );
        // The new last-resort KEM id was taken from the shared id space: no one-time KEM
        // prekey made before or after it has the same id.
        assert!(
            created
                .upload
                .one_time_kem_prekeys
                .as_slice()
                .iter()
                .all(|p| p.id() < ids.last_resort_kem)
        );
        let mut record = record;
        let more = generate_one_time(&mut Batch::new(), &mut record, &account.device, 3, rng);
        assert!(
            more.one_time_kem_prekeys
                .as_slice()
                .iter()
                .all(|p| p.id() > ids.last_resort_kem)
        );

        // The new pair is current for a whole period again.
        assert!(
            stage(&store, account, due + ROTATION_PERIOD - 1, rng)
                .unwrap()
                .is_none()
        );
        assert!(
            stage(&store, account, due + ROTATION_PERIOD, rng)
                .unwrap()
                .is_some()
        );
    }

    /// The ids of the current pair.
    fn current(store: &LocalStore) -> LongTermIds {
        current_ids(&account::load_record(store).unwrap())
    }

    #[test]
    fn a_replaced_pair_decrypts_during_the_grace_period_and_is_deleted_after() {
        let (_tmp, store, created) = home();
        let account = &created.account;
        let old_message = prekey_message(account, &created.upload);
        let old = current(&store);
        let rotated_at = CREATED + ROTATION_PERIOD;
        let ids = rotate(&store, account, rotated_at);

        // A contact that fetched the old bundle before the rotation still gets through.
        assert!(accepts(&store, account, &old_message));
        let prekeys = LoadedPrekeys::load(&store, account, &old_message)
            .unwrap()
            .unwrap();
        let mut batch = Batch::new();
        prekeys.consume(&mut batch);
        assert!(batch.is_empty(), "long-term prekeys are not consumed");

        // Still there the second before the grace period ends (a later rotation in between
        // does not delete it early)...
        let rng = &mut UnwrapErr(SysRng);
        let last_second = rotated_at + GRACE_PERIOD - 1;
        stage(&store, account, last_second, rng).unwrap();
        commit(&store, last_second).unwrap();
        assert!(accepts(&store, account, &old_message));

        // ...and gone once it is over, secrets included.
        stage(&store, account, rotated_at + GRACE_PERIOD, rng).unwrap();
        assert!(!accepts(&store, account, &old_message));
        assert!(
            get32(&store, PrekeySlot::Signed, old.signed)
                .unwrap()
                .is_none()
        );
        assert!(
            get64(&store, PrekeySlot::LastResortKem, old.last_resort_kem)
                .unwrap()
                .is_none()
        );
        // The pair that replaced it (retired at `last_second`) is still kept.
        assert!(
            get32(&store, PrekeySlot::Signed, ids.signed)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_crash_before_the_relay_confirmed_keeps_the_old_pair_current() {
        let (_tmp, store, created) = home();
        let account = &created.account;
        let old_message = prekey_message(account, &created.upload);
        let rng = &mut UnwrapErr(SysRng);
        let due = CREATED + ROTATION_PERIOD;
        let before = current(&store);
        let staged = stage(&store, account, due, rng).unwrap().unwrap();
        // The device stops here: the relay may or may not have received the new pair.

        assert_eq!(current(&store), before);
        assert!(accepts(&store, account, &old_message));
        // Had the relay stored the new pair, messages built on it decrypt too.
        assert!(accepts(&store, account, &prekey_message(account, &staged)));

        // The next connection publishes the same pair again rather than making another.
        let again = stage(&store, account, due + 60, rng).unwrap().unwrap();
        assert_eq!(again, staged);
        let ids = commit(&store, due + 60).unwrap().unwrap();
        assert_eq!(Some(ids.signed), staged.signed_prekey.map(|p| p.id()));
        assert!(accepts(&store, account, &old_message));
    }

    #[test]
    fn a_home_from_before_rotation_rotates_one_period_after_the_upgrade() {
        let (_tmp, store, created) = home();
        let account = &created.account;
        let mut batch = Batch::new();
        batch.remove(Table::Account, ROTATION_GROUP, &[]);
        store.apply(batch).unwrap();

        // Years later, the first connection with the new version: not due yet.
        let upgraded = CREATED + 100 * ROTATION_PERIOD;
        let rng = &mut UnwrapErr(SysRng);
        assert!(stage(&store, account, upgraded, rng).unwrap().is_none());
        assert!(
            stage(&store, account, upgraded + ROTATION_PERIOD - 1, rng)
                .unwrap()
                .is_none()
        );
        assert!(
            stage(&store, account, upgraded + ROTATION_PERIOD, rng)
                .unwrap()
                .is_some()
        );
    }
}
