//! Mailboxes with real sessions and sealed sender: live pushes, offline queues in order, acks,
//! restarts and idempotent retries.

use kith_protocol::wire::{ErrorKind, Handle, Recipient, Request, Response, SendRequest};
use kith_protocol::{
    AccountPublicKey, BoundedBytes, BoundedVec, Session, SessionMessage, VerifiedCertificate,
};
use kith_tests::{Connection, TestDevice, TestRelay, rng};
use rand_chacha::ChaCha20Rng;

use crate::{WAIT, assert_accepted, assert_error, message_id};

/// One side of a conversation: a device and its session with the peer.
struct Party {
    device: TestDevice,
    session: Option<Session>,
    /// The peer's verified certificate (learned from a bundle or an opened envelope).
    peer: Option<VerifiedCertificate>,
    /// RNG for responding and decrypting (the device's own RNG is borrowed by its prekeys).
    rng: ChaCha20Rng,
}

impl Party {
    fn new(handle: &str, seed: u64, one_time: usize) -> Self {
        Self {
            device: TestDevice::new(handle, seed, one_time),
            session: None,
            peer: None,
            rng: rng(seed + 1_000_000),
        }
    }

    /// Looks the peer up, fetches its bundle and starts a session.
    async fn start_session(&mut self, conn: &mut Connection, peer: &str) {
        let lookup = Request::Lookup {
            handle: Handle::parse(peer).unwrap(),
        };
        let Response::Account { account_key, .. } = conn.request(lookup).await.unwrap() else {
            panic!("peer not found");
        };
        let bundle = fetch_one(conn, account_key).await;
        self.peer = Some(bundle.certificate().verify_for(&account_key).unwrap());
        self.session = Some(self.device.initiate(&account_key, &bundle));
    }

    /// Encrypts and seals `text` for the peer.
    fn seal(&mut self, text: &[u8]) -> Vec<u8> {
        let message = self.session.as_mut().unwrap().encrypt(text).unwrap();
        let peer = self.peer.as_ref().unwrap();
        kith_protocol::seal(&self.device.certificate, peer, &message, &mut self.rng).unwrap()
    }

    /// Opens a sealed body and decrypts it, accepting a new session if needed.
    fn open(&mut self, body: &[u8]) -> Vec<u8> {
        let d = &self.device;
        let opened = kith_protocol::open(&d.keys, &d.certificate, body).expect("envelope opens");
        if let Some(session) = self.session.as_mut() {
            return session
                .decrypt(&opened.sender, &opened.message, &mut self.rng)
                .unwrap();
        }
        let SessionMessage::Prekey(prekey) = &opened.message else {
            panic!("the first message of a session is a prekey message");
        };
        let (session, plaintext) = Session::respond(
            &d.keys,
            &d.certificate,
            &d.responder_prekeys(prekey),
            &opened.sender,
            prekey,
            &mut self.rng,
        )
        .expect("session accepted");
        self.session = Some(session);
        self.peer = Some(opened.sender);
        plaintext
    }

    fn peer_device(&self) -> kith_protocol::DeviceId {
        self.peer.as_ref().unwrap().device_id()
    }
}

async fn fetch_one(
    conn: &mut Connection,
    account_key: AccountPublicKey,
) -> kith_protocol::PrekeyBundle {
    let request = Request::FetchBundles {
        account_key,
        devices: BoundedVec::default(),
    };
    match conn.request(request).await.unwrap() {
        Response::Bundles { bundles } => bundles.into_vec().remove(0),
        other => panic!("expected bundles, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_messages_are_pushed_live_both_ways() {
    let relay = TestRelay::start().await;
    let mut alice = Party::new("alice", 60, 2);
    let mut bob = Party::new("bob", 61, 2);
    let mut alice_conn = relay.register(&alice.device).await;
    let mut bob_conn = relay.register(&bob.device).await;

    alice.start_session(&mut alice_conn, "bob").await;
    let body = alice.seal(b"hello bob");
    let response = alice_conn
        .send(message_id(1), body.clone(), &[bob.device.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(1));

    let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(
        delivery.body.as_slice(),
        body,
        "the relay passes the sealed body unchanged"
    );
    assert_eq!(delivery.part, None);
    assert_eq!(bob.open(delivery.body.as_slice()), b"hello bob");
    assert_eq!(
        bob.peer_device(),
        alice.device.device_id(),
        "the seal names the sender"
    );
    assert_eq!(
        bob_conn.ack(&[delivery.delivery_id]).await.unwrap(),
        Response::Ok
    );

    let reply = bob.seal(b"hi alice");
    let response = bob_conn
        .send(message_id(2), reply, &[alice.device.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(2));
    let delivery = alice_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(alice.open(delivery.body.as_slice()), b"hi alice");
    assert_eq!(
        alice_conn.ack(&[delivery.delivery_id]).await.unwrap(),
        Response::Ok
    );

    // After the reply Alice's messages are plain ratchet messages.
    let body = alice.seal(b"how did you do today?");
    alice_conn
        .send(message_id(3), body, &[bob.device.device_id()])
        .await
        .unwrap();
    let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(bob.open(delivery.body.as_slice()), b"how did you do today?");
    bob_conn.ack(&[delivery.delivery_id]).await.unwrap();

    assert_eq!(relay.store_stats().await.queued_envelopes, 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_resort_bundle_still_starts_a_session() {
    let relay = TestRelay::start().await;
    let mut alice = Party::new("alice", 62, 0);
    let mut bob = Party::new("bob", 63, 0);
    let mut alice_conn = relay.register(&alice.device).await;
    let mut bob_conn = relay.register(&bob.device).await;
    alice.start_session(&mut alice_conn, "bob").await;
    let body = alice.seal(b"no one-time keys left");
    alice_conn
        .send(message_id(1), body, &[bob.device.device_id()])
        .await
        .unwrap();
    let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(bob.open(delivery.body.as_slice()), b"no one-time keys left");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_arrives_in_order_then_ack_deletes() {
    let relay = TestRelay::start().await;
    let mut alice = Party::new("alice", 64, 0);
    let mut bob = Party::new("bob", 65, 2);
    let mut alice_conn = relay.register(&alice.device).await;
    relay.register(&bob.device).await.close().await;

    alice.start_session(&mut alice_conn, "bob").await;
    for i in 0..5u64 {
        let body = alice.seal(format!("message {i}").as_bytes());
        let response = alice_conn
            .send(message_id(i), body, &[bob.device.device_id()])
            .await;
        assert_accepted(&response.unwrap(), message_id(i));
    }
    assert_eq!(relay.store_stats().await.queued_envelopes, 5);

    let mut bob_conn = relay.login(&bob.device).await;
    let deliveries = bob_conn.drain_queue(WAIT).await.unwrap();
    assert_eq!(deliveries.len(), 5, "all five, then QueueDrained");
    let ids: Vec<_> = deliveries.iter().map(|d| d.delivery_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    for (i, delivery) in deliveries.iter().enumerate() {
        assert_eq!(
            bob.open(delivery.body.as_slice()),
            format!("message {i}").as_bytes()
        );
    }
    assert_eq!(bob_conn.ack(&ids).await.unwrap(), Response::Ok);
    let stats = relay.store_stats().await;
    assert_eq!((stats.queued_envelopes, stats.queued_bytes), (0, 0));
    bob_conn.close().await;

    // Acknowledged means gone: nothing comes again.
    let mut bob_conn = relay.login(&bob.device).await;
    assert!(bob_conn.drain_queue(WAIT).await.unwrap().is_empty());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_deliveries_come_again_and_only_the_owner_can_ack() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 66, 0);
    let bob = TestDevice::new("bob", 67, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    alice_conn
        .send(message_id(1), b"opaque".to_vec(), &[bob.device_id()])
        .await
        .unwrap();
    let first = bob_conn.next_delivery(WAIT).await.unwrap();
    bob_conn.close().await;

    // Alice cannot delete Bob's entry: acks touch only the acking device's mailbox.
    assert_eq!(
        alice_conn.ack(&[first.delivery_id]).await.unwrap(),
        Response::Ok
    );

    let mut bob_conn = relay.login(&bob).await;
    let again = bob_conn.drain_queue(WAIT).await.unwrap();
    assert_eq!(
        again,
        vec![first.clone()],
        "redelivered unchanged until acknowledged"
    );
    bob_conn.ack(&[first.delivery_id]).await.unwrap();
    assert_eq!(relay.store_stats().await.queued_envelopes, 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_body_many_recipients_with_parts() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 68, 0);
    let bob = TestDevice::new("bob", 69, 0);
    let bob_laptop = bob.another_device(70, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    let mut laptop_conn = relay.register(&bob_laptop).await;
    let recipients = vec![
        Recipient {
            device_id: bob.device_id(),
            part: Some(BoundedBytes::new(b"for phone".to_vec()).unwrap()),
        },
        Recipient {
            device_id: bob_laptop.device_id(),
            part: None,
        },
    ];
    let send = SendRequest {
        client_message_id: message_id(1),
        body: BoundedBytes::new(b"shared body".to_vec()).unwrap(),
        recipients: BoundedVec::new(recipients).unwrap(),
    };
    assert_accepted(
        &alice_conn.request(Request::Send(send)).await.unwrap(),
        message_id(1),
    );
    let phone = bob_conn.next_delivery(WAIT).await.unwrap();
    let laptop = laptop_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(phone.body.as_slice(), b"shared body");
    assert_eq!(
        phone.part.as_ref().map(BoundedBytes::as_slice),
        Some(&b"for phone"[..])
    );
    assert_eq!(laptop.body.as_slice(), b"shared body");
    assert_eq!(laptop.part, None);
    assert_eq!(relay.store_stats().await.queued_envelopes, 2);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_unknown_or_no_devices_are_rejected() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 71, 0);
    let bob = TestDevice::new("bob", 72, 0);
    let stranger = TestDevice::new("stranger", 73, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await;
    let response = alice_conn
        .send(
            message_id(1),
            b"x".to_vec(),
            &[bob.device_id(), stranger.device_id()],
        )
        .await
        .unwrap();
    assert_error(&response, ErrorKind::NotFound);
    let response = alice_conn
        .send(message_id(2), b"x".to_vec(), &[])
        .await
        .unwrap();
    assert_error(&response, ErrorKind::BadRequest);
    assert_eq!(
        relay.store_stats().await.queued_envelopes,
        0,
        "nothing stored"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_send_is_stored_once() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 74, 0);
    let bob = TestDevice::new("bob", 75, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await.close().await;

    // Offline: two sends with one id, one entry.
    for _ in 0..2 {
        let response = alice_conn
            .send(message_id(1), b"once".to_vec(), &[bob.device_id()])
            .await;
        assert_accepted(&response.unwrap(), message_id(1));
    }
    assert_eq!(relay.store_stats().await.queued_envelopes, 1);
    let mut bob_conn = relay.login(&bob).await;
    let deliveries = bob_conn.drain_queue(WAIT).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].body.as_slice(), b"once");

    // Live: a retry is not pushed again. The marker sent after it is the next delivery.
    for _ in 0..2 {
        let response = alice_conn
            .send(message_id(2), b"live".to_vec(), &[bob.device_id()])
            .await;
        assert_accepted(&response.unwrap(), message_id(2));
    }
    alice_conn
        .send(message_id(3), b"marker".to_vec(), &[bob.device_id()])
        .await
        .unwrap();
    assert_eq!(
        bob_conn.next_delivery(WAIT).await.unwrap().body.as_slice(),
        b"live"
    );
    assert_eq!(
        bob_conn.next_delivery(WAIT).await.unwrap().body.as_slice(),
        b"marker"
    );
    assert_eq!(relay.store_stats().await.queued_envelopes, 3);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_nothing_accepted() {
    let mut relay = TestRelay::start().await;
    let mut alice = Party::new("alice", 76, 0);
    let mut bob = Party::new("bob", 77, 4);
    let mut alice_conn = relay.register(&alice.device).await;
    relay.register(&bob.device).await.close().await;
    alice.start_session(&mut alice_conn, "bob").await;

    // Pipelined sends: every Accepted must survive the restart that follows at once.
    const SENDS: u64 = 20;
    let mut pending = Vec::new();
    for i in 0..SENDS {
        let body = alice.seal(format!("before restart {i}").as_bytes());
        let recipients = vec![Recipient {
            device_id: bob.device.device_id(),
            part: None,
        }];
        let send = SendRequest {
            client_message_id: message_id(i),
            body: BoundedBytes::new(body).unwrap(),
            recipients: BoundedVec::new(recipients).unwrap(),
        };
        pending.push((
            i,
            alice_conn.send_request(Request::Send(send)).await.unwrap(),
        ));
    }
    for (i, request_id) in pending {
        assert_accepted(
            &alice_conn.response(request_id).await.unwrap(),
            message_id(i),
        );
    }
    relay.restart().await;

    let mut bob_conn = relay.login(&bob.device).await;
    let deliveries = bob_conn.drain_queue(WAIT).await.unwrap();
    assert_eq!(deliveries.len() as u64, SENDS);
    for (i, delivery) in deliveries.iter().enumerate() {
        assert_eq!(
            bob.open(delivery.body.as_slice()),
            format!("before restart {i}").as_bytes()
        );
    }
    // Accounts, devices and prekeys survived too: Alice signs in and Bob answers.
    let mut alice_conn = relay.login(&alice.device).await;
    let reply = bob.seal(b"got them all");
    bob_conn
        .send(message_id(100), reply, &[alice.device.device_id()])
        .await
        .unwrap();
    let delivery = alice_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(alice.open(delivery.body.as_slice()), b"got them all");
    let stats = relay.store_stats().await;
    assert_eq!((stats.accounts, stats.devices), (2, 2));
    relay.shutdown().await;
}

/// Shutting down while sends are in flight: every send answered `Accepted` is delivered after
/// the restart, and nothing is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_sends_keeps_every_accepted_message() {
    const SENDS: u64 = 100;
    let mut relay = TestRelay::start_with(|c| {
        c.send_rate_per_second = 10_000;
        c.send_burst = 10_000;
    })
    .await;
    let alice = TestDevice::new("alice", 78, 0);
    let bob = TestDevice::new("bob", 79, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await.close().await;
    let mut pending = Vec::new();
    for i in 0..SENDS {
        let recipients = vec![Recipient {
            device_id: bob.device_id(),
            part: None,
        }];
        let send = SendRequest {
            client_message_id: message_id(i),
            body: BoundedBytes::new(i.to_be_bytes().to_vec()).unwrap(),
            recipients: BoundedVec::new(recipients).unwrap(),
        };
        pending.push((
            i,
            alice_conn.send_request(Request::Send(send)).await.unwrap(),
        ));
    }
    // Shut down once half are answered; the rest are in flight or not yet read. The answers
    // already read stay buffered in the connection.
    let (half, request_id) = pending[pending.len() / 2];
    assert_accepted(
        &alice_conn.response(request_id).await.unwrap(),
        message_id(half),
    );
    let mut accepted = vec![half];
    relay.restart().await;
    for (i, request_id) in pending.into_iter().filter(|&(i, _)| i != half) {
        match alice_conn.response(request_id).await {
            Ok(response) => {
                assert_accepted(&response, message_id(i));
                accepted.push(i);
            }
            Err(_) => assert!(alice_conn.is_closed(), "unanswered only because closed"),
        }
    }

    let mut bob_conn = relay.login(&bob).await;
    let delivered: Vec<u64> = bob_conn
        .drain_queue(WAIT)
        .await
        .unwrap()
        .iter()
        .map(|d| u64::from_be_bytes(d.body.as_slice().try_into().unwrap()))
        .collect();
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "in order, nothing twice: {delivered:?}"
    );
    for i in &accepted {
        assert!(
            delivered.contains(i),
            "accepted message {i} lost: delivered {delivered:?}"
        );
    }
    eprintln!(
        "{} of {SENDS} accepted before shutdown, {} delivered",
        accepted.len(),
        delivered.len()
    );
    relay.shutdown().await;
}
