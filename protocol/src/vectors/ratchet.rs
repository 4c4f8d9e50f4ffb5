//! `ratchet.json`: the first messages of a session, both directions, one reordering
//! (SPEC.md §6).

use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use super::fixtures::{Party, PartyRecord, Prekeys, PrekeysRecord};
use super::ratchet_spec::SpecSession;
use super::{ScriptedRng, check_against_file, draw, hex, seeded, unhex, unhex_vec};
use crate::keys::KemPrekeyKind;
use crate::ratchet::Header;
use crate::session::{Session, SessionMessage};

const SEED: u64 = 3;

const DESCRIPTION: &str = "Double Ratchet session (SPEC.md §6) between alice and bob, started \
    with PQXDH (SPEC.md §5, see pqxdh.json) from bob_prekeys (with a one-time prekey). \
    randomness lists every random value the two sessions draw, in order: Alice's \
    Session::initiate draws alice_ephemeral_secret (EK_A), kem_encapsulation_randomness (FIPS \
    203 m) and alice_ratchet_secret_0; Bob draws bob_ratchet_secret_1 on receiving m0; Alice \
    draws alice_ratchet_secret_1 on receiving r0; Bob draws bob_ratchet_secret_2 on receiving \
    m3. shared_secret is SK. key_schedule lists the KDF_RK steps: (new_root_key, chain_key) = \
    HKDF-SHA256(salt = root_key, ikm = dh_output, info = \"Kith-v1 ratchet root\"), 64 bytes; \
    step 0 starts from SK with DH(alice_ratchet_secret_0, signed prekey); each later step \
    starts from the previous new_root_key with DH(next ratchet secret, the peer's current \
    ratchet public key). Chains: message N of a chain uses CK_N, CK_0 = chain_key, CK_{i+1} = \
    HMAC-SHA256(CK_i, 0x02); message_key = HMAC-SHA256(CK_N, 0x01); aead_key || aead_nonce = \
    HKDF-SHA256(salt = 0x00 x 32, ikm = message_key, info = \"Kith-v1 message keys\"), 32 + 12 \
    bytes; associated_data = 0x01 || sender (account_public || device_id || identity_public) \
    || recipient (same) || ratchet_key || previous_chain_length:u32 BE || message_number:u32 \
    BE; ciphertext = ChaCha20-Poly1305(aead_key, aead_nonce, plaintext, associated_data). \
    session_message = 0x01 || tag varint (0 Prekey: followed by PrekeyInit; 1 Ratchet) || \
    ratchet_key || previous_chain_length varint || message_number varint || ciphertext length \
    varint || ciphertext. Alice sends prekey messages until she has received r0. Messages are \
    listed in sending order; bob receives them in delivery_order_to_bob (m3 before m2: m2 is \
    decrypted with a skipped message key), alice receives r0 after bob received m1.";

/// One planned message: name, sender, chain (index into the sending chains), PN, N, text.
pub(super) struct Planned {
    pub(super) name: &'static str,
    pub(super) from_alice: bool,
    pub(super) chain: usize,
    pub(super) previous_chain_length: u32,
    pub(super) message_number: u32,
    pub(super) plaintext: &'static [u8],
}

pub(super) const PLAN: [Planned; 5] = [
    planned("m0", true, 0, 0, 0, b"Hi Bob, this is Alice."),
    planned("m1", true, 0, 0, 1, b"Are you around this week?"),
    planned("r0", false, 1, 0, 0, b"Hi Alice! Yes, Thursday works."),
    planned("m2", true, 2, 2, 0, b"Great, see you then."),
    planned("m3", true, 2, 2, 1, b""),
];

const fn planned(
    name: &'static str,
    from_alice: bool,
    chain: usize,
    previous_chain_length: u32,
    message_number: u32,
    plaintext: &'static [u8],
) -> Planned {
    Planned {
        name,
        from_alice,
        chain,
        previous_chain_length,
        message_number,
        plaintext,
    }
}

const DELIVERY_ORDER_TO_BOB: [&str; 4] = ["m0", "m1", "m3", "m2"];

#[derive(Serialize, Deserialize)]
struct RatchetVector {
    description: String,
    alice: PartyRecord,
    bob: PartyRecord,
    bob_prekeys: PrekeysRecord,
    randomness: Randomness,
    kem_shared_secret: String,
    shared_secret: String,
    key_schedule: Vec<RootStep>,
    messages: Vec<MessageRecord>,
    delivery_order_to_bob: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Randomness {
    pub(super) alice_ephemeral_secret: String,
    pub(super) kem_encapsulation_randomness: String,
    alice_ratchet_secret_0: String,
    bob_ratchet_secret_1: String,
    alice_ratchet_secret_1: String,
    bob_ratchet_secret_2: String,
}

impl Randomness {
    pub(super) fn bytes(&self) -> [[u8; 32]; 6] {
        [
            &self.alice_ephemeral_secret,
            &self.kem_encapsulation_randomness,
            &self.alice_ratchet_secret_0,
            &self.bob_ratchet_secret_1,
            &self.alice_ratchet_secret_1,
            &self.bob_ratchet_secret_2,
        ]
        .map(|h| unhex(h))
    }

    /// The ratchet secrets in the order they take part in the key schedule.
    pub(super) fn ratchet_secrets(&self) -> [[u8; 32]; 4] {
        let [_, _, a0, b1, a1, b2] = self.bytes();
        [a0, b1, a1, b2]
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RootStep {
    /// Which DH this step uses, and whose sending chain `chain_key` starts.
    pub(super) step: String,
    pub(super) root_key: String,
    pub(super) dh_output: String,
    pub(super) new_root_key: String,
    pub(super) chain_key: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct MessageRecord {
    pub(super) name: String,
    pub(super) sender: String,
    pub(super) plaintext: String,
    pub(super) ratchet_key: String,
    pub(super) previous_chain_length: u32,
    pub(super) message_number: u32,
    pub(super) chain_key: String,
    pub(super) message_key: String,
    pub(super) aead_key: String,
    pub(super) aead_nonce: String,
    pub(super) associated_data: String,
    pub(super) ciphertext: String,
    pub(super) session_message: String,
}

fn compute() -> RatchetVector {
    let mut rng = seeded(SEED);
    let alice = Party::draw(&mut rng);
    let bob = Party::draw(&mut rng);
    let prekeys = Prekeys::draw(
        &mut rng,
        &bob.device,
        Some(100),
        (200, KemPrekeyKind::OneTime),
    );
    let randomness = draw_randomness(&mut rng);
    let sent = run_sessions(&alice, &bob, &prekeys, &randomness.bytes());

    let (alice, bob, bob_prekeys) = (alice.record(), bob.record(), prekeys.record(&bob));
    let spec = SpecSession::new(&alice, &bob, &bob_prekeys, &randomness);
    let messages = PLAN
        .iter()
        .zip(&sent)
        .map(|(plan, message)| {
            let mut record = spec.message(plan);
            // Header, ciphertext and encoding come from the crate's session, keys from the spec.
            let (header, ciphertext) = header_and_ciphertext(message);
            record.ratchet_key = hex(header.ratchet_key);
            record.previous_chain_length = header.previous_chain_length;
            record.message_number = header.message_number;
            record.ciphertext = hex(ciphertext);
            record.session_message = hex(message.to_bytes());
            record
        })
        .collect();
    RatchetVector {
        description: DESCRIPTION.to_owned(),
        kem_shared_secret: hex(spec.kem_secret),
        shared_secret: hex(spec.shared_secret),
        key_schedule: spec.steps,
        messages,
        delivery_order_to_bob: DELIVERY_ORDER_TO_BOB.map(str::to_owned).to_vec(),
        alice,
        bob,
        bob_prekeys,
        randomness,
    }
}

fn draw_randomness(rng: &mut ChaCha20Rng) -> Randomness {
    let mut next = || hex(draw::<32>(rng));
    Randomness {
        alice_ephemeral_secret: next(),
        kem_encapsulation_randomness: next(),
        alice_ratchet_secret_0: next(),
        bob_ratchet_secret_1: next(),
        alice_ratchet_secret_1: next(),
        bob_ratchet_secret_2: next(),
    }
}

fn header_and_ciphertext(message: &SessionMessage) -> (Header, &[u8]) {
    let inner = match message {
        SessionMessage::Prekey(prekey) => &prekey.message,
        SessionMessage::Ratchet(message) => message,
    };
    (inner.header, inner.ciphertext.as_slice())
}

/// Runs both sessions through the crate's public API, with the scripted randomness, and returns
/// the messages in sending order (m0, m1, r0, m2, m3).
fn run_sessions(
    alice: &Party,
    bob: &Party,
    prekeys: &Prekeys,
    randomness: &[[u8; 32]; 6],
) -> Vec<SessionMessage> {
    let [ek, m, a0, b1, a1, b2] = randomness;
    let (_, bundle) = prekeys.bundle(bob);
    let mut script = ScriptedRng::new(&[ek, m, a0]);
    let mut alice_session =
        Session::initiate(&alice.device, &alice.certificate, &bundle, &mut script)
            .expect("initiate");
    script.finish();
    let encrypt = |session: &mut Session, i: usize| session.encrypt(PLAN[i].plaintext).unwrap();
    let m0 = encrypt(&mut alice_session, 0);
    let m1 = encrypt(&mut alice_session, 1);
    let SessionMessage::Prekey(prekey) = &m0 else {
        panic!("m0 must be a prekey message")
    };
    assert!(matches!(m1, SessionMessage::Prekey(_)));

    let mut bob_session = respond(bob, prekeys, alice, prekey, b1);
    assert_eq!(
        deliver(&mut bob_session, alice, &m1, &[]),
        PLAN[1].plaintext
    );
    let r0 = encrypt(&mut bob_session, 2);
    assert_eq!(deliver(&mut alice_session, bob, &r0, a1), PLAN[2].plaintext);
    let m2 = encrypt(&mut alice_session, 3);
    let m3 = encrypt(&mut alice_session, 4);
    assert!(matches!(m2, SessionMessage::Ratchet(_)));
    assert_eq!(deliver(&mut bob_session, alice, &m3, b2), PLAN[4].plaintext);
    assert_eq!(
        deliver(&mut bob_session, alice, &m2, &[]),
        PLAN[3].plaintext
    );
    assert_eq!(bob_session.skipped_keys(), 0);
    vec![m0, m1, r0, m2, m3]
}

/// `Session::respond` to `prekey`, drawing exactly `ratchet_secret`.
fn respond(
    bob: &Party,
    prekeys: &Prekeys,
    alice: &Party,
    prekey: &crate::session::PrekeyMessage,
    ratchet_secret: &[u8; 32],
) -> Session {
    let mut script = ScriptedRng::new(&[ratchet_secret]);
    let (session, plaintext) = Session::respond(
        &bob.device,
        &bob.certificate,
        &prekeys.responder(),
        &alice.certificate,
        prekey,
        &mut script,
    )
    .expect("respond");
    script.finish();
    assert_eq!(plaintext, PLAN[0].plaintext);
    session
}

/// Decrypts `message` from `sender`, drawing exactly `randomness`.
fn deliver(
    session: &mut Session,
    sender: &Party,
    message: &SessionMessage,
    randomness: &[u8],
) -> Vec<u8> {
    let mut script = ScriptedRng::new(&[randomness]);
    let plaintext = session
        .decrypt(&sender.certificate, message, &mut script)
        .expect("decrypt");
    script.finish();
    plaintext
}

#[test]
fn ratchet_vector() {
    let recorded = check_against_file("ratchet.json", &compute());

    // Everything again from the spec alone: agreement, key schedule, every message byte.
    let spec = SpecSession::new(
        &recorded.alice,
        &recorded.bob,
        &recorded.bob_prekeys,
        &recorded.randomness,
    );
    assert_eq!(hex(spec.kem_secret), recorded.kem_shared_secret);
    assert_eq!(hex(spec.shared_secret), recorded.shared_secret);
    assert_eq!(spec.steps, recorded.key_schedule);
    assert_eq!(recorded.messages.len(), PLAN.len());
    assert_eq!(recorded.delivery_order_to_bob, DELIVERY_ORDER_TO_BOB);
    for (plan, message) in PLAN.iter().zip(&recorded.messages) {
        assert_eq!(&spec.message(plan), message, "message {}", plan.name);
    }

    check_fresh_responder(&recorded);
}

/// A responder rebuilt from the recorded secrets decrypts the recorded bytes in delivery
/// order, reproduces r0 byte for byte, and ends with the recorded root key.
fn check_fresh_responder(recorded: &RatchetVector) {
    let alice = recorded.alice.party();
    let bob = recorded.bob.party();
    let prekeys = recorded.bob_prekeys.prekeys(&bob);
    let [_, _, _, b1, _, b2] = recorded.randomness.bytes();
    let message = |name: &str| {
        let record = recorded
            .messages
            .iter()
            .find(|m| m.name == name)
            .expect(name);
        let decoded = SessionMessage::from_bytes(&unhex_vec(&record.session_message))
            .expect("session message decodes");
        (decoded, unhex_vec(&record.plaintext))
    };

    let (m0, p0) = message("m0");
    let SessionMessage::Prekey(prekey) = &m0 else {
        panic!("m0 is a prekey message")
    };
    let mut session = respond(&bob, &prekeys, &alice, prekey, &b1);
    assert_eq!(p0, PLAN[0].plaintext);
    let (m1, p1) = message("m1");
    assert_eq!(deliver(&mut session, &alice, &m1, &[]), p1);
    let (r0, reply) = message("r0");
    assert_eq!(session.encrypt(&reply).expect("encrypt"), r0);
    let (m3, p3) = message("m3");
    assert_eq!(deliver(&mut session, &alice, &m3, &b2), p3);
    let (m2, p2) = message("m2");
    assert_eq!(deliver(&mut session, &alice, &m2, &[]), p2);

    // The persisted state (SPEC.md §6.8) starts: version (1), two PeerIdentity (80 each), then
    // the ratchet's root key and own ratchet secret.
    let state = session.to_bytes();
    let last = recorded.key_schedule.last().expect("steps");
    assert_eq!(hex(&state[161..193]), last.new_root_key);
    assert_eq!(state[193..225], b2);
}
