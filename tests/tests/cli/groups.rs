//! Circles (groups): creating one, sending to it so that every member receives each message
//! exactly once, members who were offline catching up, and `kith chat --group`.
//!
//! The helpers here are shared by the other `groups_*` modules.

use kith_tests::cli::{Home, RelayProcess, Tmux, wait_until};
use serde_json::Value;

use crate::chat::tmux_present;
use crate::{WAIT, texts};

/// The circle every test creates.
pub(crate) const CIRCLE: &str = "circle";

/// A relay with a home registered for each of `handles`; the first creates [`CIRCLE`] with
/// all the others, and each of them receives the circle's notice (and no message).
pub(crate) fn circle_of<const N: usize>(handles: [&str; N]) -> (RelayProcess, [Home; N]) {
    let relay = RelayProcess::start();
    let homes = handles.map(Home::new);
    for home in &homes {
        home.init(&relay);
    }
    let (admin, members) = homes.split_first().expect("an admin");
    let names: Vec<&str> = members.iter().map(Home::handle).collect();
    admin.group_create(CIRCLE, &names);
    for member in members {
        learn_circle(member);
    }
    (relay, homes)
}

/// `kith receive` on `home`: the circle's notice on standard error, no message.
#[track_caller]
pub(crate) fn learn_circle(home: &Home) {
    let out = home.kith(["receive"]).success();
    assert!(
        out.stderr.contains(&format!("[{CIRCLE}]")),
        "no notice of the circle: {out:?}"
    );
    assert!(out.lines().is_empty(), "no message expected: {out:?}");
}

/// `kith receive --json` on `home`; asserts that every message is a received message of
/// [`CIRCLE`] and returns them as `"from: text"`.
#[track_caller]
pub(crate) fn receive_circle(home: &Home) -> Vec<String> {
    home.receive_json().iter().map(circle_message).collect()
}

/// `"from: text"` of a received message of [`CIRCLE`] (a `--json` object).
#[track_caller]
pub(crate) fn circle_message(message: &Value) -> String {
    assert_eq!(message["group"], CIRCLE, "{message}");
    assert_eq!(message["outgoing"], false, "{message}");
    let from = message["from"].as_str().expect("a sender");
    let text = message["text"].as_str().expect("a text");
    format!("{from}: {text}")
}

/// `sender` sends `text` to [`CIRCLE`]; each of `receivers` receives exactly that, once.
#[track_caller]
pub(crate) fn everyone_gets(sender: &Home, text: &str, receivers: &[&Home]) {
    let sent = sender.group_send(CIRCLE, text);
    assert_eq!(sent.devices, receivers.len() as u64, "{sent:?}");
    let expected = format!("{}: {text}", sender.handle());
    for receiver in receivers {
        assert_eq!(
            receive_circle(receiver),
            [expected.as_str()],
            "@{}",
            receiver.handle()
        );
    }
}

/// The handles `home` lists as members of [`CIRCLE`], sorted.
#[track_caller]
pub(crate) fn members(home: &Home) -> Vec<String> {
    let mut handles: Vec<String> = home
        .group_members_json(CIRCLE)
        .iter()
        .map(|m| m["handle"].as_str().expect("a handle").to_owned())
        .collect();
    handles.sort();
    handles
}

/// Asserts that every one of `homes` lists exactly `expected` (sorted) as the members.
#[track_caller]
pub(crate) fn assert_members(homes: &[&Home], expected: &[&str]) {
    for home in homes {
        assert_eq!(
            members(home),
            expected,
            "members seen by @{}",
            home.handle()
        );
    }
}

/// The texts of [`CIRCLE`]'s history on `home`.
#[track_caller]
pub(crate) fn circle_history(home: &Home) -> Vec<String> {
    let history = home.group_history_json(CIRCLE);
    texts(&history).into_iter().map(str::to_owned).collect()
}

#[test]
fn a_circle_message_reaches_every_member_once() {
    let (relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);

    // The first message of alice's epoch carries her sender key over 1:1 sessions: one
    // envelope per member, plus one mailbox entry per member for the shared body.
    let queued = relay.stat("queued_envelopes");
    let sent = alice.group_send(CIRCLE, "first");
    assert_eq!(sent.devices, 2, "{sent:?}");
    assert_eq!(relay.stat("queued_envelopes") - queued, 2 + 2);

    assert_eq!(bob.receive_lines(), ["[circle] @alice: first"]);
    assert_eq!(receive_circle(&carol), ["alice: first"]);
    for member in [&bob, &carol] {
        assert!(member.receive_json().is_empty(), "received twice");
    }
    everyone_gets(&bob, "hello both", &[&alice, &carol]);
    assert_eq!(relay.stat("queued_envelopes"), 0, "everything delivered");

    let everyone = [&alice, &bob, &carol];
    assert_members(&everyone, &["alice", "bob", "carol"]);
    for home in everyone {
        for member in home.group_members_json(CIRCLE) {
            let is_alice = member["handle"] == "alice";
            assert_eq!(member["admin"], is_alice, "{member}");
            assert_eq!(member["you"], member["handle"] == home.handle(), "{member}");
        }
    }
    let lists = everyone.map(Home::group_list_json);
    for (home, list) in everyone.iter().zip(&lists) {
        let [circle] = list.as_slice() else {
            panic!("@{} lists {list:?}", home.handle());
        };
        assert_eq!(circle["name"], CIRCLE, "{circle}");
        assert_eq!(circle["admin"], home.handle() == "alice", "{circle}");
        assert_eq!(circle["members"], 3, "{circle}");
        assert_eq!(circle["id"], lists[0][0]["id"], "one circle id everywhere");
        assert_eq!(
            circle["epoch"], lists[0][0]["epoch"],
            "one epoch everywhere"
        );
    }
    for home in everyone {
        assert_eq!(circle_history(home), ["first", "hello both"]);
    }
}

#[test]
fn an_offline_member_catches_up_in_order() {
    let (_relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);
    let sent = [
        (&alice, "one"),
        (&bob, "two"),
        (&alice, "three"),
        (&bob, "four"),
        (&bob, "five"),
    ];
    for (sender, text) in sent {
        sender.group_send(CIRCLE, text);
    }

    let expected: Vec<String> = sent
        .iter()
        .map(|(sender, text)| format!("{}: {text}", sender.handle()))
        .collect();
    assert_eq!(receive_circle(&carol), expected);
    assert!(carol.receive_json().is_empty(), "received twice");
    assert_eq!(
        circle_history(&carol),
        ["one", "two", "three", "four", "five"]
    );
}

#[test]
fn chat_with_a_circle_sends_what_is_typed_and_shows_replies() {
    if !tmux_present() {
        return;
    }
    let (_relay, [alice, bob]) = circle_of(["alice", "bob"]);
    let log = tempfile::tempdir().unwrap();
    let chat = Tmux::start(
        &alice.shell_command(&["chat", "--group", CIRCLE]),
        80,
        24,
        &log.path().join("chat.stderr"),
    );
    chat.wait_for("Circle circle", WAIT);

    chat.type_text("hello from the circle chat");
    chat.press("Enter");
    let mut receiver = bob.spawn_receive(30);
    let message = receiver.next_message(WAIT);
    assert_eq!(
        circle_message(&message),
        "alice: hello from the circle chat"
    );
    drop(receiver);

    bob.group_send(CIRCLE, "reply to the circle");
    chat.wait_for("reply to the circle", WAIT);

    chat.press("Escape");
    wait_until("kith chat to quit", WAIT, || {
        (!chat.running()).then_some(())
    });
    assert_eq!(
        circle_history(&alice),
        ["hello from the circle chat", "reply to the circle"]
    );
}
