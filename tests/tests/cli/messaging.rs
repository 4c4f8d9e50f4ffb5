//! Sending and receiving: the quick start, a recipient who was offline, one who waits online,
//! and a relay restart in the middle of a conversation.

use kith_tests::cli::wait_until;

use crate::{WAIT, alice_and_bob, assert_received, exchange, outgoing, texts};

#[test]
fn quick_start_two_people_write_to_each_other() {
    let (_relay, alice, bob) = alice_and_bob();

    alice.send("bob", "hello bob");
    assert_eq!(bob.receive_lines(), ["@alice: hello bob"]);
    bob.send("@alice", "hello alice");
    let received = alice.receive_json();
    assert_eq!(received.len(), 1, "{received:?}");
    let message = &received[0];
    assert_received(message, "bob", "hello alice");
    assert_eq!(message["to"], "alice", "{message}");
    assert_eq!(message["conversation"], "bob", "{message}");
    let id = message["id"].as_str().expect("an id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "id {id:?}"
    );
    assert!(message["sent_at"].as_u64().is_some(), "{message}");
    assert!(message["received_at"].as_u64().is_some(), "{message}");

    for (home, other, flags) in [
        (&alice, "bob", [true, false]),
        (&bob, "@alice", [false, true]),
    ] {
        let history = home.history_json(other);
        assert_eq!(texts(&history), ["hello bob", "hello alice"], "{history:?}");
        assert_eq!(outgoing(&history), flags, "{history:?}");
    }
    let limited = alice
        .kith(["history", "bob", "--limit", "1", "--json"])
        .success();
    assert_eq!(limited.lines().len(), 1, "{limited:?}");
    assert!(limited.stdout.contains("hello alice"), "{limited:?}");

    for (home, other) in [(&alice, "bob"), (&bob, "alice")] {
        let contacts = home.contacts_json();
        assert_eq!(contacts.len(), 1, "{contacts:?}");
        assert_eq!(contacts[0]["handle"], other);
        assert_eq!(contacts[0]["verified"], false);
        assert_eq!(contacts[0]["key_changed"], false);
        assert_eq!(contacts[0]["devices"], 1);
    }
}

#[test]
fn messages_wait_for_a_recipient_who_never_connected() {
    let (relay, alice, bob) = alice_and_bob();
    let sent = ["first", "second one", "third: the last"];
    for text in sent {
        alice.send("bob", text);
    }
    assert_eq!(relay.stat("queued_envelopes"), 3);

    let received = bob.receive_json();
    assert_eq!(texts(&received), sent, "{received:?}");
    for message in &received {
        assert_received(message, "alice", message["text"].as_str().unwrap());
    }
    assert!(bob.receive_json().is_empty(), "received twice");
    assert_eq!(
        relay.stat("queued_envelopes"),
        0,
        "acknowledged and deleted"
    );
}

#[test]
fn a_waiting_receiver_gets_messages_as_they_are_sent() {
    let (relay, alice, bob) = alice_and_bob();
    let mut receiver = bob.spawn_receive(30);
    wait_until("bob's receive to authenticate", WAIT, || {
        (relay.stat("authenticated") >= 1).then_some(())
    });

    alice.send("bob", "are you there?");
    let message = receiver.next_message(WAIT);
    assert_received(&message, "alice", "are you there?");
}

#[test]
fn a_relay_restart_loses_nothing() {
    let (mut relay, alice, bob) = alice_and_bob();
    alice.send("bob", "sent before the restart");

    relay.restart();
    let received = bob.receive_json();
    assert_eq!(
        texts(&received),
        ["sent before the restart"],
        "{received:?}"
    );
    exchange(&bob, &alice, "answered after the restart");
    exchange(&alice, &bob, "and the conversation goes on");
}
