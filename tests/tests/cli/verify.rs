//! Safety numbers: both sides see the same digits, confirming marks a contact verified, and a
//! contact whose account key changed is refused until the new number is confirmed.

use kith_tests::cli::{Home, RelayProcess};
use serde_json::Value;

use crate::{alice_and_bob, exchange, texts};

/// The characters a QR code is drawn with in a terminal.
const QR_CHARS: [char; 4] = ['█', '▀', '▄', ' '];

/// The 60-digit safety number of a `verify --json` answer.
#[track_caller]
fn safety_number(answer: &Value) -> String {
    let number = answer["safety_number"].as_str().expect("a safety number");
    assert!(
        number.len() == 60 && number.bytes().all(|b| b.is_ascii_digit()),
        "not 60 digits: {answer}"
    );
    number.to_owned()
}

/// Asserts a `verify --json` answer's flags.
#[track_caller]
fn assert_flags(answer: &Value, verified: bool, key_changed: bool) {
    assert_eq!(answer["verified"], verified, "{answer}");
    assert_eq!(answer["key_changed"], key_changed, "{answer}");
}

#[test]
fn both_sides_see_the_same_safety_number_and_can_confirm_it() {
    let (_relay, alice, bob) = alice_and_bob();
    exchange(&alice, &bob, "let us compare numbers");

    let from_alice = alice.verify_json("bob");
    let from_bob = bob.verify_json("@alice");
    assert_eq!(from_alice["handle"], "bob");
    assert_eq!(from_bob["handle"], "alice");
    let number = safety_number(&from_alice);
    assert_eq!(
        number,
        safety_number(&from_bob),
        "both sides see one number"
    );
    assert_flags(&from_alice, false, false);

    let shown = alice.kith(["verify", "bob"]).success().stdout;
    let digit_groups: Vec<&str> = shown
        .split_whitespace()
        .filter(|w| w.len() == 5 && w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(
        digit_groups.concat(),
        number,
        "the digits in groups of five:\n{shown}"
    );
    let qr_rows = shown
        .lines()
        .filter(|l| !l.trim().is_empty() && l.chars().all(|c| QR_CHARS.contains(&c)))
        .count();
    assert!(qr_rows >= 10, "a QR code block ({qr_rows} rows):\n{shown}");

    alice.kith(["verify", "bob", "--confirm"]).success();
    assert_flags(&alice.verify_json("bob"), true, false);
    assert_eq!(alice.contacts_json()[0]["verified"], true);
    assert_eq!(
        bob.contacts_json()[0]["verified"],
        false,
        "bob has not confirmed yet"
    );
}

#[test]
fn a_changed_account_key_is_refused_until_confirmed() {
    // The relay's data with @alice only, kept aside: on it, @bob can register again with a new
    // account key, as if the relay (or an impostor on it) replaced him.
    let mut relay = RelayProcess::start();
    let alice = Home::new("alice");
    alice.init(&relay);
    relay.stop();
    let mut replaced = relay.copy_stopped();

    relay.start_again();
    let bob = Home::new("bob");
    bob.init(&relay);
    alice.send("bob", "hello bob");
    let pinned = safety_number(&alice.verify_json("bob"));
    relay.stop();

    replaced.start_again();
    assert_eq!(replaced.port(), relay.port());
    let new_bob = Home::new("bob");
    new_bob.init(&replaced);

    alice
        .kith(["send", "bob", "is it still you?"])
        .failure()
        .stderr_mentions(&["safety number has changed", "kith verify bob --confirm"]);
    assert!(new_bob.receive_json().is_empty(), "nothing was sent");
    let changed = alice.verify_json("bob");
    assert_flags(&changed, false, true);
    assert_ne!(safety_number(&changed), pinned);
    assert_eq!(alice.contacts_json()[0]["key_changed"], true);

    // Messages from the new key are shown, with the warning.
    new_bob.send("alice", "new phone, same bob");
    let received = alice
        .kith(["receive"])
        .success()
        .stderr_mentions(&["safety number has changed", "kith verify bob --confirm"]);
    assert_eq!(received.lines(), ["@bob: new phone, same bob"]);

    alice.kith(["verify", "bob", "--confirm"]).success();
    assert_flags(&alice.verify_json("bob"), true, false);
    alice.send("bob", "hello new bob");
    assert_eq!(texts(&new_bob.receive_json()), ["hello new bob"]);
}
