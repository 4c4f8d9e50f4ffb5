//! `kith-relay migrate`: a single-node sled relay moves to PostgreSQL with the messages it
//! holds for an offline device, and clients carry on as if nothing happened.
//!
//! Needs `KITH_TEST_DATABASE_URL` (skipped without it, failing under `CI=true`).

use kith_tests::TestDatabase;
use kith_tests::cli::Run;

use crate::{alice_and_bob, assert_received, exchange, texts};

/// The password of the test database URL must never be printed.
#[track_caller]
fn assert_no_password(run: &Run, url: &str) {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password);
    if let Some(password) = password {
        let shown = format!("{}{}", run.stdout, run.stderr);
        assert!(!shown.contains(&format!(":{password}@")), "{run:?}");
    }
}

#[test]
fn a_sled_relay_moves_to_postgres_with_its_queue() {
    let Some(database) = TestDatabase::create("a_sled_relay_moves_to_postgres_with_its_queue")
    else {
        return;
    };
    let url = database.url();
    let (mut relay, alice, bob) = alice_and_bob();
    alice.send("bob", "queued one");
    alice.send("bob", "queued two");
    relay.stop();

    let copied = relay.migrate(url, false).success();
    assert!(
        copied.stdout.contains("count check: all 10 kinds match"),
        "{copied:?}"
    );
    assert!(copied.stdout.contains("mailbox entries"), "{copied:?}");
    assert_no_password(&copied, url);

    relay.use_postgres(url);
    relay.start_again();
    let received = bob.receive_json();
    assert_eq!(
        texts(&received),
        ["queued one", "queued two"],
        "{received:?}"
    );
    assert_received(&received[0], "alice", "queued one");
    exchange(&bob, &alice, "hello from postgres");
    exchange(&alice, &bob, "still here");

    let again = relay.migrate(url, true).success();
    assert!(again.stdout.contains("already migrated at"), "{again:?}");
    assert!(
        again.stdout.contains("count check: all 10 kinds match"),
        "{again:?}"
    );
    assert_no_password(&again, url);
    assert!(bob.receive_json().is_empty(), "nothing delivered twice");
}
