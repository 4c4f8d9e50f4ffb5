//! `kill -9` of the receiving `kith` process at arbitrary points while it works through its
//! queue (between storing a message and printing it, between printing and acknowledging), and
//! of `kith send` at arbitrary points of a send.
//!
//! The client stores a message (session, history) in one durable write, then prints it, then
//! acknowledges it. So after any kill: nothing is lost (every message is in `kith history`
//! exactly once, in order), nothing is printed twice (a redelivered envelope whose message key
//! was already used is recognised and dropped silently), and the relay's queue ends empty. A
//! message stored just before a kill and not yet printed shows in the history, not again on
//! the next `kith receive`.

use std::collections::BTreeSet;

use kith_protocol::rand_core::Rng;
use kith_tests::rng;

use crate::{WAIT, alice_and_bob, texts};

/// Messages queued for the receiver.
const MESSAGES: usize = 40;

/// Receiving processes killed.
const KILLS: usize = 8;

#[test]
fn a_receiver_killed_before_its_acks_loses_nothing_and_shows_nothing_twice() {
    let (relay, alice, bob) = alice_and_bob();
    let sent: Vec<String> = (0..MESSAGES).map(|i| format!("message {i:02}")).collect();
    for text in &sent {
        alice.send("bob", text);
    }
    let mut rng = rng(0x6b69_7468);
    let mut shown: Vec<String> = Vec::new();
    for _ in 0..KILLS {
        let mut receiver = bob.spawn_receive(30);
        // Read a few, then SIGKILL (on drop) while it is busy with the next ones.
        let read = 1 + usize::try_from(rng.next_u32() % 2).unwrap();
        for _ in 0..read {
            let message = receiver.next_message(WAIT);
            shown.push(message["text"].as_str().unwrap().to_owned());
        }
        drop(receiver);
    }
    let rest = bob.receive_json();
    shown.extend(texts(&rest).into_iter().map(str::to_owned));

    // Never printed twice, never anything that was not sent, in the order sent.
    let unique: BTreeSet<&String> = shown.iter().collect();
    assert_eq!(unique.len(), shown.len(), "printed twice: {shown:?}");
    let order: Vec<usize> = shown
        .iter()
        .map(|t| sent.iter().position(|s| s == t).expect("a sent message"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order: {order:?}");

    // Nothing lost: the history holds every message once, in order.
    let history = bob.history_json("alice");
    assert_eq!(texts(&history), sent, "bob's history");
    // Everything was acknowledged in the end: nothing more comes.
    assert!(bob.receive_json().is_empty(), "received again");
    assert_eq!(
        relay.stat("queued_envelopes"),
        0,
        "the relay still queues messages"
    );
    eprintln!(
        "{KILLS} kills: {} of {MESSAGES} messages printed by `kith receive`, the rest only in \
         the history (stored just before a kill)",
        shown.len()
    );
}

/// Sends killed at arbitrary points.
const SEND_KILLS: usize = 12;

/// `kill -9` of `kith send` at random moments (unlocking, encrypting, after the session is
/// stored, while the envelope is on its way): the sender's state stays usable, no message key
/// is used twice (a reused key would make the receiver drop a message as undecryptable or as a
/// replay), every send that finished arrives, and nothing arrives twice.
#[test]
fn a_sender_killed_mid_send_never_reuses_a_message_key() {
    let (_relay, alice, bob) = alice_and_bob();
    // A first exchange, so that the kills hit the ratchet rather than session set-up only.
    alice.send("bob", "hello");
    assert_eq!(texts(&bob.receive_json()), ["hello"]);
    let mut rng = rng(0x6b69_6c6c_5e4e);
    let mut finished = Vec::new();
    let mut attempted = Vec::new();
    for i in 0..SEND_KILLS {
        let text = format!("killed send {i:02}");
        attempted.push(text.clone());
        let mut child = alice
            .command(["send", "bob", &text])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The fault's timing, not a synchronisation: anywhere in a send's few hundred ms.
        let after = std::time::Duration::from_millis(u64::from(rng.next_u32() % 400));
        std::thread::sleep(after);
        let _ = child.kill();
        if child.wait().unwrap().success() {
            finished.push(text);
        }
        // The next send must work whatever state the killed one left.
        let text = format!("normal send {i:02}");
        alice.send("bob", &text);
        attempted.push(text.clone());
        finished.push(text);
    }
    let out = bob.kith(["receive", "--json"]).success();
    let received = kith_tests::cli::json_lines(&out);
    let shown: Vec<String> = texts(&received).into_iter().map(str::to_owned).collect();
    assert!(
        !out.stderr.contains("could not be read"),
        "a message was dropped (a reused or lost key): {}",
        out.stderr
    );
    let unique: BTreeSet<&String> = shown.iter().collect();
    assert_eq!(unique.len(), shown.len(), "shown twice: {shown:?}");
    for text in &finished {
        assert!(shown.contains(text), "{text:?} was sent but not received");
    }
    for text in &shown {
        assert!(attempted.contains(text), "{text:?} was never sent");
    }
    eprintln!(
        "{SEND_KILLS} killed sends: {} finished before the kill, {} of the killed ones arrived",
        finished.len() - SEND_KILLS,
        shown.len() - SEND_KILLS
    );
}
