//! Mailboxes, expiry and durability.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use super::{NOW, TestDevice, new_account, register, rng};
use crate::store::{
    DeliveryId, Enqueue, IdempotencyKey, InviteTokenHash, MailboxLimits, QueueStats, Recipient,
    Store, StoreError,
};

/// Limits no test reaches.
const ROOMY: MailboxLimits = MailboxLimits {
    max_entries: 10_000,
    max_bytes: 100 * 1024 * 1024,
};

/// A send of `body` to `recipients` (no parts), keyed by `key`, expiring at `expires_at`.
fn send(key: u8, body: &[u8], recipients: &[&TestDevice], expires_at: u64) -> Enqueue {
    Enqueue {
        idempotency_key: IdempotencyKey([key; 32]),
        body: body.to_vec(),
        recipients: recipients
            .iter()
            .map(|d| Recipient {
                device: d.id(),
                part: None,
            })
            .collect(),
        arrived_at: NOW,
        expires_at,
        idempotent_until: expires_at,
        limits: ROOMY,
    }
}

async fn ids<S: Store>(store: &S, device: &TestDevice) -> Vec<DeliveryId> {
    let listed = store.list(device.id(), None, 1000).await.unwrap();
    listed.iter().map(|e| e.delivery_id).collect()
}

fn queue(entries: u64, bodies: u64, bytes: u64) -> QueueStats {
    QueueStats {
        entries,
        bodies,
        bytes,
    }
}

/// One body and an entry per recipient; list in order; ack deletes entries, and the body with
/// the last entry.
pub async fn enqueue_list_ack<S: Store>(store: S) {
    let mut rng = rng(20);
    let a = register(&store, "mail-a", &mut rng).await;
    let b = register(&store, "mail-b", &mut rng).await;
    let mut first = send(1, b"hello", &[&a, &b], NOW + 100);
    first.recipients[0].part = Some(b"pa".to_vec());
    let receipt = store.enqueue(first).await.unwrap();
    assert_eq!((receipt.deliveries, receipt.duplicate), (vec![1, 1], false));
    let second = store
        .enqueue(send(2, &[7; 300], &[&a], NOW + 100))
        .await
        .unwrap();
    assert_eq!(second.deliveries, vec![2]);

    let listed = store.list(a.id(), None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].delivery_id, &listed[0].body[..]),
        (1, &b"hello"[..])
    );
    assert_eq!(listed[0].part.as_deref(), Some(&b"pa"[..]));
    assert_eq!(
        (listed[0].arrived_at, listed[0].expires_at),
        (NOW, NOW + 100)
    );
    assert_eq!((listed[1].delivery_id, listed[1].body.len()), (2, 300));
    assert_eq!(listed[1].part, None);
    assert_eq!(store.list(a.id(), None, 1).await.unwrap(), listed[..1]);
    assert_eq!(store.list(a.id(), Some(1), 10).await.unwrap(), listed[1..]);
    assert_eq!(store.list(a.id(), Some(u64::MAX), 10).await.unwrap(), []);
    assert_eq!(ids(&store, &b).await, vec![1]);
    assert_eq!(store.queue_stats().await.unwrap(), queue(3, 2, 5 + 2 + 300));

    assert_eq!(store.ack(a.id(), &[1, 999]).await.unwrap(), 1);
    assert_eq!(ids(&store, &a).await, vec![2]);
    // b still refers to "hello": the body stays.
    assert_eq!(store.queue_stats().await.unwrap(), queue(2, 2, 5 + 300));
    assert_eq!(store.ack(b.id(), &[1]).await.unwrap(), 1);
    assert_eq!(store.queue_stats().await.unwrap(), queue(1, 1, 300));
    assert_eq!(store.ack(a.id(), &[2, 2]).await.unwrap(), 1);
    assert_eq!(store.ack(a.id(), &[2]).await.unwrap(), 0);
    assert_eq!(store.queue_stats().await.unwrap(), queue(0, 0, 0));
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.queued_bytes), (0, 0));

    // Ids keep increasing after the queue drained.
    assert_eq!(
        store
            .enqueue(send(3, b"x", &[&a], NOW + 100))
            .await
            .unwrap()
            .deliveries,
        vec![3]
    );
}

/// The same idempotency key stores one copy and returns the first receipt, also when the
/// retries race.
pub async fn enqueue_is_idempotent<S: Store>(store: S) {
    let mut rng = rng(21);
    let a = register(&store, "idem-a", &mut rng).await;
    let b = register(&store, "idem-b", &mut rng).await;
    let first = store
        .enqueue(send(1, b"once", &[&a, &b], NOW + 100))
        .await
        .unwrap();
    let retry = store
        .enqueue(send(1, b"other bytes", &[&a], NOW + 100))
        .await
        .unwrap();
    assert_eq!(retry.deliveries, first.deliveries);
    assert!(retry.duplicate && !first.duplicate);
    assert_eq!(store.list(a.id(), None, 10).await.unwrap()[0].body, b"once");
    assert_eq!(store.queue_stats().await.unwrap(), queue(2, 1, 4));

    let store = Arc::new(store);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            let send = send(2, b"raced", &[&a], NOW + 100);
            tokio::spawn(async move { store.enqueue(send).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        let receipt = task.await.unwrap();
        assert_eq!(receipt.deliveries, vec![2]);
        fresh += usize::from(!receipt.duplicate);
    }
    assert_eq!(fresh, 1);
    assert_eq!(ids(&*store, &a).await, vec![1, 2]);

    // A short retry window: the key goes at `idempotent_until`, the entry stays until
    // `expires_at`, and a later retry is a new copy.
    let mut short = send(3, b"window", &[&a], NOW + 100);
    short.idempotent_until = NOW + 5;
    store.enqueue(short.clone()).await.unwrap();
    let counts = store.expire(NOW + 5).await.unwrap();
    assert_eq!((counts.entries, counts.idempotency_keys), (0, 1));
    let late = store.enqueue(short).await.unwrap();
    assert_eq!((late.deliveries, late.duplicate), (vec![4], false));
    assert_eq!(ids(&*store, &a).await, vec![1, 2, 3, 4]);
}

/// A full mailbox refuses the whole send: nothing stored for any recipient, nothing already
/// stored dropped, the idempotency key not recorded.
pub async fn mailbox_quota_is_all_or_nothing<S: Store>(store: S) {
    let mut rng = rng(22);
    let a = register(&store, "quota-a", &mut rng).await;
    let b = register(&store, "quota-b", &mut rng).await;
    let two = |mut s: Enqueue| {
        s.limits.max_entries = 2;
        s
    };
    store
        .enqueue(two(send(1, b"b1", &[&b], NOW + 100)))
        .await
        .unwrap();
    store
        .enqueue(two(send(2, b"b2", &[&b], NOW + 100)))
        .await
        .unwrap();
    let full = store
        .enqueue(two(send(3, b"both", &[&a, &b], NOW + 100)))
        .await;
    assert_eq!(full, Err(StoreError::MailboxFull));
    assert_eq!(ids(&store, &a).await, Vec::<DeliveryId>::new());
    assert_eq!(ids(&store, &b).await, vec![1, 2]);
    assert_eq!(store.queue_stats().await.unwrap(), queue(2, 2, 4));

    // Room again: the refused send was not remembered, so its retry is stored.
    store.ack(b.id(), &[1]).await.unwrap();
    let retry = store
        .enqueue(two(send(3, b"both", &[&a, &b], NOW + 100)))
        .await
        .unwrap();
    assert_eq!((retry.deliveries, retry.duplicate), (vec![1, 3], false));

    // The byte limit counts body and part per entry, up to and including the limit.
    let bytes = |mut s: Enqueue| {
        s.limits.max_bytes = 4 + 100;
        s
    };
    let over = store
        .enqueue(bytes(send(4, &[0; 101], &[&a], NOW + 100)))
        .await;
    assert_eq!(over, Err(StoreError::MailboxFull));
    let mut exact = bytes(send(5, &[0; 90], &[&a], NOW + 100));
    exact.recipients[0].part = Some(vec![1; 10]);
    store.enqueue(exact).await.unwrap();

    // An unknown recipient: nothing stored either.
    let stranger = TestDevice::new(&kith_protocol::AccountKeyPair::generate(&mut rng), &mut rng);
    let unknown = store
        .enqueue(send(6, b"?", &[&b, &stranger], NOW + 100))
        .await;
    assert_eq!(unknown, Err(StoreError::DeviceNotFound));
    assert_eq!(ids(&store, &b).await, vec![2, 3]);
    let nobody = store.enqueue(send(7, b"", &[], NOW + 100)).await.unwrap();
    assert!(nobody.deliveries.is_empty());
    assert_eq!(store.queue_stats().await.unwrap().entries, 4);
}

/// `expire(now)` deletes what expired at or before `now`: entries, bodies, idempotency keys,
/// invites; nothing else, and nothing twice.
pub async fn expiry_deletes_entries_bodies_and_keys<S: Store>(store: S) {
    let mut rng = rng(23);
    let a = register(&store, "exp-a", &mut rng).await;
    let b = register(&store, "exp-b", &mut rng).await;
    store
        .enqueue(send(1, b"short", &[&a, &b], NOW + 100))
        .await
        .unwrap();
    store
        .enqueue(send(2, b"long", &[&a], NOW + 200))
        .await
        .unwrap();
    store
        .create_invite(InviteTokenHash::of(b"t"), 3, NOW + 150)
        .await
        .unwrap();

    let nothing = store.expire(NOW + 99).await.unwrap();
    assert_eq!(nothing, Default::default());
    let counts = store.expire(NOW + 150).await.unwrap();
    assert_eq!(
        (
            counts.entries,
            counts.bodies,
            counts.idempotency_keys,
            counts.invites
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(ids(&store, &a).await, vec![2]);
    assert_eq!(ids(&store, &b).await, Vec::<DeliveryId>::new());
    assert_eq!(store.queue_stats().await.unwrap(), queue(1, 1, 4));
    let c = TestDevice::new(&kith_protocol::AccountKeyPair::generate(&mut rng), &mut rng);
    let gone = store.create_account(new_account("exp-c", &c, Some(InviteTokenHash::of(b"t"))));
    assert_eq!(gone.await, Err(StoreError::InviteInvalid));

    // Once expired, the key is forgotten: a late retry is stored again.
    let late = store
        .enqueue(send(1, b"short", &[&b], NOW + 400))
        .await
        .unwrap();
    assert!(!late.duplicate);
    // Acked entries are not counted again when their time comes.
    store.ack(a.id(), &[2]).await.unwrap();
    let counts = store.expire(NOW + 300).await.unwrap();
    assert_eq!(
        (counts.entries, counts.bodies, counts.idempotency_keys),
        (0, 0, 1)
    );
    assert_eq!(ids(&store, &b).await, vec![2]);
}

/// 100 concurrent sends to one device: every one stored, ids 1..=100, listed in id order with
/// the right bodies.
pub async fn concurrent_enqueues_keep_order<S: Store>(store: S) {
    const SENDS: u8 = 100;
    let mut rng = rng(24);
    let a = register(&store, "busy", &mut rng).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..SENDS)
        .map(|i| {
            let store = Arc::clone(&store);
            let send = send(i, &[i; 3], &[&a], NOW + 100);
            tokio::spawn(async move { (i, store.enqueue(send).await.unwrap().deliveries[0]) })
        })
        .collect();
    let mut bodies = HashMap::new();
    for task in tasks {
        let (i, id) = task.await.unwrap();
        assert!(
            bodies.insert(id, vec![i; 3]).is_none(),
            "delivery id assigned twice"
        );
    }
    let listed = store.list(a.id(), None, 1000).await.unwrap();
    let listed_ids: Vec<_> = listed.iter().map(|e| e.delivery_id).collect();
    assert_eq!(listed_ids, (1..=u64::from(SENDS)).collect::<Vec<_>>());
    for envelope in listed {
        assert_eq!(bodies[&envelope.delivery_id], envelope.body);
    }
}

/// Everything written before `close` is there after reopening; a used one-time prekey stays
/// used. `open` must open the same store each time.
pub async fn durability_across_reopen<S, F, Fut>(mut open: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let mut rng = rng(25);
    let store = open().await;
    let a = register(&store, "durable", &mut rng).await;
    store
        .publish_prekeys(a.id(), a.prekeys(1, 2, 2, &mut rng))
        .await
        .unwrap();
    let taken = store.take_bundle_material(a.id()).await.unwrap();
    store
        .enqueue(send(1, b"kept", &[&a], NOW + 100))
        .await
        .unwrap();
    store
        .enqueue(send(2, b"acked", &[&a], NOW + 100))
        .await
        .unwrap();
    store.ack(a.id(), &[2]).await.unwrap();
    store
        .create_invite(InviteTokenHash::of(b"later"), 1, NOW + 100)
        .await
        .unwrap();
    store.close().await.unwrap();
    assert_eq!(store.flush().await, Err(StoreError::Closed));
    drop(store);

    let store = open().await;
    let account = store.account_by_handle("durable").await.unwrap().unwrap();
    assert_eq!(account.devices, vec![a.id()]);
    let counts = store.prekey_counts(a.id()).await.unwrap();
    assert_eq!((counts.one_time, counts.one_time_kem), (1, 1));
    let next = store.take_bundle_material(a.id()).await.unwrap();
    assert_ne!(
        next.one_time.map(|k| k.id()),
        taken.one_time.map(|k| k.id())
    );
    let listed = store.list(a.id(), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].delivery_id, &listed[0].body[..]),
        (1, &b"kept"[..])
    );
    let retry = store
        .enqueue(send(1, b"kept", &[&a], NOW + 100))
        .await
        .unwrap();
    assert!(retry.duplicate);
    // Ids keep increasing across the restart and none is reused (sled even skips ahead: an
    // id pushed before a power cut took its entry away must not come back).
    let new = store
        .enqueue(send(3, b"new", &[&a], NOW + 100))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(new.len(), 1);
    assert!(new[0] > 2, "{new:?}");
    let b = TestDevice::new(&kith_protocol::AccountKeyPair::generate(&mut rng), &mut rng);
    let invited = new_account("invited", &b, Some(InviteTokenHash::of(b"later")));
    store.create_account(invited).await.unwrap();
    store.close().await.unwrap();
}
