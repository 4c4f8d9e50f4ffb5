//! Registration and authentication: success, invites, and every failure of SPEC.md §9.2.

use std::time::Duration;

use kith_protocol::wire::{self, ErrorKind, Handle, Request, Response};
use kith_protocol::{DeviceId, DeviceKeyPair};
use kith_relay::relay::Registration;
use kith_tests::{RELAY_NAME, TestDevice, TestRelay, rng};

use crate::{CLOSE_WAIT, assert_error};

fn lookup(handle: &str) -> Request {
    Request::Lookup {
        handle: Handle::parse(handle).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_authenticate() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("Alice", 1, 2);
    let mut conn = relay.connect().await;
    assert_eq!(conn.announced_name(), RELAY_NAME);
    assert_eq!(conn.register(&alice, None).await.unwrap(), Response::Ok);
    // Registering authenticates the connection.
    assert!(matches!(
        conn.request(lookup("alice")).await.unwrap(),
        Response::Account { .. }
    ));

    let mut again = relay.connect().await;
    assert_ne!(again.nonce(), conn.nonce(), "challenges are fresh");
    assert_eq!(again.authenticate(&alice).await.unwrap(), Response::Ok);
    assert!(matches!(
        again.request(lookup("alice")).await.unwrap(),
        Response::Account { .. }
    ));

    let stats = relay.store_stats().await;
    assert_eq!((stats.accounts, stats.devices), (1, 1));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_authentication_are_unauthorized() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 2, 0);
    relay.register(&alice).await;
    let mut conn = relay.connect().await;
    let response = conn.request(lookup("alice")).await.unwrap();
    assert_error(&response, ErrorKind::Unauthorized);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_authentication_is_a_bad_request() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 3, 0);
    let mut conn = relay.register(&alice).await;
    let response = conn.authenticate(&alice).await.unwrap();
    assert_error(&response, ErrorKind::BadRequest);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_mode_requires_a_valid_unused_invite() {
    let relay = TestRelay::start_with(|c| c.registration = Registration::Invite).await;
    let devices: Vec<TestDevice> = (0..6)
        .map(|i| TestDevice::new(&format!("user{i}"), 100 + i, 0))
        .collect();

    let mut conn = relay.connect().await;
    assert_error(
        &conn.register(&devices[0], None).await.unwrap(),
        ErrorKind::InviteInvalid,
    );
    let mut conn = relay.connect().await;
    let bogus = "not-a-real-invite-token";
    assert_error(
        &conn.register(&devices[0], Some(bogus)).await.unwrap(),
        ErrorKind::InviteInvalid,
    );

    let once = relay.invite(1).await;
    let mut conn = relay.connect().await;
    assert_eq!(
        conn.register(&devices[0], Some(&once)).await.unwrap(),
        Response::Ok
    );
    let mut conn = relay.connect().await;
    let used_up = conn.register(&devices[1], Some(&once)).await.unwrap();
    assert_error(&used_up, ErrorKind::InviteInvalid);

    let twice = relay.invite(2).await;
    for device in &devices[2..4] {
        let mut conn = relay.connect().await;
        assert_eq!(
            conn.register(device, Some(&twice)).await.unwrap(),
            Response::Ok
        );
    }
    let mut conn = relay.connect().await;
    assert_error(
        &conn.register(&devices[4], Some(&twice)).await.unwrap(),
        ErrorKind::InviteInvalid,
    );

    // A further device of an existing account needs no invite: the account key vouches for it.
    let second = devices[0].another_device(200, 0);
    let mut conn = relay.connect().await;
    assert_eq!(conn.register(&second, None).await.unwrap(), Response::Ok);

    let stats = relay.store_stats().await;
    assert_eq!((stats.accounts, stats.devices), (3, 4));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_use_an_invite_once() {
    let relay = TestRelay::start_with(|c| c.registration = Registration::Invite).await;
    let token = relay.invite(1).await;
    let devices: Vec<TestDevice> = (0..8)
        .map(|i| TestDevice::new(&format!("racer{i}"), 300 + i, 0))
        .collect();
    let mut conns = Vec::new();
    for _ in &devices {
        conns.push(relay.connect().await);
    }
    let tasks = conns.into_iter().zip(devices).map(|(mut conn, device)| {
        let token = token.clone();
        tokio::spawn(async move { conn.register(&device, Some(&token)).await.unwrap() })
    });
    let mut ok = 0;
    for task in tasks.collect::<Vec<_>>() {
        match task.await.unwrap() {
            Response::Ok => ok += 1,
            other => assert_error(&other, ErrorKind::InviteInvalid),
        }
    }
    assert_eq!(ok, 1, "a one-use invite registers exactly one account");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_taken_by_another_account() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 4, 0);
    relay.register(&alice).await;
    // Same handle after normalisation, another account key.
    let mallory = TestDevice::new("ALICE", 5, 0);
    let mut conn = relay.connect().await;
    assert_error(
        &conn.register(&mallory, None).await.unwrap(),
        ErrorKind::HandleTaken,
    );
    let stats = relay.store_stats().await;
    assert_eq!((stats.accounts, stats.devices), (1, 1));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_device_cannot_register_twice() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 6, 0);
    relay.register(&alice).await;
    let mut conn = relay.connect().await;
    let response = conn.register(&alice, None).await.unwrap();
    assert!(matches!(response, Response::Error(_)), "{response:?}");
    let stats = relay.store_stats().await;
    assert_eq!((stats.accounts, stats.devices), (1, 1));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_bad_signature_is_unauthorized() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 7, 0);
    let mut conn = relay.connect().await;
    let mut register = conn.register_request(&alice, None);
    register.signature[0] ^= 1;
    let response = conn
        .request(Request::Register(Box::new(register)))
        .await
        .unwrap();
    assert_error(&response, ErrorKind::Unauthorized);
    assert_eq!(relay.store_stats().await.accounts, 0);
    relay.shutdown().await;
}

/// Authenticating with `signature` fails with `Unauthorized` and the relay closes the
/// connection.
async fn assert_rejected(
    relay: &TestRelay,
    conn: &mut kith_tests::Connection,
    id: DeviceId,
    signature: [u8; 64],
) {
    let response = conn.authenticate_with(id, signature).await.unwrap();
    assert_error(&response, ErrorKind::Unauthorized);
    assert!(
        conn.closed(CLOSE_WAIT).await,
        "the relay closes after a failed authentication"
    );
    let _ = relay;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_as_unknown_device() {
    let relay = TestRelay::start().await;
    let stranger = TestDevice::new("stranger", 8, 0);
    let mut conn = relay.connect().await;
    let signature = conn.sign(&stranger);
    assert_rejected(&relay, &mut conn, stranger.device_id(), signature).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_with_bad_signatures() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 9, 0);
    relay.register(&alice).await;

    // A flipped bit.
    let mut conn = relay.connect().await;
    let mut signature = conn.sign(&alice);
    signature[10] ^= 0x40;
    assert_rejected(&relay, &mut conn, alice.device_id(), signature).await;

    // Signed by another key.
    let mut conn = relay.connect().await;
    let other = DeviceKeyPair::generate(&mut rng(10));
    let signature = wire::sign_auth(
        &other,
        RELAY_NAME,
        &conn.nonce(),
        Some(&conn.binding()),
        &alice.device_id(),
    )
    .unwrap();
    assert_rejected(&relay, &mut conn, alice.device_id(), signature).await;

    // All zeros.
    let mut conn = relay.connect().await;
    assert_rejected(&relay, &mut conn, alice.device_id(), [0; 64]).await;

    // The relay still accepts the right answer.
    relay.login(&alice).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_challenge_is_rejected() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 11, 0);
    relay.register(&alice).await;

    let mut first = relay.connect().await;
    let replayed = first.sign(&alice);
    assert_eq!(
        first
            .authenticate_with(alice.device_id(), replayed)
            .await
            .unwrap(),
        Response::Ok
    );

    // The exact signature that worked on the first connection.
    let mut second = relay.connect().await;
    assert_rejected(&relay, &mut second, alice.device_id(), replayed).await;

    // The first connection's nonce, with this connection's channel binding.
    let mut third = relay.connect().await;
    let signature = wire::sign_auth(
        &alice.keys,
        RELAY_NAME,
        &first.nonce(),
        Some(&third.binding()),
        &alice.device_id(),
    )
    .unwrap();
    assert_rejected(&relay, &mut third, alice.device_id(), signature).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_for_another_relay_or_channel_is_rejected() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 12, 0);
    relay.register(&alice).await;

    let mut conn = relay.connect().await;
    let signature = wire::sign_auth(
        &alice.keys,
        "relay.example",
        &conn.nonce(),
        Some(&conn.binding()),
        &alice.device_id(),
    )
    .unwrap();
    assert_rejected(&relay, &mut conn, alice.device_id(), signature).await;

    // A relay that terminates TLS itself rejects a signature without channel binding.
    let mut conn = relay.connect().await;
    let signature = wire::sign_auth(
        &alice.keys,
        RELAY_NAME,
        &conn.nonce(),
        None,
        &alice.device_id(),
    )
    .unwrap();
    assert_rejected(&relay, &mut conn, alice.device_id(), signature).await;

    // Another channel's binding.
    let mut conn = relay.connect().await;
    let signature = wire::sign_auth(
        &alice.keys,
        RELAY_NAME,
        &conn.nonce(),
        Some(&[7; 32]),
        &alice.device_id(),
    )
    .unwrap();
    assert_rejected(&relay, &mut conn, alice.device_id(), signature).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_auth_timeout() {
    let relay = TestRelay::start_with(|c| c.auth_timeout = Duration::from_secs(1)).await;
    let alice = TestDevice::new("alice", 13, 0);
    relay.register(&alice).await;
    let started = tokio::time::Instant::now();
    let mut silent = relay.connect().await;
    assert!(
        silent.closed(CLOSE_WAIT).await,
        "closed without authentication"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    // An authenticated connection outlives the authentication timeout.
    let mut conn = relay.login(&alice).await;
    assert!(!conn.closed(Duration::from_millis(1500)).await);
    assert!(matches!(
        conn.request(lookup("alice")).await.unwrap(),
        Response::Account { .. }
    ));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_connection_of_a_device_replaces_the_older() {
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice", 14, 0);
    let bob = TestDevice::new("bob", 15, 0);
    let mut old = relay.register(&alice).await;
    let mut bob_conn = relay.register(&bob).await;
    let mut new = relay.login(&alice).await;
    assert!(
        old.closed(CLOSE_WAIT).await,
        "the older connection is closed"
    );
    let response = bob_conn
        .send(crate::message_id(1), b"hi".to_vec(), &[alice.device_id()])
        .await;
    crate::assert_accepted(&response.unwrap(), crate::message_id(1));
    let delivery = new.next_delivery(crate::WAIT).await.unwrap();
    assert_eq!(delivery.body.as_slice(), b"hi");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_capped() {
    let relay = TestRelay::start_with(|c| c.max_unauthenticated = 3).await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(relay.connect().await);
    }
    let refused = kith_tests::Connection::connect(relay.addr(), relay.tls()).await;
    assert!(
        refused.is_err(),
        "a fourth unauthenticated connection is refused"
    );
    // The waiting connections are unharmed and may register.
    let devices: Vec<TestDevice> = (0..3)
        .map(|i| TestDevice::new(&format!("waiting{i}"), 16 + i, 0))
        .collect();
    for (conn, device) in waiting.iter_mut().zip(&devices) {
        assert_eq!(conn.register(device, None).await.unwrap(), Response::Ok);
    }
    let response = waiting[0]
        .send(
            crate::message_id(1),
            b"x".to_vec(),
            &[devices[1].device_id()],
        )
        .await;
    crate::assert_accepted(&response.unwrap(), crate::message_id(1));
    assert_eq!(
        waiting[1]
            .next_delivery(crate::WAIT)
            .await
            .unwrap()
            .body
            .as_slice(),
        b"x"
    );
    relay.shutdown().await;
}
