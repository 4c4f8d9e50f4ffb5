//! `pqxdh.json`: the hybrid key agreement, with and without a one-time prekey (SPEC.md §5).

use ml_kem::array::Array;
use ml_kem::{EncapsulationKey, MlKem768};
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;

use super::fixtures::{Party, PartyRecord, Prekeys, PrekeysRecord, x25519_public};
use super::{
    ScriptedRng, check_against_file, draw, hex, hkdf_sha256, push_varint, seeded, unhex, unhex_vec,
    x25519,
};
use crate::agreement::{PrekeyInit, initiate, initiate_with, respond};
use crate::encoding;
use crate::kem::{Kem, MlKem768Kem};
use crate::keys::{KemPrekeyKind, PrekeyId};

const SEED: u64 = 2;

const DESCRIPTION: &str = "PQXDH-style key agreement (SPEC.md §5). Alice (initiator) starts a \
    session with Bob's prekey bundle (bob_prekeys.bundle; its signatures are checked under \
    Bob's certificate, SPEC.md §3.5-3.6). DH1 = X25519(alice.identity_secret, \
    signed_prekey_public), DH2 = X25519(alice_ephemeral_secret, bob.identity_public), DH3 = \
    X25519(alice_ephemeral_secret, signed_prekey_public), DH4 = X25519(alice_ephemeral_secret, \
    one_time_prekey_public) when the bundle has a one-time prekey (null otherwise). \
    (kem_ciphertext, kem_shared_secret) = ML-KEM-768.Encaps(kem_prekey_public) with FIPS 203 \
    encapsulation randomness m = kem_encapsulation_randomness; a checker without deterministic \
    encapsulation decapsulates kem_ciphertext with kem_prekey_seed (FIPS 203 d || z) and must get \
    kem_shared_secret. hkdf_ikm = 0xFF x 32 || DH1 || DH2 || DH3 [|| DH4] || kem_shared_secret; \
    shared_secret (SK) = HKDF-SHA256(salt = 0x00 x 32, ikm = hkdf_ikm, info = \"Kith-v1 PQXDH \
    X25519 ML-KEM-768 SHA-256\"), 32 bytes. Bob (responder) computes the same DH values from his \
    side and the same SK. prekey_init is the canonical encoding of PrekeyInit (SPEC.md §5.4): \
    alice_ephemeral_public || kem_ciphertext || signed_prekey_id:varint || one_time_prekey_id: \
    (0x00 | 0x01 varint) || kem_prekey_id:varint. X25519 secrets are raw 32 bytes, clamped as \
    in RFC 7748 when used.";

#[derive(Serialize, Deserialize)]
struct PqxdhVector {
    description: String,
    alice: PartyRecord,
    bob: PartyRecord,
    cases: Vec<PqxdhCase>,
}

#[derive(Serialize, Deserialize)]
struct PqxdhCase {
    name: String,
    bob_prekeys: PrekeysRecord,
    alice_ephemeral_secret: String,
    alice_ephemeral_public: String,
    kem_encapsulation_randomness: String,
    kem_ciphertext: String,
    kem_shared_secret: String,
    dh1: String,
    dh2: String,
    dh3: String,
    dh4: Option<String>,
    hkdf_ikm: String,
    shared_secret: String,
    prekey_init: String,
}

fn compute() -> PqxdhVector {
    let mut rng = seeded(SEED);
    let alice = Party::draw(&mut rng);
    let bob = Party::draw(&mut rng);
    let with_one_time = Prekeys::draw(
        &mut rng,
        &bob.device,
        Some(100),
        (200, KemPrekeyKind::OneTime),
    );
    let first = compute_case(
        "with_one_time_prekey",
        &alice,
        &bob,
        &with_one_time,
        &mut rng,
    );
    let without = Prekeys::draw(&mut rng, &bob.device, None, (1, KemPrekeyKind::LastResort));
    let second = compute_case("without_one_time_prekey", &alice, &bob, &without, &mut rng);
    PqxdhVector {
        description: DESCRIPTION.to_owned(),
        alice: alice.record(),
        bob: bob.record(),
        cases: vec![first, second],
    }
}

fn compute_case(
    name: &str,
    alice: &Party,
    bob: &Party,
    prekeys: &Prekeys,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> PqxdhCase {
    let (_, bundle) = prekeys.bundle(bob);
    let ephemeral = draw::<32>(rng);
    let m = draw::<32>(rng);

    let mut script = ScriptedRng::new(&[&m]);
    let (ciphertext, kem_secret) =
        MlKem768Kem::encapsulate(bundle.kem_prekey.public_key().as_bytes(), &mut script)
            .expect("valid KEM key");
    script.finish();
    let ephemeral_secret = StaticSecret::from(ephemeral);
    let (sk, init) = initiate_with(
        &alice.device,
        &ephemeral_secret,
        &bundle,
        *ciphertext,
        &kem_secret,
    )
    .expect("agreement succeeds");

    // The randomised entry point consumes exactly EK_A then m, in that order.
    let mut script = ScriptedRng::new(&[&ephemeral, &m]);
    let (sk_random, init_random) = initiate(&alice.device, &bundle, &mut script).expect("agree");
    script.finish();
    assert_eq!(sk_random.as_bytes(), sk.as_bytes());
    assert_eq!(init_random, init);

    let responder_sk = respond(
        &bob.device,
        &prekeys.responder(),
        alice.device.identity_public().as_bytes(),
        &init,
    )
    .expect("agreement succeeds")
    .expect("prekey ids match");
    assert_eq!(responder_sk.as_bytes(), sk.as_bytes());

    let spk = bundle.signed_prekey.public_key();
    let dh = |public: &[u8; 32]| *crate::dh::dh(&ephemeral_secret, public).expect("contributory");
    let dh1 = *alice.device.identity_dh(spk).expect("contributory");
    let dh2 = dh(bob.device.identity_public().as_bytes());
    let dh3 = dh(spk);
    let dh4 = bundle.one_time_prekey.as_ref().map(|k| dh(k.public_key()));
    let ikm = [
        &[0xFF; 32][..],
        &dh1,
        &dh2,
        &dh3,
        dh4.as_ref().map_or(&[][..], |d| &d[..]),
        &kem_secret[..],
    ]
    .concat();

    PqxdhCase {
        name: name.to_owned(),
        bob_prekeys: prekeys.record(bob),
        alice_ephemeral_secret: hex(ephemeral),
        alice_ephemeral_public: hex(init.ephemeral_key),
        kem_encapsulation_randomness: hex(m),
        kem_ciphertext: hex(&ciphertext[..]),
        kem_shared_secret: hex(&kem_secret[..]),
        dh1: hex(dh1),
        dh2: hex(dh2),
        dh3: hex(dh3),
        dh4: dh4.map(hex),
        hkdf_ikm: hex(ikm),
        shared_secret: hex(sk.as_bytes()),
        prekey_init: hex(encoding::encode(&init)),
    }
}

#[test]
fn pqxdh_vector() {
    let recorded = check_against_file("pqxdh.json", &compute());
    let alice = recorded.alice.party();
    let bob = recorded.bob.party();
    assert_eq!(recorded.cases.len(), 2);
    assert!(recorded.cases[0].dh4.is_some() && recorded.cases[1].dh4.is_none());
    for case in &recorded.cases {
        check_case(case, &recorded.alice, &recorded.bob, &alice, &bob);
    }
}

/// Recomputes one case from its recorded inputs, from both sides.
fn check_case(case: &PqxdhCase, a: &PartyRecord, b: &PartyRecord, alice: &Party, bob: &Party) {
    let prekeys = case.bob_prekeys.prekeys(bob);
    let pk = &case.bob_prekeys;
    let ephemeral = unhex::<32>(&case.alice_ephemeral_secret);
    let ephemeral_public = unhex::<32>(&case.alice_ephemeral_public);
    assert_eq!(x25519_public(&ephemeral), ephemeral_public);

    // ML-KEM: deterministic encapsulation with m, and decapsulation with the seed.
    let m = unhex::<32>(&case.kem_encapsulation_randomness);
    let (ciphertext, kem_secret) = spec_encapsulate(&pk.kem_prekey_public, &m);
    assert_eq!(hex(ciphertext), case.kem_ciphertext);
    assert_eq!(hex(kem_secret), case.kem_shared_secret);
    let seed = unhex::<64>(&pk.kem_prekey_seed);
    assert_eq!(*MlKem768Kem::decapsulate(&seed, &ciphertext), kem_secret);

    let spec = spec_agreement(a, b, pk, &ephemeral, &kem_secret);
    assert_eq!(hex(spec.dh[0]), case.dh1);
    assert_eq!(hex(spec.dh[1]), case.dh2);
    assert_eq!(hex(spec.dh[2]), case.dh3);
    assert_eq!(spec.dh.get(3).map(hex), case.dh4);
    assert_eq!(hex(&spec.ikm), case.hkdf_ikm);
    assert_eq!(hex(spec.shared_secret), case.shared_secret);

    // PrekeyInit, laid out by hand, then decoded by the crate.
    let prekey_init = unhex_vec(&case.prekey_init);
    assert_eq!(
        prekey_init,
        prekey_init_bytes(&ephemeral_public, &ciphertext, pk)
    );
    let init: PrekeyInit = encoding::decode(&prekey_init, 2048).expect("PrekeyInit decodes");

    // Both sides of the crate's agreement reproduce SK from the recorded inputs.
    let (initiator_sk, initiator_init) = initiate_with(
        &alice.device,
        &StaticSecret::from(ephemeral),
        &prekeys.bundle(bob).1,
        ciphertext,
        &kem_secret,
    )
    .expect("initiator side");
    assert_eq!(*initiator_sk.as_bytes(), spec.shared_secret);
    assert_eq!(initiator_init, init);
    let responder_sk = respond(
        &bob.device,
        &prekeys.responder(),
        &unhex(&a.identity_public),
        &init,
    )
    .expect("responder side")
    .expect("prekey ids match");
    assert_eq!(*responder_sk.as_bytes(), spec.shared_secret);
}

/// ML-KEM-768 encapsulation with explicit FIPS 203 randomness `m`: `(ciphertext, secret)`.
pub(super) fn spec_encapsulate(public: &str, m: &[u8; 32]) -> ([u8; 1088], [u8; 32]) {
    let public = Array::try_from(&unhex_vec(public)[..]).expect("1184 bytes");
    let ek = EncapsulationKey::<MlKem768>::new(&public).expect("valid encapsulation key");
    let (ciphertext, secret) = ek.encapsulate_deterministic(&Array::from(*m));
    (ciphertext.into(), secret.into())
}

/// The agreement computed from the spec's formulas with X25519 and HKDF directly.
pub(super) struct SpecAgreement {
    /// DH1..DH3, and DH4 when there is a one-time prekey.
    pub(super) dh: Vec<[u8; 32]>,
    pub(super) ikm: Vec<u8>,
    pub(super) shared_secret: [u8; 32],
}

/// Computes `SK` from the recorded secrets, checking every DH value from both sides.
pub(super) fn spec_agreement(
    alice: &PartyRecord,
    bob: &PartyRecord,
    prekeys: &PrekeysRecord,
    ephemeral: &[u8; 32],
    kem_secret: &[u8; 32],
) -> SpecAgreement {
    let ephemeral_public = x25519_public(ephemeral);
    let spk_secret = unhex::<32>(&prekeys.signed_prekey_secret);
    let spk_public = unhex::<32>(&prekeys.signed_prekey_public);
    let mut dh = vec![
        x25519(&unhex(&alice.identity_secret), &spk_public),
        x25519(ephemeral, &unhex(&bob.identity_public)),
        x25519(ephemeral, &spk_public),
    ];
    let mut responder_dh = vec![
        x25519(&spk_secret, &unhex(&alice.identity_public)),
        x25519(&unhex(&bob.identity_secret), &ephemeral_public),
        x25519(&spk_secret, &ephemeral_public),
    ];
    if let Some(secret) = &prekeys.one_time_prekey_secret {
        let public = unhex::<32>(prekeys.one_time_prekey_public.as_deref().expect("public"));
        dh.push(x25519(ephemeral, &public));
        responder_dh.push(x25519(&unhex(secret), &ephemeral_public));
    }
    assert_eq!(dh, responder_dh, "both sides compute the same DH values");
    let mut ikm = vec![0xFF; 32];
    ikm.extend(dh.iter().flatten());
    ikm.extend_from_slice(kem_secret);
    let shared_secret = hkdf_sha256(&[0; 32], &ikm, b"Kith-v1 PQXDH X25519 ML-KEM-768 SHA-256");
    SpecAgreement {
        dh,
        ikm,
        shared_secret,
    }
}

/// `EK_A || CT || spk_id || Option<opk_id> || kem_id`, varints as LEB128.
pub(super) fn prekey_init_bytes(
    ephemeral_public: &[u8; 32],
    ciphertext: &[u8; 1088],
    prekeys: &PrekeysRecord,
) -> Vec<u8> {
    let mut out = [&ephemeral_public[..], &ciphertext[..]].concat();
    push_varint(&mut out, prekeys.signed_prekey_id.into());
    push_option_id(&mut out, prekeys.one_time_prekey_id);
    push_varint(&mut out, prekeys.kem_prekey_id.into());
    out
}

/// postcard `Option`: `0x00`, or `0x01` then the value.
fn push_option_id(out: &mut Vec<u8>, id: Option<PrekeyId>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            push_varint(out, id.into());
        }
    }
}
