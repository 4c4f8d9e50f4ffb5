//! `kith-relay migrate` at the engine level: a sled store filled through the `Store` trait is
//! copied into a fresh database and read back through `PostgresStore`; a second run copies
//! nothing; a store in use and a conflicting handle are refused.

use std::path::{Path, PathBuf};

use kith_protocol::AccountKeyPair;
use kith_relay::config::DatabaseUrl;
use kith_relay::migrate::{self, MigrateError, MigrateOptions, Report};
use kith_relay::store::conformance::{TestDevice, new_account};
use kith_relay::store::{DeliveryId, Envelope, Prekeys, SledOptions, SledStore, StoreStats};

use super::*;

/// What the sled store held, read through the trait before the copy.
struct Fixture {
    alice: [TestDevice; 2],
    bob: TestDevice,
    carol: TestDevice,
    alice_prekeys: Prekeys,
    bob_prekeys: Prekeys,
    queues: Vec<(DeviceId, Vec<Envelope>)>,
    stats: StoreStats,
}

/// alice (two devices), bob and carol; prekeys of every kind; a body shared by three
/// devices; a gap in bob's delivery ids; two invites.
async fn fill(sled: &SledStore) -> Fixture {
    let mut rng = rng(7);
    let alice_key = AccountKeyPair::generate(&mut rng);
    let alice = [
        TestDevice::new(&alice_key, &mut rng),
        TestDevice::new(&alice_key, &mut rng),
    ];
    sled.create_account(new_account("alice", &alice[0], None))
        .await
        .unwrap();
    sled.add_device(&alice[1].certificate, NOW + 1)
        .await
        .unwrap();
    let bob = register(sled, "bob", &mut rng).await;
    let carol = register(sled, "carol", &mut rng).await;
    let alice_prekeys = alice[0].prekeys(1, 3, 2, &mut rng);
    let bob_prekeys = bob.prekeys(5, 1, 0, &mut rng);
    sled.publish_prekeys(alice[0].id(), alice_prekeys.clone())
        .await
        .unwrap();
    let more = alice[1].prekeys(20, 2, 2, &mut rng);
    sled.publish_prekeys(alice[1].id(), more).await.unwrap();
    sled.publish_prekeys(bob.id(), bob_prekeys.clone())
        .await
        .unwrap();
    sled.enqueue(send_to(1, &[bob.id()])).await.unwrap();
    let everyone = [alice[0].id(), alice[1].id(), bob.id()];
    sled.enqueue(send_to(2, &everyone)).await.unwrap();
    sled.enqueue(send_to(3, &[bob.id()])).await.unwrap();
    assert_eq!(sled.ack(bob.id(), &[1]).await.unwrap(), 1);
    sled.create_invite(InviteTokenHash::of(b"three"), 3, NOW + 1000)
        .await
        .unwrap();
    sled.create_invite(InviteTokenHash::of(b"one"), 1, NOW + 1000)
        .await
        .unwrap();
    let mut queues = Vec::new();
    for device in [alice[0].id(), alice[1].id(), bob.id(), carol.id()] {
        queues.push((device, sled.list(device, None, 100).await.unwrap()));
    }
    Fixture {
        stats: sled.stats().await.unwrap(),
        alice,
        bob,
        carol,
        alice_prekeys,
        bob_prekeys,
        queues,
    }
}

/// A send of a body of its own, without a part for the first recipient.
fn send_to(key: u8, devices: &[DeviceId]) -> Enqueue {
    let body = vec![key; 100 + usize::from(key)];
    let mut send = super::engine::send(key, &body, devices, NOW + 3600);
    send.recipients[0].part = None;
    send
}

/// A sled store in `<dir>/sled`, as a relay's data directory has it, filled by `fill`.
async fn sled_data<T>(dir: &Path, fill: impl AsyncFnOnce(&SledStore) -> T) -> T {
    let sled = SledStore::open(dir.join("sled"), SledOptions::default()).unwrap();
    let filled = fill(&sled).await;
    sled.close().await.unwrap();
    filled
}

fn options(dir: &Path, db: &TestDb) -> MigrateOptions {
    MigrateOptions {
        sled_dir: PathBuf::from(dir),
        database: DatabaseUrl::new(db.url.clone()),
        database_ca: None,
        progress_bars: false,
    }
}

async fn migrate_ok(options: &MigrateOptions) -> Report {
    let report = migrate::run(options).await.unwrap();
    assert!(report.matches(), "{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_copies_everything_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fixture = sled_data(dir.path(), fill).await;
    interrupted_copy(dir.path(), &db).await;
    let report = migrate_ok(&options(dir.path(), &db)).await;
    let text = report.to_string();
    assert!(text.contains("count check: all 10 kinds match"), "{text}");
    assert!(
        !text.contains("kith:kith"),
        "no credentials in the report: {text}"
    );
    let c = report.sled;
    assert_eq!((c.accounts, c.devices, c.bodies, c.entries), (3, 4, 2, 4));
    assert_eq!((c.signed_prekeys, c.last_resort_kem_prekeys), (3, 3));
    assert_eq!((c.one_time_prekeys, c.one_time_kem_prekeys), (6, 4));
    assert_eq!((c.invites, c.idempotency_keys), (2, 3));

    let pg = db.connect().await;
    check_read_back(&pg, &fixture).await;
    check_still_usable(&pg, &fixture).await;

    let again = migrate_ok(&options(dir.path(), &db)).await;
    assert!(again.already_migrated.is_some(), "{again}");
    assert_eq!(again.sled, report.sled);
    let queue = pg.list(fixture.bob.id(), None, 100).await.unwrap();
    let ids: Vec<DeliveryId> = queue.iter().map(|e| e.delivery_id).collect();
    assert_eq!(
        ids.len(),
        3,
        "nothing copied twice, nothing brought back: {ids:?}"
    );
    assert_eq!(ids[..2], [2, 3], "{ids:?}");
    assert!(
        ids[2] > 3,
        "the new entry's id continues after sled's: {ids:?}"
    );
    pg.close().await.unwrap();
}

/// A run that stopped after one batch of accounts and bodies.
async fn interrupted_copy(dir: &Path, db: &TestDb) {
    let sled = SledStore::open(dir.join("sled"), SledOptions::default()).unwrap();
    let pg = db.connect().await;
    let accounts: Vec<_> = sled.export_accounts().take(1).map(Result::unwrap).collect();
    let bodies: Vec<_> = sled.export_bodies().map(Result::unwrap).collect();
    pg.import_accounts(&accounts).await.unwrap();
    assert_eq!(pg.import_bodies(&bodies).await.unwrap(), 2);
    pg.close().await.unwrap();
    sled.close().await.unwrap();
}

/// Everything reads back as sled had it.
async fn check_read_back(pg: &PostgresStore, f: &Fixture) {
    assert_eq!(pg.stats().await.unwrap(), f.stats);
    let alice = pg.account_by_handle("alice").await.unwrap().unwrap();
    assert_eq!(alice.devices, [f.alice[0].id(), f.alice[1].id()]);
    let devices = pg.devices_of(&alice.account_key).await.unwrap();
    assert_eq!(devices[1].added_at, NOW + 1);
    assert_eq!(
        devices[1].certificate,
        *f.alice[1].certificate.certificate()
    );
    for (device, queue) in &f.queues {
        assert_eq!(pg.list(*device, None, 100).await.unwrap(), *queue);
    }
    let counts = pg.prekey_counts(f.alice[1].id()).await.unwrap();
    assert_eq!((counts.one_time, counts.one_time_kem), (2, 2));
    let material = pg.take_bundle_material(f.alice[0].id()).await.unwrap();
    assert_eq!(Some(material.signed), f.alice_prekeys.signed);
    assert_eq!(material.one_time.as_ref(), f.alice_prekeys.one_time.first());
    assert_eq!(Some(&material.kem), f.alice_prekeys.one_time_kem.first());
    let material = pg.take_bundle_material(f.bob.id()).await.unwrap();
    assert_eq!(Some(material.kem), f.bob_prekeys.last_resort_kem);
    let carol = pg.prekey_counts(f.carol.id()).await.unwrap();
    assert_eq!(carol, Default::default());
}

/// Delivery ids continue, idempotency records and invites work, bodies get new ids.
async fn check_still_usable(pg: &PostgresStore, f: &Fixture) {
    let repeat = pg.enqueue(send_to(3, &[f.bob.id()])).await.unwrap();
    assert!(repeat.duplicate, "the idempotency record came along");
    assert_eq!(repeat.deliveries, [3]);
    let next = pg
        .enqueue(send_to(9, &[f.bob.id(), f.carol.id()]))
        .await
        .unwrap();
    // Bob's ids continue after sled's counter (which skips ahead at every open of the sled
    // store, export included); Carol never had a mailbox entry.
    assert!(next.deliveries[0] > 3, "{:?}", next.deliveries);
    assert_eq!(next.deliveries[1], 1, "ids continue from sled's counters");
    let mut rng = rng(8);
    let dave = TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);
    let invite = Some(InviteTokenHash::of(b"one"));
    let mut request = new_account("dave", &dave, invite);
    pg.create_account(request.clone()).await.unwrap();
    request.handle = "dave2".into();
    assert_eq!(
        pg.create_account(request).await.unwrap_err(),
        StoreError::InviteInvalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_refuses_a_store_in_use_and_a_conflicting_handle() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = tempfile::tempdir().unwrap();
    sled_data(first.path(), async |s: &SledStore| {
        register(s, "alice", &mut rng(1)).await;
    })
    .await;
    migrate_ok(&options(first.path(), &db)).await;

    let second = tempfile::tempdir().unwrap();
    let open = SledStore::open(second.path().join("sled"), SledOptions::default()).unwrap();
    register(&open, "erin", &mut rng(2)).await;
    register(&open, "alice", &mut rng(3)).await;
    let err = migrate::run(&options(second.path(), &db))
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::InUse), "{err}");
    assert!(err.to_string().contains("stop the relay first"), "{err}");
    open.close().await.unwrap();
    drop(open);

    let err = migrate::run(&options(second.path(), &db))
        .await
        .unwrap_err();
    let MigrateError::Conflict(conflict) = &err else {
        panic!("expected a conflict, got {err}");
    };
    assert_eq!(conflict.kind, "accounts");
    assert!(!conflict.present, "{err}");
    let pg = db.connect().await;
    assert!(
        pg.account_by_handle("erin").await.unwrap().is_none(),
        "the conflicting batch wrote nothing"
    );
    pg.close().await.unwrap();
}
