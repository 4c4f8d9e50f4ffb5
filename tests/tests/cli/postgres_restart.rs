//! PostgreSQL restarted under load: two relay nodes on a private PostgreSQL server (its own
//! `initdb`, so that restarting it disturbs no other test), a sender on one node and a
//! receiver on the other, the server restarted (`pg_ctl restart -m fast`) in the middle.
//!
//! Checked: the relays reconnect by themselves (pool and LISTEN connection), no send is
//! answered "accepted" unless stored, every accepted message is delivered to the other node's
//! client, intact and never as two different mailbox entries, and the cross-node wake-up
//! works again after the restart. Sends refused while the database is down are sent again
//! with the same client message id, as a client does.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_protocol::wire::{Delivery, Response};
use kith_tests::cli::RelayProcess;
use kith_tests::connection::tls_config;
use kith_tests::database::PrivatePostgres;
use kith_tests::{Connection, TestDevice};
use tokio::sync::watch;

use crate::WAIT;

/// Messages sent in all.
const MESSAGES: u64 = 600;

/// The restart comes after this many are accepted.
const RESTART_AFTER: u64 = 200;

/// How long sends may keep failing after the restart before the test gives up.
const RECOVERY: Duration = Duration::from_secs(60);

#[test]
fn a_postgres_restart_under_load_loses_nothing_and_the_relays_reconnect() {
    let Some(postgres) = PrivatePostgres::start("postgres_restart") else {
        return;
    };
    let nodes = RelayProcess::postgres_nodes_with_env(
        &postgres.url(),
        2,
        &[
            ("KITH_RELAY_SEND_RATE_PER_SECOND", "1000000"),
            ("KITH_RELAY_SEND_BURST", "1000000"),
        ],
    );
    let pem = std::fs::read_to_string(nodes[0].ca_path()).unwrap();
    let tls = tls_config(&pem).unwrap();
    let addr = |n: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, nodes[n].port()));
    let (to_sender, to_receiver) = (addr(0), addr(1));
    let invite = nodes[0].invite_for(2);
    let alice = TestDevice::new("alice", 11, 0);
    let bob = TestDevice::new("bob", 12, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for device in [&alice, &bob] {
            let mut conn = Connection::connect(to_sender, tls.clone()).await.unwrap();
            assert_eq!(
                conn.register(device, Some(&invite)).await.unwrap(),
                Response::Ok
            );
            conn.close().await;
        }
    });

    let (accepted_tx, mut accepted_rx) = watch::channel(0u64);
    let (done_tx, done_rx) = watch::channel(false);
    let bob_id = bob.device_id();
    let receiver = rt.spawn(receive(to_receiver, tls.clone(), bob, done_rx));
    let sender = rt.spawn(send_all(to_sender, tls, alice, bob_id, accepted_tx));

    // Restart the database server in the middle of the stream.
    rt.block_on(async {
        tokio::time::timeout(WAIT, accepted_rx.wait_for(|n| *n >= RESTART_AFTER))
            .await
            .expect("the first messages are accepted")
            .unwrap();
    });
    let restart_started = Instant::now();
    postgres.restart().unwrap();
    eprintln!("PostgreSQL restarted in {:?}", restart_started.elapsed());

    let (accepted, refused) = rt.block_on(sender).unwrap();
    done_tx.send_replace(true);
    let delivered = rt.block_on(receiver).unwrap();
    eprintln!(
        "{} accepted, {refused} sends refused while the database was down, {} deliveries",
        accepted.len(),
        delivered.values().map(Vec::len).sum::<usize>()
    );
    assert_eq!(accepted.len(), usize::try_from(MESSAGES).unwrap());
    for seq in 0..MESSAGES {
        let ids = delivered
            .get(&seq)
            .unwrap_or_else(|| panic!("accepted message {seq} never delivered"));
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "message {seq} delivered as different mailbox entries {ids:?}"
        );
    }
    assert!(
        delivered.keys().all(|seq| *seq < MESSAGES),
        "a delivery nobody sent"
    );
    for node in &nodes {
        assert!(
            node.log().contains("relay started"),
            "node log:\n{}",
            node.log()
        );
    }
}

/// Sends messages `0..MESSAGES` one at a time, each again (same id) until accepted; returns
/// the accepted ones and how many sends were refused.
async fn send_all(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    device: TestDevice,
    to: kith_protocol::DeviceId,
    accepted_tx: watch::Sender<u64>,
) -> (Vec<u64>, u64) {
    let mut conn = login(addr, &tls, &device).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for seq in 0..MESSAGES {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let answer = match conn.send(id(seq), body(seq), &[to]).await {
                Ok(response) => Ok(response),
                Err(e) if conn.is_closed() => Err(format!("{e:#}")),
                Err(e) => panic!("send {seq}: {e:#}"),
            };
            match answer {
                Ok(Response::Accepted { .. }) => break,
                Ok(Response::Error(_)) | Err(_) => {
                    refused += 1;
                    assert!(
                        Instant::now() < deadline,
                        "message {seq} still not accepted {RECOVERY:?} after the restart: \
                         {answer:?}"
                    );
                    // A pause before the retry, as a client backs off; the relay is what
                    // is being waited for, and the deadline bounds it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if conn.is_closed() {
                        conn = login(addr, &tls, &device).await;
                    }
                }
                Ok(other) => panic!("send {seq}: unexpected {other:?}"),
            }
        }
        accepted.push(seq);
        accepted_tx.send_replace(accepted.len() as u64);
    }
    conn.close().await;
    (accepted, refused)
}

/// Receives until every message arrived and the sender is done; acknowledges as it goes.
/// Returns, per message, the mailbox entries it arrived as.
async fn receive(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    device: TestDevice,
    done: watch::Receiver<bool>,
) -> BTreeMap<u64, Vec<u64>> {
    let mut conn = login(addr, &tls, &device).await;
    let mut delivered: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + RECOVERY * 3;
    while (delivered.len() as u64) < MESSAGES || !*done.borrow() {
        assert!(
            Instant::now() < deadline,
            "only {} of {MESSAGES} messages delivered",
            delivered.len()
        );
        let delivery: Delivery = match conn.next_delivery(Duration::from_secs(1)).await {
            Ok(delivery) => delivery,
            Err(_) if conn.is_closed() => {
                conn = login(addr, &tls, &device).await;
                continue;
            }
            Err(_) => continue,
        };
        let seq = seq_of(delivery.body.as_slice());
        delivered.entry(seq).or_default().push(delivery.delivery_id);
        // An ack refused while the database is down is harmless: the entry comes again.
        let _ = conn.ack(&[delivery.delivery_id]).await;
    }
    conn.close().await;
    delivered
}

async fn login(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    device: &TestDevice,
) -> Connection {
    let deadline = Instant::now() + RECOVERY;
    loop {
        if let Ok(mut conn) = Connection::connect(addr, tls.clone()).await
            && let Ok(Response::Ok) = conn.authenticate(device).await
        {
            return conn;
        }
        assert!(Instant::now() < deadline, "cannot log in to {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id(seq: u64) -> [u8; 16] {
    let mut id = [7u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id
}

fn body(seq: u64) -> Vec<u8> {
    let mut body = seq.to_be_bytes().to_vec();
    body.resize(300, u8::try_from(seq % 251).unwrap());
    body
}

/// The number of a delivered body, checking it is intact.
fn seq_of(bytes: &[u8]) -> u64 {
    let seq = u64::from_be_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(bytes, body(seq).as_slice(), "message {seq} damaged");
    seq
}
