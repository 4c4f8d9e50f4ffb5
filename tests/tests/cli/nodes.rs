//! Several relay nodes sharing one PostgreSQL database, as behind a load balancer: clients on
//! different nodes talk live (the sender's node wakes the recipient's through the database)
//! and offline, a circle spans both nodes, one-time prekeys are handed out once across nodes,
//! and a node killed mid-stream loses no accepted message.
//!
//! Each test creates its own database through `KITH_TEST_DATABASE_URL` and drops it at the
//! end; without that variable the tests are skipped (and fail under `CI=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_protocol::wire::{Request, Response};
use kith_protocol::{AccountPublicKey, BoundedVec, DeviceId};
use kith_tests::cli::{Cluster, Home, wait_until};
use kith_tests::device::LAST_RESORT_KEM_ID;
use kith_tests::{Connection, TestDevice, bundle_prekey_ids};
use tokio::sync::Barrier;

use crate::groups::{CIRCLE, everyone_gets, learn_circle};
use crate::{WAIT, assert_received, exchange, texts};

/// A live message crosses nodes through `LISTEN/NOTIFY` in milliseconds; a relay that only
/// found it by polling would take about its polling interval. Generous for a loaded CI host.
const LIVE_DELIVERY: Duration = Duration::from_secs(10);

/// A multi-threaded runtime for the tests that drive the test client; the nodes and the
/// database are set up before it (they block).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn clients_on_two_nodes_talk_live_and_offline() {
    let Some(cluster) = Cluster::start("clients_on_two_nodes_talk_live_and_offline", 2) else {
        return;
    };
    let (node_a, node_b) = (cluster.node(0), cluster.node(1));
    let alice = Home::new("alice");
    let bob = Home::new("bob");
    alice.init(node_a);
    bob.init(node_b);
    assert_eq!(node_a.stat("accounts"), 2, "both nodes see one directory");

    // Live: bob waits on node B, alice sends through node A.
    let mut receiver = bob.spawn_receive(30);
    wait_until("bob's receive to authenticate on node B", WAIT, || {
        (node_b.stat("authenticated") >= 1).then_some(())
    });
    alice.send("bob", "hello from node A");
    let accepted = Instant::now();
    let message = receiver.next_message(WAIT);
    let latency = accepted.elapsed();
    assert_received(&message, "alice", "hello from node A");
    assert!(
        latency < LIVE_DELIVERY,
        "pushed {latency:?} after it was accepted: node A did not wake node B"
    );
    drop(receiver);
    wait_until("bob to disconnect from node B", WAIT, || {
        (node_b.stat("authenticated") == 0).then_some(())
    });

    // Offline: stored through node A, fetched through node B, and back the other way.
    alice.send("bob", "while you were away");
    assert!(
        node_b.stat("queued_envelopes") >= 1,
        "node B sees the queue"
    );
    let received = bob.receive_json();
    assert_eq!(texts(&received), ["while you were away"], "{received:?}");
    exchange(&bob, &alice, "answered through node B");
}

#[test]
fn a_circle_across_two_nodes_reaches_everyone_once() {
    let Some(cluster) = Cluster::start("a_circle_across_two_nodes_reaches_everyone_once", 2) else {
        return;
    };
    let homes = ["alice", "bob", "carol", "dave"].map(Home::new);
    // alice and carol on node A, bob and dave on node B.
    for (i, home) in homes.iter().enumerate() {
        home.init(cluster.node(i % 2));
    }
    let [alice, bob, carol, dave] = &homes;
    alice.group_create(CIRCLE, &["bob", "carol", "dave"]);
    for member in [bob, carol, dave] {
        learn_circle(member);
    }
    everyone_gets(alice, "hello from node A", &[bob, carol, dave]);
    everyone_gets(dave, "hello from node B", &[alice, bob, carol]);
    for node in [cluster.node(0), cluster.node(1)] {
        assert_eq!(node.stat("queued_envelopes"), 0, "everything delivered");
    }
}

/// Registers `device` through `conn` with `invite`.
async fn register(conn: &mut Connection, device: &TestDevice, invite: &str) {
    let response = conn.register(device, Some(invite)).await.unwrap();
    assert_eq!(response, Response::Ok, "register {}", device.handle);
}

/// One `FetchBundles` for every device of `account`; the one bundle it must return.
async fn fetch_one(
    conn: &mut Connection,
    account: AccountPublicKey,
) -> kith_protocol::PrekeyBundle {
    let request = Request::FetchBundles {
        account_key: account,
        devices: BoundedVec::default(),
    };
    match conn.request(request).await.unwrap() {
        Response::Bundles { bundles } => {
            let mut bundles = bundles.into_vec();
            assert_eq!(bundles.len(), 1, "one device, one bundle");
            bundles.remove(0)
        }
        other => panic!("expected bundles, got {other:?}"),
    }
}

#[test]
fn concurrent_fetches_through_two_nodes_never_hand_out_a_prekey_twice() {
    const ONE_TIME: usize = 8;
    const FETCHERS: usize = 16;
    let Some(cluster) = Cluster::start(
        "concurrent_fetches_through_two_nodes_never_hand_out_a_prekey_twice",
        2,
    ) else {
        return;
    };
    let invite = cluster
        .node(0)
        .invite_for(u32::try_from(FETCHERS).unwrap() + 1);
    let tls = cluster.tls();
    let addrs = [cluster.addr(0), cluster.addr(1)];
    runtime().block_on(async {
        let bob = TestDevice::new("bob", 40, ONE_TIME);
        let bob_key = bob.account_key();
        let mut bob_conn = Connection::connect(addrs[0], tls.clone()).await.unwrap();
        register(&mut bob_conn, &bob, &invite).await;

        // Half the fetchers on each node, all registered before any fetch starts.
        let barrier = Arc::new(Barrier::new(FETCHERS));
        let tasks: Vec<_> = (0..FETCHERS)
            .map(|i| {
                let (tls, invite, barrier) = (tls.clone(), invite.clone(), barrier.clone());
                let addr = addrs[i % 2];
                tokio::spawn(async move {
                    let mut device = TestDevice::new(&format!("fetcher{i}"), 2000 + i as u64, 0);
                    let mut conn = Connection::connect(addr, tls).await.unwrap();
                    register(&mut conn, &device, &invite).await;
                    barrier.wait().await;
                    let bundle = fetch_one(&mut conn, bob_key).await;
                    bundle_prekey_ids(&mut device, &bob_key, &bundle)
                })
            })
            .collect();
        let mut handed_out = Vec::new();
        for task in tasks {
            handed_out.push(tokio::time::timeout(WAIT, task).await.unwrap().unwrap());
        }

        let one_time: Vec<_> = handed_out.iter().filter_map(|(x, _)| *x).collect();
        let kem: Vec<_> = handed_out
            .iter()
            .map(|(_, kem)| *kem)
            .filter(|&id| id != LAST_RESORT_KEM_ID)
            .collect();
        let distinct: BTreeSet<_> = one_time.iter().copied().collect();
        let distinct_kem: BTreeSet<_> = kem.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            one_time.len(),
            "an X25519 prekey handed out twice: {handed_out:?}"
        );
        assert_eq!(
            distinct_kem.len(),
            kem.len(),
            "a KEM prekey handed out twice: {handed_out:?}"
        );
        // Exactly the ONE_TIME uploaded were handed out before they ran out.
        assert_eq!(distinct.len(), ONE_TIME, "{handed_out:?}");
        assert_eq!(distinct, bob.one_time.keys().copied().collect());
        assert_eq!(distinct_kem, bob.one_time_kem.keys().copied().collect());
        bob_conn.close().await;
    });
}

/// The body of message `seq`: its sequence number, padded like a small sealed envelope.
fn body(seq: u64) -> Vec<u8> {
    let mut body = seq.to_be_bytes().to_vec();
    body.resize(200, 0xA5);
    body
}

/// The client message id of message `seq`.
fn message_id(seq: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id[8..].copy_from_slice(b"nodekill");
    id
}

/// Reads deliveries on `conn` (acknowledging each) until every one of `expected` has
/// arrived; returns how often each sequence number arrived.
async fn receive_all(conn: &mut Connection, expected: u64) -> BTreeMap<u64, usize> {
    let deadline = Instant::now() + WAIT;
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    while (seen.len() as u64) < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let delivery = conn.next_delivery(left).await.unwrap_or_else(|e| {
            panic!("only {} of {expected} messages arrived: {e:#}", seen.len())
        });
        let seq = u64::from_be_bytes(delivery.body.as_slice()[..8].try_into().unwrap());
        assert_eq!(delivery.body.as_slice(), body(seq), "message {seq} intact");
        *seen.entry(seq).or_default() += 1;
        assert_eq!(
            conn.ack(&[delivery.delivery_id]).await.unwrap(),
            Response::Ok
        );
    }
    seen
}

#[test]
fn a_node_killed_mid_stream_loses_no_accepted_message() {
    const BEFORE: u64 = 10;
    const IN_FLIGHT: u64 = 6;
    const AFTER: u64 = 6;
    const TOTAL: u64 = BEFORE + IN_FLIGHT + AFTER;
    let Some(mut cluster) = Cluster::start("a_node_killed_mid_stream_loses_no_accepted_message", 2)
    else {
        return;
    };
    let invite = cluster.node(0).invite_for(2);
    let tls = cluster.tls();
    let addrs = [cluster.addr(0), cluster.addr(1)];
    let rt = runtime();
    let sender = TestDevice::new("sender", 50, 0);
    let recipient = TestDevice::new("recipient", 51, 0);
    let to: [DeviceId; 1] = [recipient.device_id()];

    // The recipient stays on node B; the sender starts on node A.
    let (mut on_b, mut on_a) = rt.block_on(async {
        let mut on_b = Connection::connect(addrs[1], tls.clone()).await.unwrap();
        register(&mut on_b, &recipient, &invite).await;
        on_b.wait_queue_drained(WAIT).await.unwrap();
        let mut on_a = Connection::connect(addrs[0], tls.clone()).await.unwrap();
        register(&mut on_a, &sender, &invite).await;
        (on_b, on_a)
    });

    let mut accepted = BTreeSet::new();
    let in_flight = rt.block_on(async {
        for seq in 0..BEFORE {
            let response = on_a.send(message_id(seq), body(seq), &to).await.unwrap();
            assert_eq!(
                response,
                Response::Accepted {
                    client_message_id: message_id(seq)
                }
            );
            accepted.insert(seq);
        }
        // Pushed live to node B before node A dies.
        let seen = receive_all(&mut on_b, BEFORE).await;
        assert!(seen.values().all(|&n| n == 1), "{seen:?}");
        // More requests on the wire, unanswered, when node A is killed.
        let mut in_flight = Vec::new();
        for seq in BEFORE..BEFORE + IN_FLIGHT {
            let request = Request::Send(kith_protocol::wire::SendRequest {
                client_message_id: message_id(seq),
                body: kith_protocol::BoundedBytes::new(body(seq)).unwrap(),
                recipients: BoundedVec::new(vec![kith_protocol::wire::Recipient {
                    device_id: to[0],
                    part: None,
                }])
                .unwrap(),
            });
            in_flight.push((seq, on_a.send_request(request).await.unwrap()));
        }
        in_flight
    });
    cluster.node_mut(0).kill();

    rt.block_on(async {
        // What node A answered before it died counts as accepted; anything else failed.
        let mut failed = Vec::new();
        for (seq, request_id) in in_flight {
            match tokio::time::timeout(WAIT, on_a.response(request_id)).await {
                Ok(Ok(Response::Accepted { .. })) => drop(accepted.insert(seq)),
                Ok(Ok(other)) => panic!("message {seq}: unexpected answer {other:?}"),
                Ok(Err(_)) => failed.push(seq),
                Err(_) => panic!("no answer and no error for message {seq} after the kill"),
            }
        }
        eprintln!(
            "node A killed: {} of {IN_FLIGHT} in-flight sends answered, {} failed",
            IN_FLIGHT - failed.len() as u64,
            failed.len()
        );

        // The sender's client retries what failed, with the same ids, through node B, then
        // sends the rest there.
        let mut on_b_sender = Connection::connect(addrs[1], tls.clone()).await.unwrap();
        let response = on_b_sender.authenticate(&sender).await.unwrap();
        assert_eq!(response, Response::Ok);
        for seq in failed.into_iter().chain(BEFORE + IN_FLIGHT..TOTAL) {
            let response = on_b_sender
                .send(message_id(seq), body(seq), &to)
                .await
                .unwrap();
            assert_eq!(
                response,
                Response::Accepted {
                    client_message_id: message_id(seq)
                },
                "message {seq} through node B"
            );
            accepted.insert(seq);
        }
        assert_eq!(
            accepted,
            (0..TOTAL).collect(),
            "every message accepted once"
        );

        // Every accepted message reaches the recipient, once after de-duplication by id;
        // a retried message the dead node had already stored is not stored twice.
        let rest = receive_all(&mut on_b, TOTAL - BEFORE).await;
        let delivered: BTreeSet<u64> = (0..BEFORE).chain(rest.keys().copied()).collect();
        assert_eq!(delivered, accepted, "{rest:?}");
        assert!(
            rest.values().all(|&n| n == 1),
            "a message stored twice: {rest:?}"
        );
        on_b_sender.close().await;
        on_b.close().await;
    });
}
