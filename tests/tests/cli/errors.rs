//! Failures say what happened and what to do, and leave nothing half-done: a refused or failed
//! `kith init` can simply be run again.

use std::net::TcpListener;

use kith_tests::cli::{Home, RelayProcess};

use crate::exchange;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn init_refuses_a_home_that_holds_an_account() {
    let relay = RelayProcess::start();
    let alice = Home::new("alice");
    alice.init(&relay);

    let invite = relay.invite();
    alice
        .init_with_invite(&relay, &invite)
        .failure()
        .stderr_mentions(&["already holds a Kith account", "nothing was changed"]);

    // The refusal used nothing up: the invite still registers someone, and alice still works.
    let bob = Home::new("bob");
    bob.init_with_invite(&relay, &invite).success();
    exchange(&alice, &bob, "still here");
}

#[test]
fn a_failed_init_leaves_no_home_behind() {
    let relay = RelayProcess::start();
    let alice = Home::new("alice");
    let no_home = |after: &str| {
        assert!(
            !alice.path().exists(),
            "{after} left {} behind",
            alice.path().display()
        );
    };

    alice
        .init_with_invite(&relay, "not-an-invite")
        .failure()
        .stderr_mentions(&["invite is not valid", "kith init"]);
    no_home("a refused invite");

    let invite = relay.invite();
    alice
        .try_init(&relay, &["--invite", &invite])
        .failure()
        .stderr_mentions(&["--relay-fingerprint"]);
    no_home("an untrusted certificate");

    let port = closed_port();
    let unreachable = format!("wss://localhost:{port}");
    alice
        .kith([
            "init",
            "--relay",
            &unreachable,
            "--handle",
            "alice",
            "--invite",
            &invite,
        ])
        .failure()
        .stderr_mentions(&[&format!("localhost:{port}")]);
    no_home("an unreachable relay");

    // The fingerprint exactly as the relay's banner prints it; the invite is still unused.
    alice
        .try_init(
            &relay,
            &[
                "--invite",
                &invite,
                "--relay-fingerprint",
                relay.fingerprint(),
            ],
        )
        .success();
    let bob = Home::new("bob");
    bob.init(&relay);
    exchange(&bob, &alice, "over a pinned certificate");
}

#[test]
fn unknown_people_and_missing_accounts_are_explained() {
    let relay = RelayProcess::start();
    let alice = Home::new("alice");
    alice.init(&relay);
    alice
        .kith(["send", "@nobody", "hello?"])
        .failure()
        .stderr_mentions(&["Nobody called @nobody is registered"]);

    let stranger = Home::new("carol");
    let commands: [&[&str]; 4] = [
        &["send", "alice", "hi"],
        &["receive"],
        &["contacts"],
        &["verify", "alice"],
    ];
    for args in commands {
        stranger
            .kith(args)
            .failure()
            .stderr_mentions(&["kith init"]);
    }
    assert!(!stranger.path().exists(), "a command created a home");
}
