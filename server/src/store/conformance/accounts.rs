//! Accounts, devices and invites.

use std::sync::Arc;

use kith_protocol::AccountKeyPair;
use kith_protocol::consts::MAX_DEVICES_PER_ACCOUNT;

use super::{NOW, TestDevice, new_account, register, rng};
use crate::store::{InviteTokenHash, Store, StoreError};

/// A handle belongs to one account; lookups by handle, key and device agree.
pub async fn account_and_handle_uniqueness<S: Store>(store: S) {
    let mut rng = rng(1);
    let alice = register(&store, "alice", &mut rng).await;
    let key = *alice.certificate.account_key();

    let by_handle = store.account_by_handle("alice").await.unwrap().unwrap();
    assert_eq!(by_handle.account_key, key);
    assert_eq!(by_handle.devices, vec![alice.id()]);
    assert_eq!(by_handle.created_at, NOW);
    assert_eq!(store.account_by_key(&key).await.unwrap(), Some(by_handle));
    assert_eq!(store.account_by_handle("bob").await.unwrap(), None);

    // Another account under the same handle.
    let other = TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);
    let again = store
        .create_account(new_account("alice", &other, None))
        .await;
    assert_eq!(again, Err(StoreError::HandleTaken));
    assert_eq!(
        store
            .account_by_key(other.certificate.account_key())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.device(other.id()).await.unwrap(), None);

    // The same account key (and device) under another handle.
    let twice = store
        .create_account(new_account("alice2", &alice, None))
        .await;
    assert_eq!(twice, Err(StoreError::AccountExists));

    let device = store.device(alice.id()).await.unwrap().unwrap();
    assert_eq!(device.account_key, key);
    assert_eq!(&device.certificate, alice.certificate.certificate());
    assert_eq!(store.devices_of(&key).await.unwrap(), vec![device]);

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.accounts, stats.devices), (1, 1));
}

/// Devices are added in order up to the limit; duplicates and unknown accounts are refused.
pub async fn add_devices_up_to_limit<S: Store>(store: S) {
    let mut rng = rng(2);
    let account = AccountKeyPair::generate(&mut rng);
    let first = TestDevice::new(&account, &mut rng);
    store
        .create_account(new_account("carol", &first, None))
        .await
        .unwrap();
    let mut ids = vec![first.id()];
    for _ in 1..MAX_DEVICES_PER_ACCOUNT {
        let device = TestDevice::new(&account, &mut rng);
        let updated = store
            .add_device(&device.certificate, NOW + 1)
            .await
            .unwrap();
        ids.push(device.id());
        assert_eq!(updated.devices, ids);
    }
    let one_more = TestDevice::new(&account, &mut rng);
    let refused = store.add_device(&one_more.certificate, NOW).await;
    assert_eq!(refused, Err(StoreError::TooManyDevices));
    assert_eq!(store.device(one_more.id()).await.unwrap(), None);

    let listed = store.devices_of(&account.public_key()).await.unwrap();
    let listed_ids: Vec<_> = listed
        .iter()
        .map(|d| d.certificate.claimed_device_id())
        .collect();
    assert_eq!(listed_ids, ids);
    assert_eq!(listed[1].added_at, NOW + 1);

    // An account that does not exist.
    let stranger = TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);
    let unknown = store.add_device(&stranger.certificate, NOW).await;
    assert_eq!(unknown, Err(StoreError::AccountNotFound));
    let unknown = store.devices_of(stranger.certificate.account_key()).await;
    assert_eq!(unknown, Err(StoreError::AccountNotFound));

    // A device id already in use by another account.
    let dave = register(&store, "dave", &mut rng).await;
    let clash = first.certificate.device_id();
    let dave_account = store.account_by_handle("dave").await.unwrap().unwrap();
    assert_eq!(dave_account.devices, vec![dave.id()]);
    let erin_keys = AccountKeyPair::generate(&mut rng);
    let erin = TestDevice::new(&erin_keys, &mut rng);
    store
        .create_account(new_account("erin", &erin, None))
        .await
        .unwrap();
    let stolen = erin_keys
        .certify_device(clash, &erin.keys, NOW)
        .verify()
        .unwrap();
    assert_eq!(
        store.add_device(&stolen, NOW).await,
        Err(StoreError::DeviceExists)
    );
    let first_again = store
        .create_account(new_account("frank", &first, None))
        .await;
    assert_eq!(first_again, Err(StoreError::AccountExists));
    assert_eq!(store.stats().await.unwrap().devices, 18);
}

/// Invites: each use registers once; used-up, expired and unknown invites are refused; a
/// registration that fails for another reason does not use the invite up.
pub async fn invites_valid_exhausted_expired<S: Store>(store: S) {
    let mut rng = rng(3);
    let two = InviteTokenHash::of(b"two-uses");
    store.create_invite(two, 2, NOW + 60).await.unwrap();
    let mut device = || TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);

    let (a, b, c) = (device(), device(), device());
    store
        .create_account(new_account("inv-a", &a, Some(two)))
        .await
        .unwrap();
    // Handle taken: fails, and the invite keeps its second use.
    let taken = store
        .create_account(new_account("inv-a", &b, Some(two)))
        .await;
    assert_eq!(taken, Err(StoreError::HandleTaken));
    store
        .create_account(new_account("inv-b", &b, Some(two)))
        .await
        .unwrap();
    let used_up = store
        .create_account(new_account("inv-c", &c, Some(two)))
        .await;
    assert_eq!(used_up, Err(StoreError::InviteInvalid));

    let unknown = InviteTokenHash::of(b"never created");
    let refused = store
        .create_account(new_account("inv-c", &c, Some(unknown)))
        .await;
    assert_eq!(refused, Err(StoreError::InviteInvalid));

    let expired = InviteTokenHash::of(b"expires at now");
    store.create_invite(expired, 5, NOW).await.unwrap();
    let late = store
        .create_account(new_account("inv-c", &c, Some(expired)))
        .await;
    assert_eq!(late, Err(StoreError::InviteInvalid));
    assert_eq!(store.account_by_handle("inv-c").await.unwrap(), None);
    assert_eq!(store.stats().await.unwrap().accounts, 2);
}

/// N concurrent registrations with a one-use invite: exactly one succeeds.
pub async fn invite_use_is_atomic<S: Store>(store: S) {
    const N: usize = 12;
    let mut rng = rng(4);
    let token = InviteTokenHash::of(b"one use");
    store.create_invite(token, 1, NOW + 60).await.unwrap();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let device = TestDevice::new(&AccountKeyPair::generate(&mut rng), &mut rng);
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let new = new_account(&format!("racer{i}"), &device, Some(token));
                store.create_account(new).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e, StoreError::InviteInvalid),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.stats().await.unwrap().accounts, 1);
}
