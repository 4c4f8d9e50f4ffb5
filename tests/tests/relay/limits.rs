//! Limits: mailbox quota, send rate, and malformed, oversized and text frames, each of which
//! affects only the offending connection.

use kith_protocol::consts::MAX_FRAME_LEN;
use kith_protocol::rand_core::Rng;
use kith_protocol::wire::{ErrorKind, Request, Response};
use kith_tests::{Connection, TestDevice, TestRelay, rng};
use tokio_tungstenite::tungstenite::Message;

use crate::{CLOSE_WAIT, WAIT, assert_accepted, assert_error, error_kind, message_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mailbox_refuses_new_and_keeps_old() {
    let relay = TestRelay::start_with(|c| c.mailbox_max_entries = 3).await;
    let alice = TestDevice::new("alice", 80, 0);
    let bob = TestDevice::new("bob", 81, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await.close().await;
    for i in 0..3u8 {
        let response = alice_conn
            .send(message_id(i.into()), vec![i; 10], &[bob.device_id()])
            .await;
        assert_accepted(&response.unwrap(), message_id(i.into()));
    }
    let response = alice_conn
        .send(message_id(3), vec![3; 10], &[bob.device_id()])
        .await;
    assert_error(&response.unwrap(), ErrorKind::MailboxFull);
    assert_eq!(relay.store_stats().await.queued_envelopes, 3);

    let mut bob_conn = relay.login(&bob).await;
    let deliveries = bob_conn.drain_queue(WAIT).await.unwrap();
    let bodies: Vec<_> = deliveries.iter().map(|d| d.body.as_slice()[0]).collect();
    assert_eq!(bodies, vec![0, 1, 2], "nothing stored was dropped");
    let ids: Vec<_> = deliveries.iter().map(|d| d.delivery_id).collect();
    assert_eq!(bob_conn.ack(&ids).await.unwrap(), Response::Ok);

    // Space again once Bob has read his mail.
    let response = alice_conn
        .send(message_id(4), vec![4; 10], &[bob.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(4));
    assert_eq!(
        bob_conn.next_delivery(WAIT).await.unwrap().body.as_slice(),
        [4; 10]
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_quota_refuses_what_does_not_fit() {
    let relay = TestRelay::start_with(|c| c.mailbox_max_bytes = 262_144).await;
    let alice = TestDevice::new("alice", 82, 0);
    let bob = TestDevice::new("bob", 83, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await.close().await;
    let response = alice_conn
        .send(message_id(1), vec![1; 150_000], &[bob.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(1));
    let response = alice_conn
        .send(message_id(2), vec![2; 150_000], &[bob.device_id()])
        .await;
    assert_error(&response.unwrap(), ErrorKind::MailboxFull);
    let response = alice_conn
        .send(message_id(3), vec![3; 100_000], &[bob.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(3));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_rate_is_limited_per_device() {
    let relay = TestRelay::start_with(|c| {
        c.send_rate_per_second = 1;
        c.send_burst = 2;
    })
    .await;
    let alice = TestDevice::new("alice", 84, 0);
    let carol = TestDevice::new("carol", 85, 0);
    let bob = TestDevice::new("bob", 86, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut carol_conn = relay.register(&carol).await;
    let mut bob_conn = relay.register(&bob).await;

    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..10 {
        let response = alice_conn
            .send(message_id(i), vec![1; 8], &[bob.device_id()])
            .await
            .unwrap();
        match error_kind(&response) {
            None => {
                assert_accepted(&response, message_id(i));
                accepted += 1;
            }
            Some(ErrorKind::RateLimited { retry_after_ms }) => {
                assert!(
                    retry_after_ms > 0 && retry_after_ms <= 2_000,
                    "{retry_after_ms}"
                );
                limited += 1;
            }
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(accepted >= 2, "the burst is allowed: {accepted}");
    assert!(
        limited >= 1,
        "a quick burst of ten is limited: {accepted} accepted"
    );

    // Another device has its own bucket.
    let response = carol_conn
        .send(message_id(100), vec![2; 8], &[bob.device_id()])
        .await
        .unwrap();
    assert_accepted(&response, message_id(100));

    // Exactly the accepted sends were stored.
    for _ in 0..accepted + 1 {
        bob_conn.next_delivery(WAIT).await.unwrap();
    }
    assert_eq!(relay.store_stats().await.queued_envelopes, accepted + 1);
    relay.shutdown().await;
}

/// Alice sends to Bob and Bob receives it: the relay still works for everyone else.
async fn still_works(
    alice: &mut Connection,
    bob: &mut Connection,
    bob_device: &TestDevice,
    n: u64,
) {
    let response = alice
        .send(
            message_id(n),
            n.to_be_bytes().to_vec(),
            &[bob_device.device_id()],
        )
        .await;
    assert_accepted(&response.unwrap(), message_id(n));
    let delivery = bob.next_delivery(WAIT).await.unwrap();
    assert_eq!(delivery.body.as_slice(), n.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 87, 0);
    let bob = TestDevice::new("bob", 88, 0);
    let mallory = TestDevice::new("mallory", 89, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    relay.register(&mallory).await.close().await;

    let mut random = vec![0u8; 512];
    rng(90).fill_bytes(&mut random);
    let mut truncated = kith_protocol::wire::ClientFrame {
        request_id: 1,
        request: Request::Ack {
            deliveries: Default::default(),
        },
    }
    .to_bytes();
    truncated.pop();
    let cases: Vec<(&str, Message)> = vec![
        ("random bytes", Message::binary(random)),
        ("truncated frame", Message::binary(truncated)),
        (
            "oversized frame",
            Message::binary(vec![1u8; MAX_FRAME_LEN + 4096]),
        ),
        ("text frame", Message::text("{\"hello\": \"relay\"}")),
    ];
    for (n, (name, message)) in (1u64..).zip(cases) {
        for authenticated in [true, false] {
            let mut conn = if authenticated {
                relay.login(&mallory).await
            } else {
                relay.connect().await
            };
            // The relay may close while a large frame is still being written.
            let _ = conn.send_raw(message.clone()).await;
            assert!(
                conn.closed(CLOSE_WAIT).await,
                "{name} (authenticated: {authenticated}) closes"
            );
            still_works(
                &mut alice_conn,
                &mut bob_conn,
                &bob,
                n * 10 + u64::from(authenticated),
            )
            .await;
        }
    }
    // Mallory's account is unharmed and can sign in again.
    let mut conn = relay.login(&mallory).await;
    assert!(matches!(
        conn.request(Request::Ack {
            deliveries: Default::default()
        })
        .await
        .unwrap(),
        Response::Ok
    ));
    assert!(!bob_conn.is_closed() && !alice_conn.is_closed());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_body_passes() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 91, 0);
    let bob = TestDevice::new("bob", 92, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    let body = vec![0x5a; kith_protocol::consts::MAX_BODY_LEN];
    let response = alice_conn
        .send(message_id(1), body.clone(), &[bob.device_id()])
        .await;
    assert_accepted(&response.unwrap(), message_id(1));
    assert_eq!(
        bob_conn.next_delivery(WAIT).await.unwrap().body.as_slice(),
        body
    );
    relay.shutdown().await;
}
