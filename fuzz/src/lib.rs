//! Shared pieces of Kith's fuzz targets: the decoder invariant, deterministic fixtures (built
//! once per process from seeded RNGs, so every input is cheap and every crash reproduces), and
//! the sealed-sender cipher for wrapping arbitrary plaintexts in valid envelopes.
//!
//! This is harness code: panicking is how it reports a broken invariant to libFuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;
use std::sync::OnceLock;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use hkdf::Hkdf;
use kith_protocol::consts::{PROTOCOL_VERSION, labels};
use kith_protocol::rand_core::SeedableRng;
use kith_protocol::wire::Handle;
use kith_protocol::{
    AccountKeyPair, BoundedString, DeviceId, DeviceKeyPair, GroupMessage, GroupState,
    KemPrekeyKind, KemPrekeySecret, Member, OneTimePrekeySecret, OwnSenderKey, PeerSenderKey,
    PrekeyBundle, PrekeyMessage, ResponderPrekeys, Session, SessionMessage, SignedPrekeySecret,
    VerifiedCertificate, VerifiedGroupState,
};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

/// A seeded RNG.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The decoder invariant for a type with a canonical encoding (SPEC.md §2): whatever decodes
/// re-encodes to exactly the input, and that encoding decodes to an equal value.
pub fn check_canonical<T: PartialEq + Debug, E: Debug, B: AsRef<[u8]>>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> B,
) -> Option<T> {
    let value = decode(data).ok()?;
    let encoded = encode(&value);
    assert_eq!(encoded.as_ref(), data, "decoded input is not canonical");
    let again = decode(encoded.as_ref()).expect("an encoding decodes");
    assert_eq!(again, value, "decode(encode(v)) != v");
    Some(value)
}

/// [`check_canonical`] for types without `PartialEq` (secret-holding states): compares the
/// re-encodings instead.
pub fn check_canonical_bytes<T, E: Debug, B: AsRef<[u8]>>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> B,
) -> Option<T> {
    let value = decode(data).ok()?;
    let encoded = encode(&value);
    assert_eq!(encoded.as_ref(), data, "decoded input is not canonical");
    let again = decode(encoded.as_ref()).expect("an encoding decodes");
    assert_eq!(encode(&again).as_ref(), data, "decode(encode(v)) differs");
    Some(value)
}

/// One device of one account with a full set of prekeys (as in protocol/tests/common).
pub struct Device {
    /// The account key.
    pub account: AccountKeyPair,
    /// The device's keys.
    pub keys: DeviceKeyPair,
    /// Its certificate.
    pub certificate: VerifiedCertificate,
    /// Signed prekey, id 1.
    pub signed_prekey: SignedPrekeySecret,
    /// One-time prekey, id 100.
    pub one_time_prekey: OneTimePrekeySecret,
    /// One-time ML-KEM prekey, id 200.
    pub kem_prekey: KemPrekeySecret,
    /// Last-resort ML-KEM prekey, id 1.
    pub last_resort_kem: KemPrekeySecret,
}

impl Device {
    /// A device from `rng`.
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        let account = AccountKeyPair::generate(rng);
        let keys = DeviceKeyPair::generate(rng);
        let certificate = account
            .certify_device(DeviceId::random(rng), &keys, 1_700_000_000)
            .verify()
            .expect("fresh certificate verifies");
        Self {
            signed_prekey: SignedPrekeySecret::generate(1, &keys, rng),
            one_time_prekey: OneTimePrekeySecret::generate(100, rng),
            kem_prekey: KemPrekeySecret::generate(200, KemPrekeyKind::OneTime, &keys, rng),
            last_resort_kem: KemPrekeySecret::generate(1, KemPrekeyKind::LastResort, &keys, rng),
            account,
            keys,
            certificate,
        }
    }

    /// The bundle the relay would hand out.
    pub fn bundle(&self) -> PrekeyBundle {
        PrekeyBundle::new(
            self.certificate.certificate().clone(),
            self.signed_prekey.public().clone(),
            Some(self.one_time_prekey.public().clone()),
            self.kem_prekey.public().clone(),
        )
    }

    /// The prekey secrets a prekey message names.
    pub fn prekeys_for(&self, message: &PrekeyMessage) -> ResponderPrekeys<'_> {
        ResponderPrekeys {
            signed_prekey: &self.signed_prekey,
            one_time_prekey: message.one_time_prekey_id().map(|_| &self.one_time_prekey),
            kem_prekey: if message.one_time_prekey_id().is_some() {
                &self.kem_prekey
            } else {
                &self.last_resort_kem
            },
        }
    }
}

/// Alice and Bob with established sessions (Alice sent "hello", Bob accepted it), persisted,
/// so each fuzz input restores fresh copies cheaply.
pub struct Pair {
    /// Alice's device.
    pub alice: Device,
    /// Bob's device.
    pub bob: Device,
    /// Alice's session, persisted.
    pub alice_session: Vec<u8>,
    /// Bob's session, persisted.
    pub bob_session: Vec<u8>,
    /// A few messages of the conversation, encoded: Alice's prekey messages, Bob's replies and
    /// Alice's ratchet messages after them.
    pub messages: Vec<Vec<u8>>,
}

/// The process-wide [`Pair`].
pub fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| build_pair(0x5eed))
}

fn build_pair(seed: u64) -> Pair {
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
    let (mut bob_session, _) = Session::respond(
        &bob.keys,
        &bob.certificate,
        &bob.prekeys_for(prekey),
        &alice.certificate,
        prekey,
        &mut rng,
    )
    .expect("respond");
    let snapshot = (
        alice_session.to_bytes().to_vec(),
        bob_session.to_bytes().to_vec(),
    );
    // Sample traffic for seeds, from copies: the fixture sessions stay at the snapshot.
    let mut messages = vec![first.to_bytes()];
    let second = alice_session.encrypt(b"second").expect("encrypt");
    messages.push(second.to_bytes());
    let reply = bob_session.encrypt(b"reply").expect("encrypt");
    alice_session
        .decrypt(&bob.certificate, &reply, &mut rng)
        .expect("reply decrypts");
    messages.push(reply.to_bytes());
    messages.push(
        alice_session
            .encrypt(b"ratchet")
            .expect("encrypt")
            .to_bytes(),
    );
    Pair {
        alice,
        bob,
        alice_session: snapshot.0,
        bob_session: snapshot.1,
        messages,
    }
}

/// The recipient of the sealed-sender target and a sender certificate.
pub struct SealedFixture {
    /// The recipient device.
    pub recipient: Device,
    /// A sender device.
    pub sender: Device,
}

/// The process-wide [`SealedFixture`].
pub fn sealed_fixture() -> &'static SealedFixture {
    static FIXTURE: OnceLock<SealedFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rng(0x5ea1);
        SealedFixture {
            recipient: Device::new(&mut rng),
            sender: Device::new(&mut rng),
        }
    })
}

/// The fixed ephemeral secret of [`seal_raw`].
const EPHEMERAL_SECRET: [u8; 32] = [0x42; 32];

/// Seals `plaintext` (taken as already padded) to `recipient` as sealed sender would
/// (SPEC.md §7), with a fixed ephemeral key: lets the fuzzer reach everything behind the AEAD.
pub fn seal_raw(recipient: &VerifiedCertificate, plaintext: &[u8]) -> Vec<u8> {
    let ephemeral = StaticSecret::from(EPHEMERAL_SECRET);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let recipient_key = *recipient.identity_key().as_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(recipient_key));
    let salt = [&ephemeral_public[..], &recipient_key[..]].concat();
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(labels::SEALED_SENDER_INFO, &mut okm)
        .expect("44 bytes is a valid HKDF length");
    let (key, nonce) = okm.split_at(32);
    let key: [u8; 32] = key.try_into().expect("32 bytes");
    let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
    let associated_data = [
        labels::SEALED_SENDER_AD,
        &[PROTOCOL_VERSION],
        &recipient_key[..],
        &ephemeral_public[..],
    ]
    .concat();
    let ciphertext = ChaCha20Poly1305::new(&Key::from(key))
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &associated_data,
            },
        )
        .expect("bounded plaintext");
    let mut envelope = vec![PROTOCOL_VERSION];
    envelope.extend_from_slice(&ephemeral_public);
    envelope.extend_from_slice(&ciphertext);
    envelope
}

/// Opens an envelope made by [`seal_raw`]-style sealing to `recipient` with `ephemeral_secret`
/// (for the seed generator: recovers the padded plaintext of a real envelope).
pub fn unseal_with(
    recipient: &VerifiedCertificate,
    ephemeral_secret: [u8; 32],
    envelope: &[u8],
) -> Option<Vec<u8>> {
    let ephemeral = StaticSecret::from(ephemeral_secret);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    if envelope.get(1..33)? != ephemeral_public {
        return None;
    }
    let recipient_key = *recipient.identity_key().as_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(recipient_key));
    let salt = [&ephemeral_public[..], &recipient_key[..]].concat();
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(labels::SEALED_SENDER_INFO, &mut okm)
        .ok()?;
    let (key, nonce) = okm.split_at(32);
    let key: [u8; 32] = key.try_into().ok()?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let associated_data = [
        labels::SEALED_SENDER_AD,
        &[PROTOCOL_VERSION],
        &recipient_key[..],
        &ephemeral_public[..],
    ]
    .concat();
    ChaCha20Poly1305::new(&Key::from(key))
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &envelope[33..],
                aad: &associated_data,
            },
        )
        .ok()
}

/// A group, its members' sender keys and a few messages, for the group targets.
pub struct GroupFixture {
    /// The verified genesis state (three members).
    pub state: VerifiedGroupState,
    /// A successor state, signed by the creator.
    pub successor: kith_protocol::SignedGroupState,
    /// The creator's own sender key, persisted, before any message.
    pub own_key: Vec<u8>,
    /// The receiving side of that key, persisted, before any message.
    pub peer_key: Vec<u8>,
    /// The receiving side after messages 0 and 3 arrived (so it holds skipped keys).
    pub peer_key_with_skipped: Vec<u8>,
    /// Messages 0..4 of the sender key, encoded.
    pub messages: Vec<Vec<u8>>,
    /// The sender key distribution, as content.
    pub distribution_content: Vec<u8>,
}

/// The process-wide [`GroupFixture`].
pub fn group_fixture() -> &'static GroupFixture {
    static FIXTURE: OnceLock<GroupFixture> = OnceLock::new();
    FIXTURE.get_or_init(build_group)
}

fn build_group() -> GroupFixture {
    let mut rng = rng(0x6209);
    let creator = AccountKeyPair::generate(&mut rng);
    let creator_device = DeviceId::random(&mut rng);
    let others: Vec<Member> = ["alice", "bob"]
        .iter()
        .map(|name| Member {
            account_key: AccountKeyPair::generate(&mut rng).public_key(),
            handle: Handle::parse(name).expect("valid handle"),
            admin: false,
        })
        .collect();
    let genesis = GroupState::genesis(
        BoundedString::new("Tuesday circle").expect("short name"),
        &creator,
        Handle::parse("facilitator").expect("valid handle"),
        others.clone(),
        &mut rng,
    )
    .expect("genesis");
    let state = genesis.verify_genesis().expect("genesis verifies");
    let successor = state
        .successor(
            kith_protocol::GroupChange::Rename(
                BoundedString::new("Wednesday circle").expect("short name"),
            ),
            &creator,
            &mut rng,
        )
        .expect("rename");
    let mut own = OwnSenderKey::generate(state.state().group_id(), state.state().epoch(), &mut rng);
    let distribution = own.distribution();
    let creator_key = creator.public_key();
    let peer = PeerSenderKey::from_distribution(&distribution, creator_key, creator_device);
    let own_key = own.to_bytes().to_vec();
    let peer_key = peer.to_bytes().to_vec();
    let messages: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            own.encrypt((&creator_key, creator_device), &[i; 24])
                .expect("encrypt")
                .to_bytes()
        })
        .collect();
    let mut receiving = PeerSenderKey::from_bytes(&peer_key).expect("peer key");
    for index in [0, 3] {
        let message = GroupMessage::from_bytes(&messages[index]).expect("message");
        receiving.decrypt(&message).expect("decrypts");
    }
    let distribution_content = kith_protocol::Content {
        message_id: [9; 16],
        sent_at: 1_700_000_000,
        sender: Handle::parse("facilitator").expect("valid handle"),
        body: kith_protocol::Body::SenderKey(distribution),
    }
    .to_bytes()
    .to_vec();
    GroupFixture {
        state,
        successor,
        own_key,
        peer_key,
        peer_key_with_skipped: receiving.to_bytes().to_vec(),
        messages,
        distribution_content,
    }
}
