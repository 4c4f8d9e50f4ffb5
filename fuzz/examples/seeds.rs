//! Writes the seed corpora, `fuzz/corpus/<target>/`, from the protocol's test vectors
//! (`protocol/tests/vectors/*.json`: every hex string a target's decoder accepts becomes one of
//! its seeds) and from the deterministic fixtures of `kith_fuzz`. Run from `fuzz/`:
//!
//! ```text
//! cargo +nightly run --release --example seeds
//! ```
//!
//! Seeds are named by a hash of their content, so re-running is idempotent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use kith_fuzz::{group_fixture, pair, rng, sealed_fixture, unseal_with};
use kith_protocol::wire::{ClientFrame, ServerFrame};
use kith_protocol::{
    Content, DeviceCertificate, GroupMessage, OwnSenderKey, PeerSenderKey, PrekeyBundle, Session,
    SessionMessage, SignedGroupState, VerifiedGroupState, seal,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;

/// One relay input's shape: flags and `(kind, payload)` records.
type Shape<'a> = (u8, &'a [(u8, &'a [u8])]);

/// A target's decoder, as "does it accept these bytes".
type Accepts = fn(&[u8]) -> bool;

/// The decoder targets and what their decoders accept.
const DECODERS: [(&str, Accepts); 11] = [
    ("client_frame", |b| ClientFrame::from_bytes(b).is_ok()),
    ("server_frame", |b| ServerFrame::from_bytes(b).is_ok()),
    ("prekey_bundle", |b| PrekeyBundle::from_bytes(b).is_ok()),
    ("device_certificate", |b| {
        DeviceCertificate::from_bytes(b).is_ok()
    }),
    ("session_message", |b| SessionMessage::from_bytes(b).is_ok()),
    ("content", |b| Content::from_bytes(b).is_ok()),
    ("group_message", |b| GroupMessage::from_bytes(b).is_ok()),
    ("signed_group_state", |b| {
        SignedGroupState::from_bytes(b).is_ok()
    }),
    ("verified_group_state", |b| {
        VerifiedGroupState::from_bytes(b).is_ok()
    }),
    ("peer_sender_key", |b| PeerSenderKey::from_bytes(b).is_ok()),
    ("own_sender_key", |b| OwnSenderKey::from_bytes(b).is_ok()),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let mut seeds = Seeds { corpus, written: 0 };
    let vectors = root.join("../protocol/tests/vectors");
    let mut hex_values = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(&vectors)
        .expect("protocol/tests/vectors")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in &files {
        let json: Value =
            serde_json::from_slice(&fs::read(path).expect("vector file")).expect("vector JSON");
        collect_hex(&json, &mut hex_values);
    }
    for bytes in &hex_values {
        for (target, accepts) in DECODERS {
            if accepts(bytes) {
                seeds.add(target, bytes);
            }
        }
    }
    fixture_seeds(&mut seeds);
    sealed_seeds(&mut seeds);
    ratchet_seeds(&mut seeds);
    relay_seeds(&mut seeds, &hex_values);
    println!("{} seeds written (or already present)", seeds.written);
}

/// The seed directory.
struct Seeds {
    corpus: PathBuf,
    written: usize,
}

impl Seeds {
    fn add(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        let name = hex::encode(&Sha256::digest(bytes)[..8]);
        fs::write(dir.join(name), bytes).expect("seed file");
        self.written += 1;
    }
}

/// Every string in `value` that is non-empty, even-length hex, decoded.
fn collect_hex(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(s) if !s.is_empty() => {
            if let Ok(bytes) = hex::decode(s) {
                out.push(bytes);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_hex(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_hex(v, out)),
        _ => {}
    }
}

/// Seeds from the fixtures: sessions, messages, bundles, certificates, group data.
fn fixture_seeds(seeds: &mut Seeds) {
    let pair = pair();
    seeds.add("session_state", &pair.alice_session);
    seeds.add("session_state", &pair.bob_session);
    let mut alice = Session::from_bytes(&pair.alice_session).expect("fixture session");
    let _ = alice.encrypt(b"advanced").expect("encrypt");
    seeds.add("session_state", &alice.to_bytes());
    for message in &pair.messages {
        seeds.add("session_message", message);
    }
    for device in [&pair.alice, &pair.bob] {
        seeds.add("prekey_bundle", &device.bundle().to_bytes());
        seeds.add(
            "device_certificate",
            &device.certificate.certificate().to_bytes(),
        );
    }
    let group = group_fixture();
    seeds.add("signed_group_state", &group.state.signed().to_bytes());
    seeds.add("signed_group_state", &group.successor.to_bytes());
    seeds.add("verified_group_state", &group.state.to_bytes());
    seeds.add("verified_group_state", &group.successor.to_bytes());
    seeds.add("own_sender_key", &group.own_key);
    seeds.add("peer_sender_key", &group.peer_key);
    seeds.add("peer_sender_key", &group.peer_key_with_skipped);
    for message in &group.messages {
        seeds.add("group_message", message);
    }
    seeds.add("content", &group.distribution_content);
}

/// Real envelopes (mode 0) and their padded plaintexts (mode 1) for the sealed target.
fn sealed_seeds(seeds: &mut Seeds) {
    let fixture = sealed_fixture();
    let pair = pair();
    for (i, message) in pair.messages.iter().enumerate() {
        let message = SessionMessage::from_bytes(message).expect("fixture message");
        let mut rng = rng(100 + i as u64);
        // `seal` draws its ephemeral secret first: a clone of the RNG recovers it.
        let ephemeral = StaticSecret::random_from_rng(&mut rng.clone()).to_bytes();
        let envelope = seal(
            &fixture.sender.certificate,
            &fixture.recipient.certificate,
            &message,
            &mut rng,
        )
        .expect("seal");
        seeds.add("sealed_envelope", &[&[0u8][..], &envelope].concat());
        let padded = unseal_with(&fixture.recipient.certificate, ephemeral, &envelope)
            .expect("the recovered ephemeral opens the envelope");
        seeds.add("sealed_envelope", &[&[1u8][..], &padded].concat());
    }
}

/// A few operation sequences for the stateful ratchet target (any bytes are valid input).
fn ratchet_seeds(seeds: &mut Seeds) {
    use kith_protocol::rand_core::Rng;
    let mut rng = rng(7);
    for len in [16usize, 64, 256, 1024] {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        seeds.add("ratchet_session", &bytes);
    }
}

/// Relay inputs: every client frame of the vectors as one binary record, unauthenticated and
/// authenticated, and a few control-frame and raw-byte shapes.
fn relay_seeds(seeds: &mut Seeds, hex_values: &[Vec<u8>]) {
    let frames: Vec<&Vec<u8>> = hex_values
        .iter()
        .filter(|b| ClientFrame::from_bytes(b).is_ok() && b.len() <= usize::from(u16::MAX))
        .collect();
    for frame in &frames {
        for flags in [0u8, 1] {
            seeds.add("relay_connection", &relay_input(flags, &[(0, frame)]));
        }
    }
    // Pipelined requests after authentication.
    let all: Vec<(u8, &[u8])> = frames.iter().take(8).map(|f| (0, f.as_slice())).collect();
    seeds.add("relay_connection", &relay_input(1, &all));
    let shapes: [Shape<'_>; 5] = [
        (0, &[(1, b"hello")]),
        (1, &[(2, b"ping"), (3, b"pong"), (1, b"text")]),
        (1, &[(4, &[0x03, 0xe8, b'b', b'y', b'e'])]),
        (1, &[(0x80, &[1, 2]), (5, &[3, 4])]),
        (0, &[(6, &[0x82, 0xfe, 0xff, 0xff])]),
    ];
    for (flags, records) in shapes {
        seeds.add("relay_connection", &relay_input(flags, records));
    }
}

/// One relay input (format in `kith_relay::fuzzing`).
fn relay_input(flags: u8, records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![flags];
    for (kind, payload) in records {
        out.push(*kind);
        let len = u16::try_from(payload.len()).expect("record fits");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}
