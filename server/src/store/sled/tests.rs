//! The conformance suite on sled, and sled-only checks: damaged bytes, directory lock, layout
//! version, group commit.

use std::sync::Arc;
use std::time::Instant;

use tempfile::TempDir;

use super::codec::{SCHEMA_KEY, entry_key};
use super::{SledOptions, SledStore};
use crate::store::conformance::{self, NOW, register, rng};
use crate::store::{
    Enqueue, IdempotencyKey, InviteTokenHash, MailboxLimits, Recipient, Store, StoreError,
};

fn open(dir: &TempDir) -> SledStore {
    let options = SledOptions {
        cache_capacity: 8 * 1024 * 1024,
        ..SledOptions::default()
    };
    SledStore::open(dir.path(), options).unwrap()
}

macro_rules! conformance_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let dir = tempfile::tempdir().unwrap();
            conformance::$case(open(&dir)).await;
        }
    )*};
}

conformance_cases!(
    account_and_handle_uniqueness,
    add_devices_up_to_limit,
    invites_valid_exhausted_expired,
    invite_use_is_atomic,
    prekeys_publish_and_count,
    bundle_material_is_handed_out_once,
    enqueue_list_ack,
    enqueue_is_idempotent,
    mailbox_quota_is_all_or_nothing,
    expiry_deletes_entries_bodies_and_keys,
    concurrent_enqueues_keep_order,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    conformance::durability_across_reopen(|| std::future::ready(open(&dir))).await;
}

fn send(key: u8, recipient: kith_protocol::DeviceId) -> Enqueue {
    Enqueue {
        idempotency_key: IdempotencyKey([key; 32]),
        body: vec![key; 64],
        recipients: vec![Recipient {
            device: recipient,
            part: None,
        }],
        arrived_at: NOW,
        expires_at: NOW + 100,
        idempotent_until: NOW + 100,
        limits: MailboxLimits {
            max_entries: 100_000,
            max_bytes: 1 << 30,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let second = SledStore::open(dir.path(), SledOptions::default());
    let err = second.unwrap_err();
    assert_eq!(err, StoreError::InUse);
    assert_eq!(
        err.to_string(),
        "data directory is in use by another kith-relay process"
    );
    store.close().await.unwrap();
}

#[test]
fn open_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .trees()
        .meta
        .insert(SCHEMA_KEY, &99u32.to_be_bytes())
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(30);
    let a = register(&store, "victim", &mut rng).await;
    store
        .publish_prekeys(a.id(), a.prekeys(1, 1, 1, &mut rng))
        .await
        .unwrap();
    store.enqueue(send(1, a.id())).await.unwrap();
    let token = InviteTokenHash::of(b"t");
    store.create_invite(token, 2, NOW + 10).await.unwrap();
    let trees = store.trees();
    let key = *a.certificate.account_key();
    let id = a.id();

    // A valid record with one trailing byte is damaged too.
    let account = trees.accounts.get(key.as_bytes()).unwrap().unwrap();
    let mut longer = account.to_vec();
    longer.push(0);
    trees.accounts.insert(key.as_bytes(), longer).unwrap();
    let err = store.account_by_handle("victim").await.unwrap_err();
    assert_eq!(err, StoreError::Corrupt("account"));
    assert_eq!(err.to_string(), "corrupt stored account");

    let garbage = [0xFFu8; 7];
    trees.handles.insert(b"victim", &garbage).unwrap();
    assert_eq!(
        store.account_by_handle("victim").await,
        Err(StoreError::Corrupt("handle"))
    );
    trees.devices.insert(id.as_bytes(), &garbage).unwrap();
    assert_eq!(store.device(id).await, Err(StoreError::Corrupt("device")));
    trees
        .signed_prekeys
        .insert(id.as_bytes(), &garbage)
        .unwrap();
    assert_eq!(
        store.take_bundle_material(id).await,
        Err(StoreError::Corrupt("signed prekey"))
    );
    trees.entries.insert(entry_key(&id, 1), &garbage).unwrap();
    assert_eq!(
        store.list(id, None, 10).await,
        Err(StoreError::Corrupt("mailbox entry"))
    );
    assert_eq!(
        store.ack(id, &[1]).await,
        Err(StoreError::Corrupt("mailbox entry"))
    );
    trees.mailboxes.insert(id.as_bytes(), &garbage).unwrap();
    assert_eq!(
        store.enqueue(send(2, id)).await,
        Err(StoreError::Corrupt("mailbox"))
    );
    assert_eq!(
        store.queue_stats().await,
        Err(StoreError::Corrupt("mailbox"))
    );
    trees.invites.insert(token.0, &garbage).unwrap();
    let other =
        conformance::TestDevice::new(&kith_protocol::AccountKeyPair::generate(&mut rng), &mut rng);
    let new = conformance::new_account("other", &other, Some(token));
    assert_eq!(
        store.create_account(new).await.unwrap_err(),
        StoreError::Corrupt("invite")
    );
    trees.expiry.insert([0u8; 3], &[][..]).unwrap();
    assert_eq!(
        store.expire(NOW).await,
        Err(StoreError::Corrupt("expiry index key"))
    );
    store.close().await.unwrap();
}

/// Many concurrent senders share flushes: far fewer flushes than writes. Prints throughput
/// (run with `--nocapture` to see it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_flushes() {
    const TASKS: usize = 50;
    const PER_TASK: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let a = register(&*store, "sink", &mut rng(31)).await;
    let id = a.id();
    let before = store.flush_count();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let mut s = send(0, id);
                    s.idempotency_key.0[..8]
                        .copy_from_slice(&((t * PER_TASK + i) as u64).to_be_bytes());
                    store.enqueue(s).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let writes = (TASKS * PER_TASK) as u64;
    let flushes = store.flush_count() - before;
    eprintln!(
        "group commit: {writes} durable enqueues from {TASKS} tasks in {elapsed:?} \
         ({:.0}/s), {flushes} flushes",
        writes as f64 / elapsed.as_secs_f64()
    );
    assert!(
        flushes * 4 < writes,
        "{flushes} flushes for {writes} writes"
    );
    assert_eq!(store.queue_stats().await.unwrap().entries, writes);
    store.close().await.unwrap();
}

/// Set in the child process of [`accepted_writes_survive_a_crash`]: the data directory.
const CRASH_CHILD_DIR: &str = "KITH_RELAY_TEST_CRASH_CHILD_DIR";

/// Writes that returned survive the process dying right after, without `close` or any
/// destructor: the test re-runs itself as a child that enqueues concurrently and then calls
/// `process::exit`, and the parent reopens the directory. sled's own periodic flush is off, so
/// only the group commit can have made these writes durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_writes_survive_a_crash() {
    const SENDS: u8 = 40;
    if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
        let store = Arc::new(SledStore::open(&dir, SledOptions::default()).unwrap());
        let a = register(&*store, "crash", &mut rng(32)).await.id();
        let tasks: Vec<_> = (0..SENDS)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.enqueue(send(i, a)).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "store::sled::tests::accepted_writes_survive_a_crash",
            "--exact",
        ])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");
    let store = open(&dir);
    let account = store.account_by_handle("crash").await.unwrap().unwrap();
    let listed = store.list(account.devices[0], None, 100).await.unwrap();
    assert_eq!(listed.len(), usize::from(SENDS));
    store.close().await.unwrap();
}

/// One combined transaction, five ops: each stands alone. The failed sends write nothing, the
/// repeated key inside the batch is a duplicate of the first, the ack sees the first's entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_each_op_on_its_own() {
    use super::mailbox::{MailboxOp, MailboxOutcome};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(40);
    let bob = register(&store, "bob", &mut rng).await;
    let unknown = kith_protocol::DeviceId::from_bytes([9; 16]);
    let first = send(1, bob.id());
    let to_unknown = send(2, unknown);
    let mut too_big = send(3, bob.id());
    too_big.limits.max_bytes = 10;
    let repeat = send(1, bob.id());
    let ops = [
        MailboxOp::Enqueue {
            send: &first,
            body_id: 1001,
        },
        MailboxOp::Enqueue {
            send: &to_unknown,
            body_id: 1002,
        },
        MailboxOp::Enqueue {
            send: &too_big,
            body_id: 1003,
        },
        MailboxOp::Enqueue {
            send: &repeat,
            body_id: 1004,
        },
    ];
    let outcomes = store.trees().apply_mailbox_ops(&ops).unwrap();
    let receipt = match &outcomes[0] {
        Ok(MailboxOutcome::Enqueued(receipt)) => receipt.clone(),
        other => panic!("{other:?}"),
    };
    assert!(!receipt.duplicate);
    assert!(matches!(outcomes[1], Err(StoreError::DeviceNotFound)));
    assert!(matches!(outcomes[2], Err(StoreError::MailboxFull)));
    match &outcomes[3] {
        Ok(MailboxOutcome::Enqueued(again)) => {
            assert!(again.duplicate);
            assert_eq!(again.deliveries, receipt.deliveries);
        }
        other => panic!("{other:?}"),
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queued_envelopes, 1);
    assert_eq!(stats.queued_bytes, 64, "only the first body is stored");
    let listed = store.list(bob.id(), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].body, vec![1; 64]);

    // The ack in a batch of its own, through the writer like the relay's.
    assert_eq!(store.ack(bob.id(), &receipt.deliveries).await.unwrap(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.queued_bytes), (0, 0));
    store.close().await.unwrap();
}

/// A closed store refuses writes with `Closed`, including through the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(41);
    let bob = register(&store, "bob", &mut rng).await;
    store.close().await.unwrap();
    assert_eq!(
        store.enqueue(send(5, bob.id())).await.unwrap_err(),
        StoreError::Closed
    );
    assert_eq!(
        store.ack(bob.id(), &[1]).await.unwrap_err(),
        StoreError::Closed
    );
}

/// A delivery id handed out before a restart is never handed out again, even if the entry
/// (pushed before its flush) was lost: every open moves each mailbox's ids far ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_ids_are_not_reused_after_a_restart() {
    use super::mailbox::DELIVERY_ID_GAP;

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(42);
    let bob = register(&store, "bob", &mut rng).await;
    let first = store.enqueue(send(1, bob.id())).await.unwrap().deliveries[0];
    store.close().await.unwrap();
    drop(store);

    let store = open(&dir);
    let second = store.enqueue(send(2, bob.id())).await.unwrap().deliveries[0];
    assert!(
        second > first + DELIVERY_ID_GAP - 1,
        "{first} then {second}"
    );
    // The entry from before the restart is still there, under its own id.
    let listed = store.list(bob.id(), None, 10).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|e| e.delivery_id).collect();
    assert_eq!(ids, vec![first, second]);
    store.close().await.unwrap();
}

/// An injected failure of a batch's transaction: the send gets an error, never a receipt, and
/// nothing is stored; the store goes on working afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_an_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(43);
    let bob = register(&store, "bob", &mut rng).await;
    store.faults().fail_apply(true);
    assert!(matches!(
        store.enqueue(send(1, bob.id())).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.ack(bob.id(), &[1]).await,
        Err(StoreError::Backend(_))
    ));
    store.faults().fail_apply(false);
    assert!(store.list(bob.id(), None, 10).await.unwrap().is_empty());
    // The same idempotency key is not "seen": the retry is stored, once.
    let receipt = store.enqueue(send(1, bob.id())).await.unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(store.list(bob.id(), None, 10).await.unwrap().len(), 1);
    store.close().await.unwrap();
}

/// An injected flush failure: the send that waited for it gets an error, not a receipt; what
/// was applied but never made durable is not handed out; the store reports itself broken and
/// refuses every later write instead of answering "stored".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_fails_the_send_and_breaks_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = rng(44);
    let bob = register(&store, "bob", &mut rng).await;
    store.faults().fail_flush(true);
    assert!(matches!(
        store.enqueue(send(1, bob.id())).await,
        Err(StoreError::Backend(_))
    ));
    let broken = tokio::time::timeout(std::time::Duration::from_secs(10), store.broken())
        .await
        .expect("the store reports itself broken");
    assert!(matches!(broken, StoreError::Backend(_)));
    // Applied before the failed flush, so readable in sled, but not durable: not listed.
    assert!(store.list(bob.id(), None, 10).await.is_err());
    // Even with flushes "working" again, nothing more is promised.
    store.faults().fail_flush(false);
    assert!(store.enqueue(send(2, bob.id())).await.is_err());
    assert!(
        store.close().await.is_err(),
        "close reports the failed flush"
    );
}
