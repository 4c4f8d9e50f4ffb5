//! Benchmarks of the protocol's hot paths: session set-up on both sides, ratchet messages,
//! sealed sender and session persistence. Run with `cargo bench -p kith-protocol`;
//! `cargo test -p kith-protocol --benches` runs each once.
// Benchmark set-up code, like test code, may unwrap: a failure is a broken benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use kith_protocol::*;

/// A typical short message.
const MESSAGE: &[u8; 200] = &[b'k'; 200];

/// An established pair in which Alice has heard back, so both send plain ratchet messages.
fn talking_pair(seed: u64) -> Pair {
    let mut p = established_pair(seed);
    let reply = p.bob_session.encrypt(MESSAGE).unwrap();
    p.alice_session
        .decrypt(&p.bob.certificate, &reply, &mut p.rng)
        .unwrap();
    p
}

fn session_setup(c: &mut Criterion) {
    let mut rng = rng(1);
    let alice = Device::new(&mut rng);
    let bob = Device::new(&mut rng);
    let bundle = bob.bundle();
    let account = *bob.certificate.account_key();
    let mut group = c.benchmark_group("session_setup");

    // What Alice does to start: check the bundle's signatures, agree, encrypt the first message.
    group.bench_function("initiator", |b| {
        b.iter(|| {
            let verified = black_box(&bundle).verify(&account).unwrap();
            let mut session =
                Session::initiate(&alice.keys, &alice.certificate, &verified, &mut rng).unwrap();
            session.encrypt(MESSAGE).unwrap()
        });
    });

    // What Bob does on the first message: agree, decrypt. `respond` is pure, so one prekey
    // message serves every iteration.
    let verified = bundle.verify(&account).unwrap();
    let mut session =
        Session::initiate(&alice.keys, &alice.certificate, &verified, &mut rng).unwrap();
    let SessionMessage::Prekey(prekey) = session.encrypt(MESSAGE).unwrap() else {
        panic!("the first message is a prekey message")
    };
    let prekeys = bob.prekeys_for(&prekey);
    group.bench_function("responder", |b| {
        b.iter(|| {
            Session::respond(
                &bob.keys,
                &bob.certificate,
                &prekeys,
                &alice.certificate,
                black_box(&prekey),
                &mut rng,
            )
            .unwrap()
        });
    });
    group.finish();
}

fn ratchet(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratchet");

    // Alice → Bob in one chain: symmetric ratchet only. Each message is decrypted once.
    let mut p = talking_pair(2);
    group.bench_function("encrypt_decrypt_200B_same_chain", |b| {
        b.iter(|| {
            let message = p.alice_session.encrypt(black_box(MESSAGE)).unwrap();
            p.bob_session
                .decrypt(&p.alice.certificate, &message, &mut p.rng)
                .unwrap()
        });
    });

    // Alternating directions: every message starts a new chain (a DH ratchet step on each
    // side). One iteration is two messages, Alice → Bob then Bob → Alice.
    let mut p = talking_pair(3);
    group.bench_function("round_trip_200B_dh_ratchet", |b| {
        b.iter(|| {
            let message = p.alice_session.encrypt(black_box(MESSAGE)).unwrap();
            p.bob_session
                .decrypt(&p.alice.certificate, &message, &mut p.rng)
                .unwrap();
            let reply = p.bob_session.encrypt(black_box(MESSAGE)).unwrap();
            p.alice_session
                .decrypt(&p.bob.certificate, &reply, &mut p.rng)
                .unwrap()
        });
    });
    group.finish();
}

fn sealed_sender(c: &mut Criterion) {
    let mut p = talking_pair(4);
    let message = p.alice_session.encrypt(MESSAGE).unwrap();
    let mut group = c.benchmark_group("sealed_sender");
    group.bench_function("seal_open_200B", |b| {
        b.iter(|| {
            let envelope = seal(
                &p.alice.certificate,
                &p.bob.certificate,
                black_box(&message),
                &mut p.rng,
            )
            .unwrap();
            open(&p.bob.keys, &p.bob.certificate, &envelope).unwrap()
        });
    });
    group.finish();
}

fn session_persist(c: &mut Criterion) {
    let p = talking_pair(5);
    let mut group = c.benchmark_group("session_persist");
    group.bench_function("to_bytes_from_bytes", |b| {
        b.iter(|| {
            let bytes = black_box(&p.alice_session).to_bytes();
            Session::from_bytes(&bytes).unwrap()
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    session_setup,
    ratchet,
    sealed_sender,
    session_persist
);
criterion_main!(benches);
