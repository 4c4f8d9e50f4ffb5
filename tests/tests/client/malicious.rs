//! The real client against a relay that misbehaves on purpose ([`EvilRelay`]): it lies in
//! directory answers, tampers with prekey bundles, drops, reorders, repeats, reflects and
//! misdirects envelopes, and replays circle changes; an account of the operator's own
//! ([`Peer`]) sends what no honest client would (re-encrypted copies, a borrowed name, a forged
//! circle change). The relay is untrusted; each test checks what the user sees, and that
//! nothing is decrypted twice, attributed wrongly or sent when it must not be.

use std::collections::HashSet;

use kith::{
    Client, Event, Home, InitOptions, Message, Passphrase, RelayUrl, TlsTermination, Trust,
};
use kith_protocol::wire::{Delivery, DeliveryId, Request, Response, ServerFrame};
use kith_protocol::{
    Body, BoundedString, BoundedVec, DeviceId, GroupChange, PrekeyBundle, SignedGroupState,
};
use kith_tests::TestDevice;
use kith_tests::evil_relay::{
    EvilRelay, Hook, Out, honest, with_bad_kem_signature, without_kem_prekey,
};

use crate::{Device, TEST_KDF, handle};

mod peer;

use peer::Peer;

/// Creates an account `name` through `evil` (which it trusts as its relay).
async fn device(evil: &EvilRelay, name: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    let options = InitOptions {
        relay: RelayUrl::parse(&format!("wss://localhost:{}", evil.port())).unwrap(),
        trust: Trust::Certificate(evil.certificate_pem().to_owned()),
        handle: handle(name),
        invite: None,
        kdf: TEST_KDF,
    };
    // The evil relay terminates TLS and forwards the login, as a proxy does: the login cannot
    // be bound to TLS. Everything end-to-end stays as it is.
    let client = Client::init_with_termination(
        &home,
        &Passphrase::new("test".into()),
        options,
        TlsTermination::Proxy,
    )
    .await
    .unwrap();
    Device { client, _home: dir }
}

/// The texts of the messages among `events`, in order.
fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

/// The gap notices among `events`, as (sender, missing).
fn gaps(events: &[Event]) -> Vec<(String, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Gap { handle, missing } => Some((handle.as_str().to_owned(), *missing)),
            _ => None,
        })
        .collect()
}

/// The texts of the conversation with `with`, oldest first.
fn history(device: &Device, with: &str) -> Vec<String> {
    device
        .client
        .history(&handle(with), None)
        .unwrap()
        .iter()
        .map(|m: &Message| m.text.clone())
        .collect()
}

/// The distinct envelope bodies pushed to `device` so far, first push first (a delivery is
/// pushed again on every connection until it is acknowledged).
fn bodies_pushed_to(evil: &EvilRelay, device: DeviceId) -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for delivery in evil.delivered_to(device) {
        let body = delivery.body.into_vec();
        if !bodies.contains(&body) {
            bodies.push(body);
        }
    }
    bodies
}

/// How many `Send` requests `device` made through `evil` so far.
fn sends(evil: &EvilRelay, device: DeviceId) -> usize {
    evil.sent_by(device).len()
}

/// Passes every frame, except deliveries to `victim`, which `tamper` decides about.
fn on_deliveries_to(
    victim: DeviceId,
    mut tamper: impl FnMut(&mut kith_tests::evil_relay::Context<'_>, Delivery) -> Vec<Out>
    + Send
    + 'static,
) -> Hook {
    Box::new(move |context, frame| match frame {
        ServerFrame::Deliver(delivery) if context.device == Some(victim) => {
            tamper(context, delivery)
        }
        frame => vec![Out::Frame(frame)],
    })
}

/// Rewrites the answer to any request `matches` picks, with `rewrite(request_id, response)`.
fn on_responses(
    matches: impl Fn(&Request) -> bool + Send + 'static,
    rewrite: impl Fn(u64, Response) -> Out + Send + 'static,
) -> Hook {
    Box::new(move |context, frame| match frame {
        ServerFrame::Response {
            request_id,
            response,
        } if context.request.as_ref().is_some_and(&matches) => {
            vec![rewrite(request_id, response)]
        }
        frame => vec![Out::Frame(frame)],
    })
}

#[tokio::test]
async fn a_substituted_account_key_blocks_sending_and_warns() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    alice.client.send_text(&handle("bob"), "hi").await.unwrap();
    assert_eq!(texts(&bob.receive().await), ["hi"]);

    // From now on the relay answers for @bob with an account of its own making.
    let impostor = TestDevice::new("bob", 66, 0);
    let fake_key = impostor.account_key();
    let fake_certificate = impostor.certificate.certificate().clone();
    evil.set_hook(on_responses(
        |r| matches!(r, Request::Lookup { handle } if handle.as_str() == "bob"),
        move |request_id, _| {
            Out::Frame(ServerFrame::Response {
                request_id,
                response: Response::Account {
                    account_key: fake_key,
                    devices: BoundedVec::new(vec![fake_certificate.clone()]).unwrap(),
                },
            })
        },
    ));
    let before = sends(&evil, alice.client.device_id());
    let error = alice
        .client
        .send_text(&handle("bob"), "the secret plan")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, kith::Error::KeyChanged { handle } if handle.as_str() == "bob"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("safety number has changed"),
        "{error}"
    );
    assert_eq!(
        sends(&evil, alice.client.device_id()),
        before,
        "nothing sent"
    );

    // The warning stays until the user confirms the new number; the old key is still pinned.
    let verification = alice.client.verification(&handle("bob")).await.unwrap();
    assert!(verification.key_changed && !verification.verified);
    let contacts = alice.client.contacts().unwrap();
    assert!(contacts[0].key_changed, "{contacts:?}");
    assert!(
        alice
            .client
            .send_text(&handle("bob"), "again")
            .await
            .is_err()
    );
    assert_eq!(
        sends(&evil, alice.client.device_id()),
        before,
        "nothing sent"
    );
    assert_eq!(texts(&bob.receive().await), Vec::<String>::new());
    assert_eq!(history(&alice, "bob"), ["hi"]);
    evil.shutdown().await;
}

/// Alice tries to start a session with Bob while the relay tampers with Bob's bundle via
/// `rewrite`; returns the error. Then the relay behaves, and the message goes through once.
async fn first_message_with_tampered_bundle(
    rewrite: impl Fn(u64, Vec<PrekeyBundle>) -> Out + Send + 'static,
) -> kith::Error {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    evil.set_hook(on_responses(
        |r| matches!(r, Request::FetchBundles { .. }),
        move |request_id, response| match response {
            Response::Bundles { bundles } => rewrite(request_id, bundles.into_vec()),
            other => panic!("bundles expected, got {other:?}"),
        },
    ));
    let error = alice
        .client
        .send_text(&handle("bob"), "hello")
        .await
        .unwrap_err();
    assert_eq!(sends(&evil, alice.client.device_id()), 0, "nothing sent");
    assert!(history(&alice, "bob").is_empty());

    evil.set_hook(honest());
    alice
        .client
        .send_text(&handle("bob"), "hello")
        .await
        .unwrap();
    assert_eq!(texts(&bob.receive().await), ["hello"]);
    assert_eq!(history(&bob, "alice"), ["hello"]);
    evil.shutdown().await;
    error
}

#[tokio::test]
async fn a_bundle_with_its_ml_kem_prekey_stripped_is_refused() {
    let error = first_message_with_tampered_bundle(|request_id, bundles| {
        Out::Raw(without_kem_prekey(request_id, &bundles))
    })
    .await;
    assert!(
        matches!(error, kith::Error::Link(kith::LinkError::Protocol)),
        "{error:?}"
    );
    assert!(error.to_string().contains("does not understand"), "{error}");
}

#[tokio::test]
async fn a_bundle_with_a_badly_signed_ml_kem_prekey_is_refused() {
    let error = first_message_with_tampered_bundle(|request_id, bundles| {
        let bundles = bundles.iter().map(with_bad_kem_signature).collect();
        Out::Frame(ServerFrame::Response {
            request_id,
            response: Response::Bundles {
                bundles: BoundedVec::new(bundles).unwrap(),
            },
        })
    })
    .await;
    assert!(
        matches!(&error, kith::Error::BadKeys { handle } if handle.as_str() == "bob"),
        "{error:?}"
    );
    assert!(error.to_string().contains("nothing was sent"), "{error}");
}

#[tokio::test]
async fn a_dropped_envelope_is_reported_as_a_gap_and_shown_if_it_comes_late() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    alice.client.send_text(&handle("bob"), "one").await.unwrap();
    assert_eq!(texts(&bob.receive().await), ["one"]);

    // The relay withholds the next envelope for Bob, every time it would push it.
    let mut withheld: Option<DeliveryId> = None;
    evil.set_hook(on_deliveries_to(
        bob.client.device_id(),
        move |_, delivery| match withheld {
            None => {
                withheld = Some(delivery.delivery_id);
                Vec::new()
            }
            Some(id) if id == delivery.delivery_id => Vec::new(),
            Some(_) => vec![Out::Frame(ServerFrame::Deliver(delivery))],
        },
    ));
    alice.client.send_text(&handle("bob"), "two").await.unwrap();
    alice
        .client
        .send_text(&handle("bob"), "three")
        .await
        .unwrap();
    let events = bob.receive().await;
    assert_eq!(texts(&events), ["three"]);
    assert_eq!(gaps(&events), [("alice".to_owned(), 1)], "{events:?}");
    let gap_at = events.iter().position(|e| matches!(e, Event::Gap { .. }));
    let message_at = events.iter().position(|e| matches!(e, Event::Message(_)));
    assert!(
        gap_at < message_at,
        "the notice comes with the message: {events:?}"
    );
    assert!(
        bob.receive()
            .await
            .iter()
            .all(|e| matches!(e, Event::QueueDrained))
    );

    // The relay gives it up after all: it is shown, once, with no new notice.
    evil.set_hook(honest());
    let events = bob.receive().await;
    assert_eq!(texts(&events), ["two"]);
    assert!(gaps(&events).is_empty(), "{events:?}");
    assert_eq!(history(&bob, "alice"), ["one", "three", "two"]);
    assert!(texts(&bob.receive().await).is_empty());
    evil.shutdown().await;
}

#[tokio::test]
async fn reordered_envelopes_each_decrypt_once() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    // The relay holds Bob's envelopes back and pushes them newest first.
    let victim = bob.client.device_id();
    let mut held = Vec::new();
    evil.set_hook(Box::new(move |context, frame| match frame {
        ServerFrame::Deliver(delivery) if context.device == Some(victim) => {
            held.push(delivery);
            Vec::new()
        }
        ServerFrame::QueueDrained if context.device == Some(victim) => held
            .drain(..)
            .rev()
            .map(|d| Out::Frame(ServerFrame::Deliver(d)))
            .chain([Out::Frame(ServerFrame::QueueDrained)])
            .collect(),
        frame => vec![Out::Frame(frame)],
    }));
    for text in ["one", "two", "three"] {
        alice.client.send_text(&handle("bob"), text).await.unwrap();
    }
    let events = bob.receive().await;
    assert_eq!(texts(&events), ["three", "two", "one"], "{events:?}");
    // The newest one, first to arrive, shows two missing; the late ones just decrypt.
    assert_eq!(gaps(&events), [("alice".to_owned(), 2)], "{events:?}");
    assert!(texts(&bob.receive().await).is_empty());
    assert_eq!(history(&bob, "alice"), ["three", "two", "one"]);
    assert!(
        bob.client
            .history(&handle("alice"), None)
            .unwrap()
            .iter()
            .all(|m| m.from == handle("alice") && !m.outgoing)
    );

    // The reply goes back through the session the reordered messages started.
    evil.set_hook(honest());
    bob.client
        .send_text(&handle("alice"), "got them")
        .await
        .unwrap();
    assert_eq!(texts(&alice.receive().await), ["got them"]);
    evil.shutdown().await;
}

#[tokio::test]
async fn replayed_envelopes_each_decrypt_once() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    // The relay pushes every envelope for Bob twice (the copy under an id of its own).
    evil.set_hook(on_deliveries_to(
        bob.client.device_id(),
        |context, delivery| {
            let copy = context.replay(&delivery);
            vec![
                Out::Frame(ServerFrame::Deliver(delivery)),
                Out::Frame(ServerFrame::Deliver(copy)),
            ]
        },
    ));
    alice.client.send_text(&handle("bob"), "one").await.unwrap();
    alice.client.send_text(&handle("bob"), "two").await.unwrap();
    let events = bob.receive().await;
    assert_eq!(texts(&events), ["one", "two"], "{events:?}");
    assert!(gaps(&events).is_empty(), "{events:?}");

    // Later, it replays everything Bob was ever given, on a new connection.
    evil.set_hook(honest());
    let pushed = bodies_pushed_to(&evil, bob.client.device_id());
    assert_eq!(pushed.len(), 2, "two envelopes");
    for body in pushed {
        evil.inject(bob.client.device_id(), body.clone());
        evil.inject(bob.client.device_id(), body);
    }
    let events = bob.receive().await;
    assert!(texts(&events).is_empty(), "{events:?}");
    assert!(gaps(&events).is_empty(), "{events:?}");
    assert_eq!(history(&bob, "alice"), ["one", "two"]);

    // The session is unharmed.
    alice
        .client
        .send_text(&handle("bob"), "three")
        .await
        .unwrap();
    assert_eq!(texts(&bob.receive().await), ["three"]);
    evil.shutdown().await;
}

#[tokio::test]
async fn an_envelope_reflected_to_its_sender_does_not_open() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    alice
        .client
        .send_text(&handle("bob"), "for bob")
        .await
        .unwrap();
    let sent = evil.sent_by(alice.client.device_id());
    assert_eq!(sent.len(), 1);
    evil.inject(alice.client.device_id(), sent[0].clone());

    let events = alice.receive().await;
    assert!(texts(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Dropped { reason } if reason.contains("could not be opened"))
        ),
        "{events:?}"
    );
    assert_eq!(history(&alice, "bob"), ["for bob"]);
    assert!(
        alice.client.history(&handle("bob"), None).unwrap()[0].outgoing,
        "still only Alice's own message"
    );
    assert_eq!(texts(&bob.receive().await), ["for bob"]);
    evil.shutdown().await;
}

#[tokio::test]
async fn a_replayed_or_tampered_circle_change_is_ignored() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    let mut carol = device(&evil, "carol").await;
    let bob_id = bob.client.device_id();

    alice
        .client
        .group_create("circle", &[handle("bob"), handle("carol")])
        .await
        .unwrap();
    bob.receive().await;
    carol.receive().await;
    let invitation = bodies_pushed_to(&evil, bob_id);
    assert_eq!(invitation.len(), 1, "one circle state for Bob");
    alice
        .client
        .group_remove("circle", &[handle("carol")])
        .await
        .unwrap();
    let events = bob.receive().await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::GroupChanged { .. })),
        "{events:?}"
    );
    let members = |device: &Device| -> HashSet<String> {
        device.client.groups().unwrap()[0]
            .members
            .iter()
            .map(|m| m.handle.as_str().to_owned())
            .collect()
    };
    let after_removal = members(&bob);
    assert!(!after_removal.contains("carol"));

    // The relay tries to roll Bob back to the state with Carol in it: the old change again,
    // the change that was Carol's, and the old change with a byte altered.
    let carols = bodies_pushed_to(&evil, carol.client.device_id())[0].clone();
    let old = invitation[0].clone();
    let mut altered = old.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    for body in [old, carols, altered] {
        evil.inject(bob_id, body);
    }
    let events = bob.receive().await;
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::GroupChanged { .. } | Event::Message(_))),
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Dropped { .. }))
            .count(),
        2,
        "Carol's envelope and the altered one are reported: {events:?}"
    );
    assert_eq!(members(&bob), after_removal);
    assert_eq!(
        bob.client.groups().unwrap()[0].epoch,
        alice.client.groups().unwrap()[0].epoch
    );

    // The circle still works between the remaining members.
    alice.client.group_send("circle", "still us").await.unwrap();
    assert_eq!(texts(&bob.receive().await), ["still us"]);
    evil.shutdown().await;
}

#[tokio::test]
async fn a_peer_cannot_get_a_message_shown_twice_or_under_another_name() {
    let evil = EvilRelay::start().await;
    let _alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    let mut mallory = Peer::register(&evil, "mallory", 77).await;

    // The same content twice, each copy encrypted anew: the ratchet cannot tell, the id can.
    let text = BoundedString::new("only once").unwrap();
    let content = mallory.content(Body::Text { text });
    mallory.send(&handle("bob"), &content).await;
    mallory.send(&handle("bob"), &content).await;
    let events = bob.receive().await;
    assert_eq!(texts(&events), ["only once"], "{events:?}");
    assert_eq!(history(&bob, "mallory"), ["only once"]);

    // A content claiming to be from Alice: the directory does not map @alice to Mallory's key.
    let text = BoundedString::new("it's me, alice").unwrap();
    let mut claim = mallory.content(Body::Text { text });
    claim.sender = handle("alice");
    mallory.send(&handle("bob"), &claim).await;
    let events = bob.receive().await;
    assert!(texts(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Dropped { reason } if reason.contains("could not be confirmed"))
        ),
        "{events:?}"
    );
    assert!(history(&bob, "alice").is_empty());
    assert_eq!(history(&bob, "mallory"), ["only once"]);
    evil.shutdown().await;
}

/// `signed` with its members replaced by `members` (JSON), its signature left as it was.
fn with_members(signed: &SignedGroupState, members: serde_json::Value) -> SignedGroupState {
    let mut value = serde_json::to_value(signed).unwrap();
    value["state"]["members"] = members;
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_circle_change_forged_by_a_member_is_ignored() {
    let evil = EvilRelay::start().await;
    let mut alice = device(&evil, "alice").await;
    let mut bob = device(&evil, "bob").await;
    let mut mallory = Peer::register(&evil, "mallory", 78).await;
    let circle = alice
        .client
        .group_create("circle", &[handle("bob"), handle("mallory")])
        .await
        .unwrap();
    assert_eq!(circle.members.len(), 3);
    assert!(
        bob.receive()
            .await
            .iter()
            .any(|e| matches!(e, Event::GroupChanged { .. }))
    );
    let Body::GroupUpdate(genesis) = mallory.receive().await.body else {
        panic!("the circle's state expected");
    };
    let state = genesis
        .accept_invitation(&mallory.device.account_key(), genesis.signer())
        .unwrap();

    // Mallory, not an admin, makes herself one: she can only sign her own leaving, so she
    // signs that and swaps in the member list she wants (admin flag set on herself).
    let mut members = serde_json::to_value(state.signed()).unwrap()["state"]["members"].clone();
    let mallory_entry = members
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["handle"] == "mallory")
        .unwrap();
    mallory_entry["admin"] = serde_json::Value::Bool(true);
    let leave = state
        .successor(
            GroupChange::Leave,
            &mallory.device.account,
            &mut kith_tests::rng(9),
        )
        .unwrap();
    let forged = with_members(&leave, members);
    let update = mallory.content(Body::GroupUpdate(forged));
    mallory.send(&handle("bob"), &update).await;
    // And the circle's first state again, as if it were news.
    let replayed = mallory.content(Body::GroupUpdate(genesis.clone()));
    mallory.send(&handle("bob"), &replayed).await;

    let events = bob.receive().await;
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::GroupChanged { .. } | Event::Message(_))),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Dropped { reason } if reason.contains("admins did not make"))
        ),
        "{events:?}"
    );
    let circle = &bob.client.groups().unwrap()[0];
    assert_eq!(circle.epoch, 0);
    let admins: Vec<&str> = circle
        .members
        .iter()
        .filter(|m| m.admin)
        .map(|m| m.handle.as_str())
        .collect();
    assert_eq!(admins, ["alice"]);

    alice
        .client
        .group_send("circle", "still ours")
        .await
        .unwrap();
    assert_eq!(texts(&bob.receive().await), ["still ours"]);
    evil.shutdown().await;
}
