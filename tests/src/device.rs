//! Test devices: an account key, device keys, a certificate and the prekey secrets behind what
//! the device publishes, all from a seeded RNG so failures reproduce.

use std::collections::BTreeMap;

use kith_protocol::rand_core::SeedableRng;
use kith_protocol::wire::{Handle, PrekeyUpload};
use kith_protocol::{
    AccountKeyPair, AccountPublicKey, BoundedVec, DeviceId, DeviceKeyPair, KemPrekeyKind,
    KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, PrekeyId, PrekeyMessage, ResponderPrekeys,
    Session, SessionMessage, SignedPrekeySecret, VerifiedCertificate,
};
use rand_chacha::ChaCha20Rng;

/// Id of every test device's signed prekey.
pub const SIGNED_PREKEY_ID: PrekeyId = 1;
/// Id of every test device's last-resort ML-KEM prekey. One-time ML-KEM prekeys start at
/// [`FIRST_ONE_TIME_KEM_ID`], so the id alone tells the kinds apart.
pub const LAST_RESORT_KEM_ID: PrekeyId = 1;
/// First id of the one-time ML-KEM prekeys (they share the id space with the last-resort one).
pub const FIRST_ONE_TIME_KEM_ID: PrekeyId = 1000;
/// First id of the one-time X25519 prekeys.
pub const FIRST_ONE_TIME_ID: PrekeyId = 100;

/// A seeded RNG.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// One device of one account, with its handle and every prekey secret it has published.
pub struct TestDevice {
    /// The account's handle.
    pub handle: Handle,
    /// The account key (shared by every device of the account).
    pub account: AccountKeyPair,
    /// This device's keys.
    pub keys: DeviceKeyPair,
    /// The account's certificate for this device.
    pub certificate: VerifiedCertificate,
    /// The signed X25519 prekey.
    pub signed_prekey: SignedPrekeySecret,
    /// The last-resort ML-KEM prekey.
    pub last_resort_kem: KemPrekeySecret,
    /// One-time X25519 prekeys generated so far, by id.
    pub one_time: BTreeMap<PrekeyId, OneTimePrekeySecret>,
    /// One-time ML-KEM prekeys generated so far, by id.
    pub one_time_kem: BTreeMap<PrekeyId, KemPrekeySecret>,
    /// The device's RNG (seeded).
    pub rng: ChaCha20Rng,
    next_one_time: PrekeyId,
    next_one_time_kem: PrekeyId,
}

impl TestDevice {
    /// A new account with one device and `one_time` one-time prekeys of each kind.
    pub fn new(handle: &str, seed: u64, one_time: usize) -> Self {
        let mut rng = rng(seed);
        let account = AccountKeyPair::generate(&mut rng);
        Self::with_account(handle, account, rng, one_time)
    }

    /// A further device of this device's account.
    pub fn another_device(&self, seed: u64, one_time: usize) -> Self {
        let account = AccountKeyPair::from_secret_bytes(&self.account.to_secret_bytes());
        Self::with_account(self.handle.as_str(), account, rng(seed), one_time)
    }

    fn with_account(
        handle: &str,
        account: AccountKeyPair,
        mut rng: ChaCha20Rng,
        one_time: usize,
    ) -> Self {
        let keys = DeviceKeyPair::generate(&mut rng);
        let certificate = account
            .certify_device(DeviceId::random(&mut rng), &keys, 1_700_000_000)
            .verify()
            .expect("a fresh certificate verifies");
        let signed_prekey = SignedPrekeySecret::generate(SIGNED_PREKEY_ID, &keys, &mut rng);
        let last_resort_kem = KemPrekeySecret::generate(
            LAST_RESORT_KEM_ID,
            KemPrekeyKind::LastResort,
            &keys,
            &mut rng,
        );
        let mut device = Self {
            handle: Handle::parse(handle).expect("a valid test handle"),
            account,
            keys,
            certificate,
            signed_prekey,
            last_resort_kem,
            one_time: BTreeMap::new(),
            one_time_kem: BTreeMap::new(),
            rng,
            next_one_time: FIRST_ONE_TIME_ID,
            next_one_time_kem: FIRST_ONE_TIME_KEM_ID,
        };
        device.generate_one_time(one_time);
        device
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.certificate.device_id()
    }

    /// The account's public key.
    pub fn account_key(&self) -> AccountPublicKey {
        *self.certificate.account_key()
    }

    /// Everything published at registration: the signed and last-resort prekeys and every
    /// one-time prekey generated so far.
    pub fn registration_upload(&self) -> PrekeyUpload {
        PrekeyUpload {
            signed_prekey: Some(self.signed_prekey.public().clone()),
            last_resort_kem_prekey: Some(self.last_resort_kem.public().clone()),
            ..self.one_time_upload(&self.one_time_ids(), &self.one_time_kem_ids())
        }
    }

    /// Generates `count` new one-time prekeys of each kind and returns their upload.
    pub fn more_prekeys(&mut self, count: usize) -> PrekeyUpload {
        let (ids, kem_ids) = self.generate_one_time(count);
        self.one_time_upload(&ids, &kem_ids)
    }

    fn generate_one_time(&mut self, count: usize) -> (Vec<PrekeyId>, Vec<PrekeyId>) {
        let mut ids = Vec::with_capacity(count);
        let mut kem_ids = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_one_time;
            self.next_one_time += 1;
            let secret = OneTimePrekeySecret::generate(id, &mut self.rng);
            self.one_time.insert(id, secret);
            ids.push(id);
            let kem_id = self.next_one_time_kem;
            self.next_one_time_kem += 1;
            let secret = KemPrekeySecret::generate(
                kem_id,
                KemPrekeyKind::OneTime,
                &self.keys,
                &mut self.rng,
            );
            self.one_time_kem.insert(kem_id, secret);
            kem_ids.push(kem_id);
        }
        (ids, kem_ids)
    }

    fn one_time_ids(&self) -> Vec<PrekeyId> {
        self.one_time.keys().copied().collect()
    }

    fn one_time_kem_ids(&self) -> Vec<PrekeyId> {
        self.one_time_kem.keys().copied().collect()
    }

    fn one_time_upload(&self, ids: &[PrekeyId], kem_ids: &[PrekeyId]) -> PrekeyUpload {
        let one_time = ids
            .iter()
            .map(|id| self.one_time[id].public().clone())
            .collect();
        let kem = kem_ids
            .iter()
            .map(|id| self.one_time_kem[id].public().clone())
            .collect();
        PrekeyUpload {
            signed_prekey: None,
            last_resort_kem_prekey: None,
            one_time_prekeys: BoundedVec::new(one_time).expect("at most 100 one-time prekeys"),
            one_time_kem_prekeys: BoundedVec::new(kem).expect("at most 100 one-time KEM prekeys"),
        }
    }

    /// The prekey secrets a prekey message names (the responder side of a session).
    pub fn responder_prekeys(&self, message: &PrekeyMessage) -> ResponderPrekeys<'_> {
        assert_eq!(message.signed_prekey_id(), SIGNED_PREKEY_ID);
        let kem_id = message.kem_prekey_id();
        ResponderPrekeys {
            signed_prekey: &self.signed_prekey,
            one_time_prekey: message.one_time_prekey_id().map(|id| {
                self.one_time
                    .get(&id)
                    .expect("a one-time prekey this device made")
            }),
            kem_prekey: if kem_id == LAST_RESORT_KEM_ID {
                &self.last_resort_kem
            } else {
                self.one_time_kem
                    .get(&kem_id)
                    .expect("a KEM prekey this device made")
            },
        }
    }

    /// Verifies `bundle` (a bundle of `account`) and starts a session with its device.
    pub fn initiate(&mut self, account: &AccountPublicKey, bundle: &PrekeyBundle) -> Session {
        let bundle = bundle.verify(account).expect("the relay's bundle verifies");
        Session::initiate(&self.keys, &self.certificate, &bundle, &mut self.rng)
            .expect("a session starts from a verified bundle")
    }
}

/// Which one-time prekeys a bundle hands out: `(one-time X25519 id, ML-KEM id)`. Read from the
/// first message of a session started from it (the bundle's fields are private).
pub fn bundle_prekey_ids(
    initiator: &mut TestDevice,
    account: &AccountPublicKey,
    bundle: &PrekeyBundle,
) -> (Option<PrekeyId>, PrekeyId) {
    let mut session = initiator.initiate(account, bundle);
    match session.encrypt(b"probe").expect("encrypt") {
        SessionMessage::Prekey(message) => (message.one_time_prekey_id(), message.kem_prekey_id()),
        SessionMessage::Ratchet(_) => panic!("a new session's first message is a prekey message"),
    }
}
