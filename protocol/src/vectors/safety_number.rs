//! `safety_number.json`: safety numbers and their scannable forms (SPEC.md §8).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use super::{check_against_file, draw, hex, seeded, unhex, unhex_vec};
use crate::keys::AccountPublicKey;
use crate::safety::SafetyNumber;

const SEED: u64 = 7;

const DESCRIPTION: &str = "Safety numbers (SPEC.md §8). Per party: h_0 = SHA-512(\"Kith-v1 \
    safety number\" || 0x01 || account_key || len(handle):u8 || handle); h_(i+1) = \
    SHA-512(h_i || account_key) for i in 0..5200; digits = for j in 0..6, big-endian u40 of \
    h_5200[5j..5j+5] mod 100000, zero-padded to 5; fingerprint = h_5200[0..32]. The 60 digits \
    are the two parties' 30 digits with the smaller string first (identical on both sides). \
    Scannable form of one side = 0x01 || own fingerprint || peer fingerprint. Account keys \
    here are 32 arbitrary bytes (the computation does not need a valid Ed25519 point).";

#[derive(Serialize, Deserialize)]
struct Party {
    account_key: String,
    handle: String,
    digits: String,
    fingerprint: String,
    scannable: String,
}

#[derive(Serialize, Deserialize)]
struct SafetyNumberVector {
    description: String,
    alice: Party,
    bob: Party,
    safety_number: String,
}

fn party(key: [u8; 32], handle: &str, peer_key: [u8; 32], peer_handle: &str) -> Party {
    let (digits, fingerprint) = fingerprint(&key, handle);
    let number = SafetyNumber::compute(
        &AccountPublicKey::from_bytes(key),
        handle,
        &AccountPublicKey::from_bytes(peer_key),
        peer_handle,
    )
    .expect("short handles");
    Party {
        account_key: hex(key),
        handle: handle.to_owned(),
        digits,
        fingerprint: hex(fingerprint),
        scannable: hex(number.scannable()),
    }
}

fn compute() -> SafetyNumberVector {
    let mut rng = seeded(SEED);
    let (alice_key, bob_key) = (draw::<32>(&mut rng), draw::<32>(&mut rng));
    let alice = party(alice_key, "alice", bob_key, "bob.peer-worker");
    let bob = party(bob_key, "bob.peer-worker", alice_key, "alice");
    let number = SafetyNumber::compute(
        &AccountPublicKey::from_bytes(alice_key),
        "alice",
        &AccountPublicKey::from_bytes(bob_key),
        "bob.peer-worker",
    )
    .expect("short handles");
    SafetyNumberVector {
        description: DESCRIPTION.to_owned(),
        alice,
        bob,
        safety_number: number.digits().to_owned(),
    }
}

/// The per-party digits and fingerprint, straight from the formula with `sha2`.
fn fingerprint(key: &[u8; 32], handle: &str) -> (String, [u8; 32]) {
    let mut first = b"Kith-v1 safety number".to_vec();
    first.push(1);
    first.extend_from_slice(key);
    first.push(u8::try_from(handle.len()).expect("short handle"));
    first.extend_from_slice(handle.as_bytes());
    let mut hash = Sha512::digest(&first).to_vec();
    for _ in 0..5200 {
        hash = Sha512::digest([&hash[..], &key[..]].concat()).to_vec();
    }
    let digits = hash[..30]
        .chunks(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", value % 100_000)
        })
        .collect();
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(&hash[..32]);
    (digits, fingerprint)
}

#[test]
fn safety_number_vector() {
    let recorded = check_against_file("safety_number.json", &compute());
    let (alice, bob) = (&recorded.alice, &recorded.bob);
    for p in [alice, bob] {
        let (digits, fp) = fingerprint(&unhex(&p.account_key), &p.handle);
        assert_eq!(digits, p.digits);
        assert_eq!(hex(fp), p.fingerprint);
    }
    let (low, high) = if alice.digits <= bob.digits {
        (alice, bob)
    } else {
        (bob, alice)
    };
    assert_eq!(
        recorded.safety_number,
        format!("{}{}", low.digits, high.digits)
    );
    // Each side's scannable form is version || own || peer, and matches the other side.
    let expected = |own: &Party, peer: &Party| {
        [
            vec![1u8],
            unhex_vec(&own.fingerprint),
            unhex_vec(&peer.fingerprint),
        ]
        .concat()
    };
    assert_eq!(unhex_vec(&alice.scannable), expected(alice, bob));
    assert_eq!(unhex_vec(&bob.scannable), expected(bob, alice));
    let alice_number = SafetyNumber::compute(
        &AccountPublicKey::from_bytes(unhex(&alice.account_key)),
        &alice.handle,
        &AccountPublicKey::from_bytes(unhex(&bob.account_key)),
        &bob.handle,
    )
    .expect("short handles");
    assert_eq!(
        alice_number.matches_scanned(&unhex_vec(&bob.scannable)),
        Ok(true)
    );
    assert_eq!(
        alice_number.matches_scanned(&unhex_vec(&alice.scannable)),
        Ok(false)
    );
}
