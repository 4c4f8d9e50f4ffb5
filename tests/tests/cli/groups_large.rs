//! A circle of 50: each message is uploaded once and stored once on the relay, however many
//! members there are. Prints the body size and the time of the first and second send (a
//! measurement for the record, not an assertion).

use std::time::Instant;

use kith_tests::cli::{Home, RelayProcess, init_homes};

use crate::groups::{CIRCLE, receive_circle};

/// Members besides the admin.
const MEMBERS: usize = 49;

/// `kith init` runs at once (each derives a key from its passphrase: CPU-bound).
const PARALLEL_INITS: usize = 4;

/// The relay's `(queued_envelopes, queued_bytes)`.
fn queue(relay: &RelayProcess) -> (u64, u64) {
    let stats = relay.stats();
    let counter = |name: &str| stats[name].as_u64().expect("a counter");
    (counter("queued_envelopes"), counter("queued_bytes"))
}

#[test]
fn a_fifty_member_circle_uploads_each_message_once() {
    let relay = RelayProcess::start_open();
    let mut handles = vec!["alice".to_owned()];
    handles.extend((1..=MEMBERS).map(|i| format!("member-{i:02}")));
    let started = Instant::now();
    let homes = init_homes(&relay, &handles, PARALLEL_INITS);
    eprintln!(
        "{} homes initialised in {:?}",
        homes.len(),
        started.elapsed()
    );
    let (alice, members) = homes.split_first().expect("the admin");

    let started = Instant::now();
    let names: Vec<&str> = members.iter().map(Home::handle).collect();
    alice.group_create(CIRCLE, &names);
    eprintln!(
        "group create with {MEMBERS} members: {:?}",
        started.elapsed()
    );

    let before = queue(&relay);
    let first = alice.group_send(CIRCLE, "first to fifty");
    let after_first = queue(&relay);
    let second = alice.group_send(CIRCLE, "second to fifty");
    let after_second = queue(&relay);
    eprintln!(
        "{MEMBERS}-member circle: first send {:?} (body {} bytes, keys distributed), \
         second send {:?} (body {} bytes)",
        first.elapsed, first.body_bytes, second.elapsed, second.body_bytes
    );

    for sent in [first, second] {
        assert_eq!(sent.devices, MEMBERS as u64, "{sent:?}");
    }
    let count = MEMBERS as u64;
    assert_eq!(
        after_first.0 - before.0,
        2 * count,
        "first send: a sender-key envelope and a body entry per member"
    );
    assert_eq!(
        after_second.0 - after_first.0,
        count,
        "second send: one entry per member"
    );
    assert_eq!(
        after_second.1 - after_first.1,
        second.body_bytes,
        "second send: the body stored once"
    );

    for member in [0, 1, 2, MEMBERS - 1].map(|i| &members[i]) {
        assert_eq!(
            receive_circle(member),
            ["alice: first to fifty", "alice: second to fifty"],
            "@{}",
            member.handle()
        );
        assert!(member.receive_json().is_empty(), "received twice");
    }
}
