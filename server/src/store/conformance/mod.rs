//! The conformance suite: what every [`Store`] engine must do, written once, generic over the
//! trait.
//!
//! Each case is a `pub async fn` taking a fresh, empty store (the durability case takes a
//! function that opens the *same* store again). An engine runs them one `#[tokio::test]` each
//! (see `store/sled/tests.rs`), or all at once with [`run_all`]. Cases spawn tasks, so run them
//! on a multi-threaded runtime. Built for this crate's tests and with the `conformance` feature.
//!
//! Engine-specific checks (damaged bytes on disk, directory locks) live with the engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed assertion is the point"
)]

mod accounts;
mod mailbox;
mod prekeys;

use std::future::Future;

use kith_protocol::rand_core::CryptoRng;
use kith_protocol::{
    AccountKeyPair, DeviceId, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret, OneTimePrekeySecret,
    SignedPrekeySecret, VerifiedCertificate,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

pub use self::accounts::{
    account_and_handle_uniqueness, add_devices_up_to_limit, invite_use_is_atomic,
    invites_valid_exhausted_expired,
};
pub use self::mailbox::{
    concurrent_enqueues_keep_order, durability_across_reopen, enqueue_is_idempotent,
    enqueue_list_ack, expiry_deletes_entries_bodies_and_keys, mailbox_quota_is_all_or_nothing,
};
pub use self::prekeys::{bundle_material_is_handed_out_once, prekeys_publish_and_count};
use crate::store::{InviteTokenHash, NewAccount, Prekeys, Store};

/// The "now" of the suite, in Unix seconds.
pub const NOW: u64 = 1_700_000_000;

/// Runs every case except [`durability_across_reopen`], each on a store from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    account_and_handle_uniqueness(fresh().await).await;
    add_devices_up_to_limit(fresh().await).await;
    invites_valid_exhausted_expired(fresh().await).await;
    invite_use_is_atomic(fresh().await).await;
    prekeys_publish_and_count(fresh().await).await;
    bundle_material_is_handed_out_once(fresh().await).await;
    enqueue_list_ack(fresh().await).await;
    enqueue_is_idempotent(fresh().await).await;
    mailbox_quota_is_all_or_nothing(fresh().await).await;
    expiry_deletes_entries_bodies_and_keys(fresh().await).await;
    concurrent_enqueues_keep_order(fresh().await).await;
}

/// A deterministic RNG for test keys.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A test device: its keys and the certificate its account signed.
#[derive(Debug)]
pub struct TestDevice {
    /// The device key pair (signs prekeys).
    pub keys: DeviceKeyPair,
    /// The verified certificate.
    pub certificate: VerifiedCertificate,
}

impl TestDevice {
    /// The device id.
    pub fn id(&self) -> DeviceId {
        self.certificate.device_id()
    }

    /// A new device of `account`.
    pub fn new<R: CryptoRng>(account: &AccountKeyPair, rng: &mut R) -> Self {
        let keys = DeviceKeyPair::generate(rng);
        let id = DeviceId::random(rng);
        let certificate = account.certify_device(id, &keys, NOW).verify().unwrap();
        Self { keys, certificate }
    }

    /// Prekeys of this device: a signed and a last-resort one, and one-time ones with ids
    /// `first..first + one_time` (X25519) and `first..first + one_time_kem` (ML-KEM).
    pub fn prekeys<R: CryptoRng>(
        &self,
        first: u32,
        one_time: u32,
        one_time_kem: u32,
        rng: &mut R,
    ) -> Prekeys {
        let kem = |id, kind, rng: &mut R| KemPrekeySecret::generate(id, kind, &self.keys, rng);
        Prekeys {
            signed: Some(
                SignedPrekeySecret::generate(first, &self.keys, rng)
                    .public()
                    .clone(),
            ),
            last_resort_kem: Some(kem(first, KemPrekeyKind::LastResort, rng).public().clone()),
            one_time: (first..first + one_time)
                .map(|id| OneTimePrekeySecret::generate(id, rng).public().clone())
                .collect(),
            one_time_kem: (first..first + one_time_kem)
                .map(|id| kem(id, KemPrekeyKind::OneTime, rng).public().clone())
                .collect(),
        }
    }
}

/// The request that registers `device` under `handle`.
pub fn new_account(
    handle: &str,
    device: &TestDevice,
    invite: Option<InviteTokenHash>,
) -> NewAccount {
    NewAccount {
        handle: handle.to_owned(),
        certificate: device.certificate.clone(),
        invite,
        now: NOW,
    }
}

/// Registers a new account with one device under `handle`; returns the device.
pub async fn register<S: Store, R: CryptoRng>(store: &S, handle: &str, rng: &mut R) -> TestDevice {
    let account = AccountKeyPair::generate(rng);
    let device = TestDevice::new(&account, rng);
    store
        .create_account(new_account(handle, &device, None))
        .await
        .unwrap();
    device
}
