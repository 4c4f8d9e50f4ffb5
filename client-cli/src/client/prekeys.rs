//! Prekey secrets: generated here, published to the relay, looked up when a contact starts a
//! session, and deleted after one use (one-time prekeys).

use kith_protocol::consts::MAX_PREKEYS_PER_UPLOAD;
use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::{PrekeyUpload, Request, Response};
use kith_protocol::{
    BoundedVec, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret, OneTimePrekeySecret, PrekeyMessage,
    ResponderPrekeys, SignedPrekeySecret,
};
use zeroize::Zeroizing;

use super::account::{self, Account};
use super::records::{AccountRecord, PrekeySlot};
use crate::error::Error;
use crate::relay::Link;
use crate::store::{Batch, LocalStore, StoreError, Table};

/// One-time prekeys of each kind published at registration.
pub(super) const INITIAL_ONE_TIME_PREKEYS: usize = MAX_PREKEYS_PER_UPLOAD;
/// One-time prekeys of each kind published when the relay says it is running low.
pub(super) const TOP_UP_PREKEYS: usize = MAX_PREKEYS_PER_UPLOAD;

/// Generates the signed prekey and the last-resort ML-KEM prekey, adds their secrets to `batch`
/// and returns their upload (without one-time prekeys).
pub(super) fn generate_long_term<R: CryptoRng + ?Sized>(
    batch: &mut Batch,
    record: &AccountRecord,
    device: &DeviceKeyPair,
    rng: &mut R,
) -> PrekeyUpload {
    let signed = SignedPrekeySecret::generate(record.signed_prekey_id, device, rng);
    put(
        batch,
        PrekeySlot::Signed,
        record.signed_prekey_id,
        &*signed.to_secret_bytes(),
    );
    let kem = KemPrekeySecret::generate(
        record.last_resort_kem_id,
        KemPrekeyKind::LastResort,
        device,
        rng,
    );
    put(
        batch,
        PrekeySlot::LastResortKem,
        record.last_resort_kem_id,
        &*kem.to_secret_bytes(),
    );
    PrekeyUpload {
        signed_prekey: Some(signed.public().clone()),
        last_resort_kem_prekey: Some(kem.public().clone()),
        one_time_prekeys: BoundedVec::default(),
        one_time_kem_prekeys: BoundedVec::default(),
    }
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
        record.next_one_time_kem_id = kem_id.wrapping_add(1).max(record.last_resort_kem_id + 1);
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
    /// Loads the secrets `message` names; `None` if any is gone (used already, or never ours).
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
        let kem_id = message.kem_prekey_id();
        let (slot, kind) = if kem_id == account.last_resort_kem_id {
            (PrekeySlot::LastResortKem, KemPrekeyKind::LastResort)
        } else {
            (PrekeySlot::OneTimeKem, KemPrekeyKind::OneTime)
        };
        let Some(seed) = get64(store, slot, kem_id)? else {
            return Ok(None);
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
