//! Prekeys.

use std::collections::HashSet;
use std::sync::Arc;

use kith_protocol::{AccountKeyPair, KemPrekeyKind};

use super::{TestDevice, register, rng};
use crate::store::{PrekeyCounts, Prekeys, Store, StoreError};

/// Publishing stores and counts prekeys; a duplicate id rejects the whole upload.
pub async fn prekeys_publish_and_count<S: Store>(store: S) {
    let mut rng = rng(10);
    let device = register(&store, "pk", &mut rng).await;
    let id = device.id();
    assert_eq!(
        store.take_bundle_material(id).await,
        Err(StoreError::PrekeysMissing)
    );
    assert_eq!(
        store.prekey_counts(id).await.unwrap(),
        PrekeyCounts::default()
    );

    store
        .publish_prekeys(id, device.prekeys(1, 3, 2, &mut rng))
        .await
        .unwrap();
    let counts = PrekeyCounts {
        signed: true,
        last_resort_kem: true,
        one_time: 3,
        one_time_kem: 2,
    };
    assert_eq!(store.prekey_counts(id).await.unwrap(), counts);

    // Ids 3..6 overlap the stored 1..4: nothing of this upload is stored, not even 4 and 5.
    let overlapping = device.prekeys(3, 3, 0, &mut rng);
    let refused = store.publish_prekeys(id, overlapping).await;
    assert_eq!(refused, Err(StoreError::DuplicatePrekey));
    assert_eq!(store.prekey_counts(id).await.unwrap(), counts);

    // A repeat inside one upload.
    let mut repeated = device.prekeys(10, 0, 1, &mut rng);
    repeated.one_time_kem.push(repeated.one_time_kem[0].clone());
    let refused = store.publish_prekeys(id, repeated).await;
    assert_eq!(refused, Err(StoreError::DuplicatePrekey));
    assert_eq!(store.prekey_counts(id).await.unwrap(), counts);

    // A new signed prekey alone replaces the old one and leaves the rest.
    let fresh = device.prekeys(20, 1, 0, &mut rng);
    let signed = fresh.signed.clone();
    store
        .publish_prekeys(
            id,
            Prekeys {
                signed: signed.clone(),
                ..Prekeys::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.prekey_counts(id).await.unwrap(), counts);
    let material = store.take_bundle_material(id).await.unwrap();
    assert_eq!(Some(material.signed), signed);
    assert_eq!(material.one_time.map(|k| k.id()), Some(1));
    assert_eq!(material.kem.id(), 1);
    assert_eq!(material.kem.kind(), KemPrekeyKind::OneTime);

    let stranger = TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);
    let unknown = store.publish_prekeys(stranger.id(), fresh).await;
    assert_eq!(unknown, Err(StoreError::DeviceNotFound));
    assert_eq!(
        store.prekey_counts(stranger.id()).await,
        Err(StoreError::DeviceNotFound)
    );
    let unknown = store.take_bundle_material(stranger.id()).await;
    assert_eq!(unknown, Err(StoreError::DeviceNotFound));
}

/// 50 concurrent bundle fetches for a device with 20 one-time prekeys of each kind: each
/// one-time prekey goes to exactly one fetch, the other 30 get none and the last-resort KEM key.
pub async fn bundle_material_is_handed_out_once<S: Store>(store: S) {
    const FETCHES: usize = 50;
    const ONE_TIME: u32 = 20;
    let mut rng = rng(11);
    let device = register(&store, "popular", &mut rng).await;
    let id = device.id();
    let prekeys = device.prekeys(100, ONE_TIME, ONE_TIME, &mut rng);
    let last_resort = prekeys.last_resort_kem.clone().unwrap();
    store.publish_prekeys(id, prekeys).await.unwrap();

    let store = Arc::new(store);
    let tasks: Vec<_> = (0..FETCHES)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_bundle_material(id).await })
        })
        .collect();
    let (mut x25519, mut kem, mut fallbacks) = (HashSet::new(), HashSet::new(), 0);
    for task in tasks {
        let material = task.await.unwrap().unwrap();
        if let Some(one_time) = material.one_time {
            assert!(
                x25519.insert(one_time.id()),
                "one-time prekey handed out twice"
            );
        }
        match material.kem.kind() {
            KemPrekeyKind::OneTime => assert!(kem.insert(material.kem.id()), "KEM prekey twice"),
            KemPrekeyKind::LastResort => {
                assert_eq!(material.kem, last_resort);
                fallbacks += 1;
            }
        }
    }
    let all: HashSet<u32> = (100..100 + ONE_TIME).collect();
    assert_eq!((x25519.clone(), kem.clone()), (all.clone(), all));
    assert_eq!(fallbacks, FETCHES - 20);
    let counts = store.prekey_counts(id).await.unwrap();
    assert_eq!((counts.one_time, counts.one_time_kem), (0, 0));
    assert!(counts.signed && counts.last_resort_kem);
}
