//! PostgreSQL-only checks: migrations, refusal of a newer schema, connection errors, and two
//! stores on one database ("two nodes"): prekeys, wake-ups, reconnects, idempotency, expiry.

use super::*;

/// A send of `body` to `devices`, keyed by `key`.
pub(super) fn send(key: u8, body: &[u8], devices: &[DeviceId], expires_at: u64) -> Enqueue {
    Enqueue {
        idempotency_key: IdempotencyKey([key; 32]),
        body: body.to_vec(),
        recipients: devices
            .iter()
            .map(|d| Recipient {
                device: *d,
                part: Some(vec![key; 3]),
            })
            .collect(),
        arrived_at: NOW,
        expires_at,
        idempotent_until: expires_at,
        limits: MailboxLimits {
            max_entries: 100_000,
            max_bytes: 1 << 30,
        },
    }
}

/// The next wake-up `want` accepts, skipping others; fails after [`WAIT`].
async fn wait_for(rx: &mut Receiver<Wakeup>, want: impl Fn(&Wakeup) -> bool) -> Wakeup {
    let wait = async {
        loop {
            let wakeup = rx.recv().await.expect("wake-up channel closed");
            if want(&wakeup) {
                return wakeup;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("no wake-up in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_once_and_again_on_restart() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.connect().await;
    let mut rng = rng(40);
    register(&store, "kept", &mut rng).await;
    store.close().await.unwrap();
    drop(store);
    // Connecting again finds the migrations applied and the data there.
    let store = db.connect().await;
    assert!(store.account_by_handle("kept").await.unwrap().is_some());
    let rows = db
        .admin()
        .await
        .query(
            "SELECT version FROM kith_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, vec![1]);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_schema_is_refused() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    db.connect().await.close().await.unwrap();
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO kith_schema_history (version, name, applied_on, checksum) \
             VALUES (999, 'from_the_future', '2100-01-01T00:00:00Z', '0')",
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(db.options()).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: 999,
            known: 1
        }
    );
    assert!(err.to_string().contains("upgrade the relay"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_unreachable_and_hide_the_password() {
    let refused = PostgresOptions {
        url: "postgres://kith:sekrit-pw@127.0.0.1:1/kith".into(),
        pool_size: 1,
        ca_file: None,
    };
    let err = PostgresStore::connect(refused.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::DatabaseUnreachable(_)), "{err:?}");
    assert!(!err.to_string().contains("sekrit-pw"));
    assert!(!format!("{refused:?}").contains("sekrit-pw"));
    let garbage = PostgresOptions {
        url: "postgres://kith:sekrit-pw@[nonsense".into(),
        pool_size: 1,
        ca_file: None,
    };
    let err = PostgresStore::connect(garbage).await.unwrap_err();
    assert!(!err.to_string().contains("sekrit-pw"), "{err}");

    // A real server, a wrong password.
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some((_, host)) = db.url.split_once('@') else {
        return; // keyword form: nothing to rewrite
    };
    let wrong = PostgresOptions {
        url: format!("postgres://kith:sekrit-pw@{host}"),
        pool_size: 1,
        ca_file: None,
    };
    let err = PostgresStore::connect(wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::DatabaseUnreachable(_)), "{err:?}");
    assert!(!err.to_string().contains("sekrit-pw"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_time_prekeys_go_out_once_across_nodes() {
    const KEYS: u32 = 40;
    const FETCHES: usize = 120;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (a, b) = (Arc::new(db.connect().await), Arc::new(db.connect().await));
    let mut rng = rng(41);
    let device = register(&*a, "popular", &mut rng).await;
    let id = device.id();
    a.publish_prekeys(id, device.prekeys(1, KEYS, KEYS, &mut rng))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..FETCHES)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { store.take_bundle_material(id).await.unwrap() })
        })
        .collect();
    let (mut x25519, mut kem) = (HashSet::new(), HashSet::new());
    for task in tasks {
        let material = task.await.unwrap();
        if let Some(key) = material.one_time {
            assert!(x25519.insert(key.id()), "one-time prekey handed out twice");
        }
        if material.kem.kind() == KemPrekeyKind::OneTime {
            assert!(kem.insert(material.kem.id()), "KEM prekey handed out twice");
        }
    }
    let all: HashSet<u32> = (1..=KEYS).collect();
    assert_eq!((x25519, kem), (all.clone(), all));
    let counts = b.prekey_counts(id).await.unwrap();
    assert_eq!((counts.one_time, counts.one_time_kem), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enqueue_wakes_the_other_node() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (a, b) = (db.connect().await, db.connect().await);
    let mut wakeups = b.take_wakeups().unwrap();
    assert!(
        b.take_wakeups().is_none(),
        "the receiver is handed out once"
    );
    let mut rng = rng(42);
    let (x, y) = (
        register(&a, "x", &mut rng).await,
        register(&a, "y", &mut rng).await,
    );
    a.enqueue(send(1, b"hi", &[x.id(), y.id()], NOW + 100))
        .await
        .unwrap();
    let mut woken = HashSet::new();
    while woken.len() < 2 {
        match wait_for(&mut wakeups, |w| matches!(w, Wakeup::Device(_))).await {
            Wakeup::Device(d) => woken.insert(d),
            Wakeup::Resync => unreachable!(),
        };
    }
    assert_eq!(woken, HashSet::from([x.id(), y.id()]));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_listen_connection_resyncs_and_recovers() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (a, b) = (db.connect().await, db.connect().await);
    let mut wakeups = b.take_wakeups().unwrap();
    let mut rng = rng(43);
    let x = register(&a, "x", &mut rng).await;
    let killed = db
        .admin()
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 2, "both nodes' LISTEN connections");
    assert_eq!(
        wait_for(&mut wakeups, |w| *w == Wakeup::Resync).await,
        Wakeup::Resync
    );
    // Listening again: later notifications arrive.
    a.enqueue(send(1, b"after", &[x.id()], NOW + 100))
        .await
        .unwrap();
    let want = Wakeup::Device(x.id());
    assert_eq!(wait_for(&mut wakeups, |w| *w == want).await, want);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_enqueue_raced_across_nodes_is_stored_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (a, b) = (Arc::new(db.connect().await), Arc::new(db.connect().await));
    let mut rng = rng(44);
    let x = register(&*a, "x", &mut rng).await;
    let y = register(&*a, "y", &mut rng).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let send = send(7, b"once", &[x.id(), y.id()], NOW + 100);
            tokio::spawn(async move { store.enqueue(send).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        let receipt = task.await.unwrap();
        assert_eq!(receipt.deliveries, vec![1, 1]);
        fresh += usize::from(!receipt.duplicate);
    }
    assert_eq!(fresh, 1);
    let stats = b.queue_stats().await.unwrap();
    assert_eq!(
        (stats.entries, stats.bodies, stats.bytes),
        (2, 1, 4 + 3 + 3)
    );
    assert_eq!(a.list(x.id(), None, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_on_both_nodes_at_once_deletes_everything_once() {
    const SENDS: u8 = 200;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (a, b) = (Arc::new(db.connect().await), Arc::new(db.connect().await));
    let mut rng = rng(45);
    let x = register(&*a, "x", &mut rng).await;
    let y = register(&*a, "y", &mut rng).await;
    for i in 0..SENDS {
        // Two recipients each: 400 entries (more than one batch), 200 shared bodies.
        a.enqueue(send(i, &[i; 10], &[x.id(), y.id()], NOW + 10))
            .await
            .unwrap();
    }
    for i in 0..20u8 {
        let token = InviteTokenHash::of(&[i]);
        b.create_invite(token, 1, NOW + 10).await.unwrap();
    }
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { store.expire(NOW + 10).await.unwrap() })
        })
        .collect();
    let mut total = (0, 0, 0, 0);
    for run in runs {
        let c = run.await.unwrap();
        total.0 += c.entries;
        total.1 += c.bodies;
        total.2 += c.idempotency_keys;
        total.3 += c.invites;
    }
    assert_eq!(total, (400, 200, 200, 20));
    assert_eq!(a.queue_stats().await.unwrap(), Default::default());
    // The quota counters went down with the entries: a one-entry mailbox has room again.
    let mut tight = send(99, b"fits", &[x.id()], NOW + 100);
    tight.limits = MailboxLimits {
        max_entries: 1,
        max_bytes: 7,
    };
    let receipt = b.enqueue(tight).await.unwrap();
    assert_eq!(receipt.deliveries, vec![u64::from(SENDS) + 1]);
}
