//! One-time prekeys: when other people's first messages have used most of a device's one-time
//! prekeys, the relay tells the device, and `kith` publishes more.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kith_protocol::wire::{Handle, Request, Response};
use kith_protocol::{AccountPublicKey, BoundedVec, PrekeyId};
use kith_tests::cli::{Home, RelayProcess};
use kith_tests::connection::tls_config;
use kith_tests::{Connection, TestDevice, bundle_prekey_ids};
use tokio::runtime::Runtime;

use crate::exchange;

/// One-time prekeys of each kind `kith init` publishes.
const PUBLISHED: usize = 100;
/// The relay's default low watermark: below it, the device is told to publish more.
const LOW_WATERMARK: usize = 20;

/// A test client, registered as an account of its own, that takes someone's prekey bundles the
/// way a sender starting a session does.
struct Prober {
    device: TestDevice,
    conn: Connection,
    target: AccountPublicKey,
}

impl Prober {
    async fn register(relay: &RelayProcess, target: &str) -> Self {
        let pem = std::fs::read_to_string(relay.ca_path()).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], relay.port()));
        let mut conn = Connection::connect(addr, tls_config(&pem).unwrap())
            .await
            .unwrap();
        let device = TestDevice::new("prober", 7, 0);
        let response = conn.register(&device, Some(&relay.invite())).await.unwrap();
        assert_eq!(response, Response::Ok, "register the prober");
        let lookup = Request::Lookup {
            handle: Handle::parse(target).unwrap(),
        };
        let Response::Account { account_key, .. } = conn.request(lookup).await.unwrap() else {
            panic!("@{target} is not registered");
        };
        Self {
            device,
            conn,
            target: account_key,
        }
    }

    /// Takes `count` bundles of the target's only device; returns the one-time X25519 prekey
    /// id each handed out (`None`: the relay had none left).
    async fn take(&mut self, count: usize) -> Vec<Option<PrekeyId>> {
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let fetch = Request::FetchBundles {
                account_key: self.target,
                devices: BoundedVec::default(),
            };
            let Response::Bundles { bundles } = self.conn.request(fetch).await.unwrap() else {
                panic!("expected bundles");
            };
            let [bundle] = bundles.as_slice() else {
                panic!("expected one bundle, got {}", bundles.len());
            };
            ids.push(bundle_prekey_ids(&mut self.device, &self.target, bundle).0);
        }
        ids
    }
}

/// Asserts every bundle had a one-time prekey, each a different one; returns them.
#[track_caller]
fn distinct_one_time(ids: &[Option<PrekeyId>]) -> BTreeSet<PrekeyId> {
    let present: BTreeSet<PrekeyId> = ids.iter().flatten().copied().collect();
    assert_eq!(
        present.len(),
        ids.len(),
        "missing or repeated one-time prekeys: {ids:?}"
    );
    present
}

#[test]
fn kith_publishes_more_one_time_prekeys_when_the_relay_runs_low() {
    // The prober takes more than a hundred bundles: lift the per-requester limit that would
    // stop it (tests/tests/relay/hostile.rs checks the limit).
    let relay = RelayProcess::start_with_env(&[("KITH_RELAY_BUNDLE_FETCH_BURST", "1000")]);
    let alice = Home::new("alice");
    let bob = Home::new("bob");
    alice.init(&relay);
    bob.init(&relay);
    let runtime = Runtime::new().unwrap();
    let mut prober = runtime.block_on(Prober::register(&relay, bob.handle()));

    let left = LOW_WATERMARK - 5;
    let before = distinct_one_time(&runtime.block_on(prober.take(PUBLISHED - left)));

    // The relay says "running low" once bob's device authenticates.
    assert!(bob.receive_json().is_empty());

    // More than were left: only possible if bob's device published new ones.
    let after = distinct_one_time(&runtime.block_on(prober.take(left + 10)));
    assert!(
        before.is_disjoint(&after),
        "a one-time prekey handed out twice"
    );

    // Alice's first message now uses a one-time prekey from the top-up.
    exchange(&alice, &bob, "after the top-up");
    exchange(&bob, &alice, "answered");
}
