//! Shared fixtures for the protocol integration tests: devices with certificates and prekeys,
//! built from a seeded RNG so failures reproduce.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kith_protocol::rand_core::SeedableRng;
use kith_protocol::*;
use rand_chacha::ChaCha20Rng;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// One device of one account, with a full set of prekeys.
pub struct Device {
    pub account: AccountKeyPair,
    pub keys: DeviceKeyPair,
    pub certificate: VerifiedCertificate,
    pub signed_prekey: SignedPrekeySecret,
    pub one_time_prekey: OneTimePrekeySecret,
    pub kem_prekey: KemPrekeySecret,
    pub last_resort_kem: KemPrekeySecret,
}

impl Device {
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        let account = AccountKeyPair::generate(rng);
        let keys = DeviceKeyPair::generate(rng);
        let certificate = account
            .certify_device(DeviceId::random(rng), &keys, 1_700_000_000)
            .verify()
            .expect("fresh certificate verifies");
        let signed_prekey = SignedPrekeySecret::generate(1, &keys, rng);
        let one_time_prekey = OneTimePrekeySecret::generate(100, rng);
        let kem_prekey = KemPrekeySecret::generate(200, KemPrekeyKind::OneTime, &keys, rng);
        let last_resort_kem = KemPrekeySecret::generate(1, KemPrekeyKind::LastResort, &keys, rng);
        Self {
            account,
            keys,
            certificate,
            signed_prekey,
            one_time_prekey,
            kem_prekey,
            last_resort_kem,
        }
    }

    /// The bundle the relay would hand out (with one-time prekeys).
    pub fn bundle(&self) -> PrekeyBundle {
        PrekeyBundle::new(
            self.certificate.certificate().clone(),
            self.signed_prekey.public().clone(),
            Some(self.one_time_prekey.public().clone()),
            self.kem_prekey.public().clone(),
        )
    }

    /// The bundle once one-time prekeys have run out.
    pub fn last_resort_bundle(&self) -> PrekeyBundle {
        PrekeyBundle::new(
            self.certificate.certificate().clone(),
            self.signed_prekey.public().clone(),
            None,
            self.last_resort_kem.public().clone(),
        )
    }

    /// The prekey secrets named by `message`.
    pub fn prekeys_for(&self, message: &PrekeyMessage) -> ResponderPrekeys<'_> {
        ResponderPrekeys {
            signed_prekey: &self.signed_prekey,
            one_time_prekey: message.one_time_prekey_id().map(|_| &self.one_time_prekey),
            kem_prekey: if message.kem_prekey_id() == self.kem_prekey.public().id()
                && message.one_time_prekey_id().is_some()
            {
                &self.kem_prekey
            } else {
                &self.last_resort_kem
            },
        }
    }
}

/// Alice (initiator) and Bob (responder) with an established pair of sessions: Alice sent
/// "hello", Bob accepted it.
pub struct Pair {
    pub alice: Device,
    pub bob: Device,
    pub alice_session: Session,
    pub bob_session: Session,
    pub rng: ChaCha20Rng,
}

pub fn established_pair(seed: u64) -> Pair {
    let mut rng = rng(seed);
    let alice = Device::new(&mut rng);
    let bob = Device::new(&mut rng);
    let bundle = bob
        .bundle()
        .verify(bob.certificate.account_key())
        .expect("bundle verifies");
    let mut alice_session =
        Session::initiate(&alice.keys, &alice.certificate, &bundle, &mut rng).expect("initiate");
    let first = alice_session.encrypt(b"hello").expect("encrypt");
    let SessionMessage::Prekey(prekey) = &first else {
        panic!("first message must be a prekey message")
    };
    let (bob_session, plaintext) = Session::respond(
        &bob.keys,
        &bob.certificate,
        &bob.prekeys_for(prekey),
        &alice.certificate,
        prekey,
        &mut rng,
    )
    .expect("respond");
    assert_eq!(plaintext, b"hello");
    Pair {
        alice,
        bob,
        alice_session,
        bob_session,
        rng,
    }
}
