//! `kith chat` in a real pseudo-terminal (a tmux session): typing sends, replies show up, Esc
//! quits.

use kith_tests::cli::{Tmux, wait_until};

use crate::{WAIT, alice_and_bob, assert_received, texts};

/// Whether the test can run: tmux is required on CI; elsewhere its absence skips the test.
pub(crate) fn tmux_present() -> bool {
    if Tmux::available() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "tmux is required on CI to test `kith chat` in a terminal (apt-get install tmux)"
    );
    eprintln!("skipping the `kith chat` test: tmux is not installed");
    false
}

#[test]
fn chat_sends_what_is_typed_and_shows_replies() {
    if !tmux_present() {
        return;
    }
    let (_relay, alice, bob) = alice_and_bob();
    let log = tempfile::tempdir().unwrap();
    let chat = Tmux::start(
        &alice.shell_command(&["chat", "bob"]),
        80,
        24,
        &log.path().join("chat.stderr"),
    );
    chat.wait_for("Chat with @bob", WAIT);

    chat.type_text("hello from chat");
    chat.press("Enter");
    let mut receiver = bob.spawn_receive(30);
    assert_received(&receiver.next_message(WAIT), "alice", "hello from chat");
    drop(receiver);

    bob.send("alice", "reply to chat");
    chat.wait_for("reply to chat", WAIT);

    chat.press("Escape");
    wait_until("kith chat to quit", WAIT, || {
        (!chat.running()).then_some(())
    });
    let history = alice.history_json("bob");
    assert_eq!(texts(&history), ["hello from chat", "reply to chat"]);
}
