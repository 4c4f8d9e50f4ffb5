//! Many clients at once: every message accounted for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_protocol::DeviceId;
use kith_tests::{TestDevice, TestRelay};
use tokio::sync::Barrier;

use crate::{WAIT, assert_accepted, message_id};

const CLIENTS: usize = 200;
const MESSAGES_EACH: u64 = 5;

/// Body of message `seq` from client `from`, padded like a small sealed envelope.
fn body(from: usize, seq: u64) -> Vec<u8> {
    let mut body = format!("{from}:{seq}:").into_bytes();
    body.resize(256, 0);
    body
}

/// One client: register, wait for everyone, send to the partner, receive from the partner.
/// Returns how many messages it received, in order, from its partner.
async fn client(
    relay_addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    index: usize,
    device: TestDevice,
    partner: DeviceId,
    registered: Arc<Barrier>,
) -> u64 {
    let mut conn = kith_tests::Connection::connect(relay_addr, tls)
        .await
        .unwrap();
    assert_eq!(
        conn.register(&device, None).await.unwrap(),
        kith_protocol::wire::Response::Ok
    );
    registered.wait().await;
    for seq in 0..MESSAGES_EACH {
        let id = message_id((index as u64) << 32 | seq);
        assert_accepted(
            &conn.send(id, body(index, seq), &[partner]).await.unwrap(),
            id,
        );
    }
    let mut ids = Vec::new();
    for seq in 0..MESSAGES_EACH {
        let delivery = conn.next_delivery(WAIT).await.unwrap();
        assert_eq!(
            delivery.body.as_slice(),
            body(index ^ 1, seq),
            "client {index}"
        );
        ids.push(delivery.delivery_id);
    }
    assert_eq!(
        conn.ack(&ids).await.unwrap(),
        kith_protocol::wire::Response::Ok
    );
    ids.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_exchange_messages() {
    let relay = TestRelay::start().await;
    let started = Instant::now();
    let devices: Vec<TestDevice> = tokio::task::spawn_blocking(|| {
        (0..CLIENTS)
            .map(|i| TestDevice::new(&format!("peer{i}"), 10_000 + i as u64, 0))
            .collect()
    })
    .await
    .unwrap();
    let ids: Vec<DeviceId> = devices.iter().map(TestDevice::device_id).collect();
    let keys_done = started.elapsed();

    let started = Instant::now();
    let registered = Arc::new(Barrier::new(CLIENTS));
    let tls = relay.tls();
    let tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, device)| {
            let fut = client(
                relay.addr(),
                tls.clone(),
                i,
                device,
                ids[i ^ 1],
                registered.clone(),
            );
            tokio::spawn(fut)
        })
        .collect();
    let all = async {
        let mut received = 0;
        for task in tasks {
            received += task.await.unwrap();
        }
        received
    };
    let received = tokio::time::timeout(Duration::from_secs(90), all)
        .await
        .expect("load test timed out");
    let elapsed = started.elapsed();
    assert_eq!(
        received,
        CLIENTS as u64 * MESSAGES_EACH,
        "every message accounted for"
    );
    let stats = relay.store_stats().await;
    assert_eq!(stats.devices, CLIENTS as u64);
    assert_eq!(
        stats.queued_envelopes, 0,
        "every message acknowledged and deleted"
    );
    eprintln!(
        "{CLIENTS} clients: keys {keys_done:?}; register + {} messages + acks in {elapsed:?}",
        received
    );
    relay.shutdown().await;
}

/// A device that connects while its queue is long and new messages keep arriving gets every
/// message exactly once, in order: the hand-over from queue to live pushes loses nothing and
/// repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_drain_and_live_pushes_hand_over_cleanly() {
    const QUEUED: u64 = 60;
    const LIVE: u64 = 60;
    let relay = TestRelay::start_with(|c| {
        c.send_rate_per_second = 10_000;
        c.send_burst = 10_000;
    })
    .await;
    let alice = TestDevice::new("alice", 500, 0);
    let bob = TestDevice::new("bob", 501, 0);
    let mut alice_conn = relay.register(&alice).await;
    relay.register(&bob).await.close().await;
    for seq in 0..QUEUED {
        let id = message_id(seq);
        assert_accepted(
            &alice_conn
                .send(id, body(0, seq), &[bob.device_id()])
                .await
                .unwrap(),
            id,
        );
    }

    // Alice keeps sending while Bob connects and drains.
    let bob_id = bob.device_id();
    let sender = tokio::spawn(async move {
        for seq in QUEUED..QUEUED + LIVE {
            let id = message_id(seq);
            assert_accepted(
                &alice_conn.send(id, body(0, seq), &[bob_id]).await.unwrap(),
                id,
            );
        }
    });
    let mut bob_conn = relay.login(&bob).await;
    let mut ids = Vec::new();
    for seq in 0..QUEUED + LIVE {
        let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
        assert_eq!(
            delivery.body.as_slice(),
            body(0, seq),
            "message {seq} in order, once"
        );
        ids.push(delivery.delivery_id);
    }
    sender.await.unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for chunk in ids.chunks(kith_protocol::consts::MAX_ACKS_PER_FRAME) {
        assert_eq!(
            bob_conn.ack(chunk).await.unwrap(),
            kith_protocol::wire::Response::Ok
        );
    }
    // Nothing more comes, not even after a reconnect.
    bob_conn.close().await;
    let mut bob_conn = relay.login(&bob).await;
    assert!(bob_conn.drain_queue(WAIT).await.unwrap().is_empty());
    assert_eq!(relay.store_stats().await.queued_envelopes, 0);
    relay.shutdown().await;
}

/// A device that pipelines its sends (writes many before reading any answer) gets every one
/// accepted, the answers in request order, and its partner gets them in the order sent — the
/// relay overlaps only the waits for durability, never the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_keep_request_order() {
    const SENDS: u64 = 300;
    let relay = TestRelay::start_with(|c| {
        c.send_rate_per_second = 10_000;
        c.send_burst = 10_000;
    })
    .await;
    let alice = TestDevice::new("alice", 1, 0);
    let bob = TestDevice::new("bob", 2, 0);
    let mut alice_conn = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    bob_conn.wait_queue_drained(WAIT).await.unwrap();

    // More than the relay's per-connection limit of requests in flight (128), so its
    // back-pressure is exercised too; an ack rides in the middle of the sends.
    let mut request_ids = Vec::new();
    for seq in 0..SENDS {
        let request = kith_protocol::wire::Request::Send(kith_protocol::wire::SendRequest {
            client_message_id: message_id(seq),
            body: kith_protocol::BoundedBytes::new(body(0, seq)).unwrap(),
            recipients: kith_protocol::BoundedVec::new(vec![kith_protocol::wire::Recipient {
                device_id: bob.device_id(),
                part: None,
            }])
            .unwrap(),
        });
        request_ids.push(alice_conn.send_request(request).await.unwrap());
        if seq == SENDS / 2 {
            request_ids.push(alice_conn.send_request(ack_nothing()).await.unwrap());
        }
    }
    let mut seq = 0;
    for &request_id in &request_ids {
        let response = alice_conn.response(request_id).await.unwrap();
        if response == kith_protocol::wire::Response::Ok {
            continue;
        }
        assert_accepted(&response, message_id(seq));
        seq += 1;
    }
    assert_eq!(seq, SENDS);
    // (The registration's response came first.)
    let order = alice_conn.response_order();
    assert_eq!(
        &order[order.len() - request_ids.len()..],
        request_ids.as_slice(),
        "responses in request order"
    );

    let mut ids = Vec::new();
    for seq in 0..SENDS {
        let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
        assert_eq!(
            delivery.body.as_slice(),
            body(0, seq).as_slice(),
            "in order"
        );
        ids.push(delivery.delivery_id);
    }
    for chunk in ids.chunks(100) {
        assert_eq!(
            bob_conn.ack(chunk).await.unwrap(),
            kith_protocol::wire::Response::Ok
        );
    }
    assert_eq!(relay.store_stats().await.queued_envelopes, 0);
}

/// An `Ack` of nothing: answered `Ok`, a write (of nothing) like any other.
fn ack_nothing() -> kith_protocol::wire::Request {
    kith_protocol::wire::Request::Ack {
        deliveries: kith_protocol::BoundedVec::new(Vec::new()).unwrap(),
    }
}
