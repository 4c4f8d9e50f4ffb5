//! Directory look-ups and prekey bundles: one-time prekeys handed out once under concurrent
//! fetches, the last-resort fallback, the low-count notice and top-ups.

use std::collections::BTreeSet;
use std::sync::Arc;

use kith_protocol::wire::{ErrorKind, Handle, Request, Response};
use kith_protocol::{AccountPublicKey, BoundedVec, PrekeyBundle};
use kith_tests::device::{FIRST_ONE_TIME_ID, FIRST_ONE_TIME_KEM_ID, LAST_RESORT_KEM_ID};
use kith_tests::{Connection, TestDevice, TestRelay, bundle_prekey_ids};
use tokio::sync::Barrier;

use crate::{WAIT, assert_error};

fn fetch_all(account_key: AccountPublicKey) -> Request {
    Request::FetchBundles {
        account_key,
        devices: BoundedVec::default(),
    }
}

async fn fetch(conn: &mut Connection, account_key: AccountPublicKey) -> Vec<PrekeyBundle> {
    match conn.request(fetch_all(account_key)).await.unwrap() {
        Response::Bundles { bundles } => bundles.into_vec(),
        other => panic!("expected bundles, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_returns_every_device_certificate() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 20, 0);
    let alice_laptop = alice.another_device(21, 0);
    let bob = TestDevice::new("bob", 22, 0);
    relay.register(&alice).await;
    relay.register(&alice_laptop).await;
    let mut conn = relay.register(&bob).await;

    let response = conn
        .request(Request::Lookup {
            handle: Handle::parse("Alice").unwrap(),
        })
        .await
        .unwrap();
    let Response::Account {
        account_key,
        devices,
    } = response
    else {
        panic!("expected an account, got {response:?}");
    };
    assert_eq!(account_key, alice.account_key());
    let ids: Vec<_> = devices
        .as_slice()
        .iter()
        .map(|cert| {
            cert.verify_for(&account_key)
                .expect("certificate verifies")
                .device_id()
        })
        .collect();
    assert_eq!(ids, vec![alice.device_id(), alice_laptop.device_id()]);

    let response = conn
        .request(Request::Lookup {
            handle: Handle::parse("nobody").unwrap(),
        })
        .await
        .unwrap();
    assert_error(&response, ErrorKind::NotFound);

    // Bundles: one per device, or just the devices asked for.
    assert_eq!(fetch(&mut conn, alice.account_key()).await.len(), 2);
    let one = Request::FetchBundles {
        account_key: alice.account_key(),
        devices: BoundedVec::new(vec![alice_laptop.device_id()]).unwrap(),
    };
    let Response::Bundles { bundles } = conn.request(one).await.unwrap() else {
        panic!("expected bundles");
    };
    assert_eq!(bundles.len(), 1);
    let cert = bundles.as_slice()[0]
        .certificate()
        .verify_for(&alice.account_key())
        .unwrap();
    assert_eq!(cert.device_id(), alice_laptop.device_id());

    // An unknown account has no bundles to give.
    let stranger = TestDevice::new("stranger", 23, 0);
    let response = conn
        .request(fetch_all(stranger.account_key()))
        .await
        .unwrap();
    assert!(
        matches!(&response, Response::Bundles { bundles } if bundles.is_empty())
            || crate::error_kind(&response) == Some(ErrorKind::NotFound),
        "{response:?}"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_never_hand_out_a_prekey_twice() {
    const ONE_TIME: usize = 10;
    const ONE_TIME_IDS: u32 = 10;
    const FETCHERS: usize = 20;
    let relay = TestRelay::start_with(|c| c.prekey_low_watermark = 5).await;
    let mut bob = TestDevice::new("bob", 30, ONE_TIME);
    let mut bob_conn = relay.register(&bob).await;
    let bob_key = bob.account_key();

    let mut fetchers = Vec::new();
    for i in 0..FETCHERS {
        let device = TestDevice::new(&format!("fetcher{i}"), 1000 + i as u64, 0);
        let conn = relay.register(&device).await;
        fetchers.push((device, conn));
    }
    let barrier = Arc::new(Barrier::new(FETCHERS));
    let tasks: Vec<_> = fetchers
        .into_iter()
        .map(|(mut device, mut conn)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let bundles = fetch(&mut conn, bob_key).await;
                assert_eq!(bundles.len(), 1);
                bundle_prekey_ids(&mut device, &bob_key, &bundles[0])
            })
        })
        .collect();
    let mut handed_out = Vec::new();
    for task in tasks {
        handed_out.push(task.await.unwrap());
    }
    let one_time: Vec<_> = handed_out
        .iter()
        .filter_map(|(x25519, _)| *x25519)
        .collect();
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
    // None left unused while someone got the fallback.
    assert_eq!(
        distinct,
        bob.one_time.keys().copied().collect(),
        "{handed_out:?}"
    );
    assert_eq!(
        distinct_kem,
        bob.one_time_kem.keys().copied().collect(),
        "{handed_out:?}"
    );
    // The two kinds are taken independently, so under concurrency one bundle may carry a
    // one-time X25519 prekey with the last-resort KEM prekey and another the reverse; the
    // protocol allows both. Every one-time key still goes to exactly one requester.

    // Bob, connected, hears that he is running low: the notice goes out as soon as either kind
    // is below the watermark, with the counts at that moment (the other kind may still be
    // being taken).
    let (left, kem_left) = bob_conn.next_prekey_count_low(WAIT).await.unwrap();
    assert!(left < 5 || kem_left < 5, "{left} {kem_left}");

    // He tops up; the next fetch gets one of the new keys.
    let upload = bob.more_prekeys(3);
    assert_eq!(
        bob_conn
            .request(Request::PublishPrekeys(upload))
            .await
            .unwrap(),
        Response::Ok
    );
    let mut carol = TestDevice::new("carol", 40, 0);
    let mut carol_conn = relay.register(&carol).await;
    let bundles = fetch(&mut carol_conn, bob_key).await;
    let (x25519, kem_id) = bundle_prekey_ids(&mut carol, &bob_key, &bundles[0]);
    let x25519 = x25519.expect("a one-time prekey after the top-up");
    assert!(x25519 >= FIRST_ONE_TIME_ID + ONE_TIME_IDS, "{x25519}");
    assert!(kem_id >= FIRST_ONE_TIME_KEM_ID + ONE_TIME_IDS, "{kem_id}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prekey_upload_stores_nothing() {
    let relay = TestRelay::start().await;
    let mut bob = TestDevice::new("bob", 50, 0);
    let mut bob_conn = relay.register(&bob).await;
    // Prekeys signed by another device's key: the KEM signatures do not verify under Bob's key.
    let mut other = bob.another_device(51, 0);
    let forged = other.more_prekeys(2);
    let response = bob_conn
        .request(Request::PublishPrekeys(forged))
        .await
        .unwrap();
    assert!(matches!(response, Response::Error(_)), "{response:?}");

    // Nothing was stored: a fetch gets the last-resort keys.
    let mut carol = TestDevice::new("carol", 52, 0);
    let mut carol_conn = relay.register(&carol).await;
    let bundles = fetch(&mut carol_conn, bob.account_key()).await;
    let ids = bundle_prekey_ids(&mut carol, &bob.account_key(), &bundles[0]);
    assert_eq!(ids, (None, LAST_RESORT_KEM_ID));

    // A good upload is taken.
    let upload = bob.more_prekeys(1);
    assert_eq!(
        bob_conn
            .request(Request::PublishPrekeys(upload))
            .await
            .unwrap(),
        Response::Ok
    );
    let bundles = fetch(&mut carol_conn, bob.account_key()).await;
    let (x25519, _) = bundle_prekey_ids(&mut carol, &bob.account_key(), &bundles[0]);
    assert!(x25519.is_some());
    relay.shutdown().await;
}
