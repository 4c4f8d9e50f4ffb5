//! End-to-end tests of the `kith` client, driven through the real executables: `kith-relay
//! serve` as a child process on loopback, `kith` run command by command against temporary
//! homes (the passphrase in `KITH_PASSPHRASE`), and `kith chat` in a tmux pseudo-terminal;
//! the `groups*` modules do the same for circles (groups), and `nodes` runs several relay
//! nodes on one PostgreSQL database and `migrate` moves a sled relay there
//! (`KITH_TEST_DATABASE_URL`; skipped without it outside CI); `crash` kills the relay with
//! SIGKILL under a load of protocol-level clients and `client_crash` kills `kith receive`
//! mid-queue; `disk_full` runs it on a small tmpfs and
//! `postgres_restart` restarts a private PostgreSQL server under load (both need root;
//! skipped without it outside CI).
//!
//! Build both executables first (`cargo build -p kith -p kith-relay`; `cargo test
//! --workspace` does it). Every wait has a deadline; what can only be polled (the relay's
//! counters, a terminal screen) is polled with short pauses until a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod chat;
mod client_crash;
mod crash;
mod disk_full;
mod errors;
mod groups;
mod groups_large;
mod groups_membership;
mod messaging;
mod migrate;
mod nodes;
mod operator;
mod postgres_restart;
mod postgres_tls;
mod prekeys;
mod proxy;
mod storage;
mod verify;

use std::time::Duration;

use kith_tests::cli::{Home, RelayProcess};
use serde_json::Value;

/// How long something the relay or a client should do promptly may take.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A relay with @alice and @bob registered (invites, `--relay-ca`).
pub(crate) fn alice_and_bob() -> (RelayProcess, Home, Home) {
    let relay = RelayProcess::start();
    let alice = Home::new("alice");
    let bob = Home::new("bob");
    alice.init(&relay);
    bob.init(&relay);
    (relay, alice, bob)
}

/// The `text` of each message.
pub(crate) fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().expect("a text"))
        .collect()
}

/// The `outgoing` flag of each message.
pub(crate) fn outgoing(messages: &[Value]) -> Vec<bool> {
    messages
        .iter()
        .map(|m| m["outgoing"].as_bool().expect("an outgoing flag"))
        .collect()
}

/// Asserts that `message` (a `--json` object) is `text` from `from`, received by this device.
#[track_caller]
pub(crate) fn assert_received(message: &Value, from: &str, text: &str) {
    assert_eq!(message["from"], from, "{message}");
    assert_eq!(message["text"], text, "{message}");
    assert_eq!(message["outgoing"], false, "{message}");
    assert_eq!(message["group"], Value::Null, "{message}");
}

/// `sender` sends `text` to `receiver`, who receives exactly that.
#[track_caller]
pub(crate) fn exchange(sender: &Home, receiver: &Home, text: &str) {
    sender.send(receiver.handle(), text);
    let received = receiver.receive_json();
    assert_eq!(texts(&received), [text], "{received:?}");
    assert_received(&received[0], sender.handle(), text);
}
