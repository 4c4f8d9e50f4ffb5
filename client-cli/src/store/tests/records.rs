//! Writing, reading and scanning records; creating and opening stores.

use super::super::{Batch, KdfParams, LocalStore, StoreError, Table};
use super::{FAST, fresh, passphrase, reopen};

/// A history item: the sequence number, big-endian so byte order is numeric order.
fn seq(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Puts one value.
#[allow(clippy::expect_used)]
fn put(store: &LocalStore, table: Table, group: &[u8], item: &[u8], value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(table, group, item, value);
    store.apply(batch).expect("apply");
}

/// The plain values of a scan.
fn values(items: &[(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(item, value)| (item.clone(), value.to_vec()))
        .collect()
}

#[test]
fn put_get_remove_round_trip() {
    let (_tmp, _dir, store) = fresh();
    assert!(store.get(Table::Contacts, b"alice", b"").unwrap().is_none());
    put(&store, Table::Contacts, b"alice", b"", b"alice's record");
    let value = store.get(Table::Contacts, b"alice", b"").unwrap().unwrap();
    assert_eq!(&value[..], b"alice's record");

    put(&store, Table::Contacts, b"alice", b"", b"replaced");
    assert_eq!(
        &store.get(Table::Contacts, b"alice", b"").unwrap().unwrap()[..],
        b"replaced"
    );

    let mut batch = Batch::new();
    batch.remove(Table::Contacts, b"alice", b"");
    store.apply(batch).unwrap();
    assert!(store.get(Table::Contacts, b"alice", b"").unwrap().is_none());
}

#[test]
fn empty_values_and_groups_round_trip() {
    let (_tmp, _dir, store) = fresh();
    put(&store, Table::Account, b"", b"", b"");
    assert_eq!(
        &store.get(Table::Account, b"", b"").unwrap().unwrap()[..],
        b""
    );
}

#[test]
fn apply_writes_every_op() {
    let (_tmp, _dir, store) = fresh();
    put(&store, Table::Prekeys, b"one-time", &seq(1), b"old prekey");

    let mut batch = Batch::new();
    assert!(batch.is_empty());
    batch.put(Table::Account, b"", b"", b"account");
    batch.put(Table::Sessions, b"device-7", b"", b"session");
    batch.put(Table::History, b"bob", &seq(1), b"hello");
    batch.put(Table::History, b"bob", &seq(2), b"world");
    batch.remove(Table::Prekeys, b"one-time", &seq(1));
    assert!(!batch.is_empty());
    store.apply(batch).unwrap();

    assert_eq!(
        &store.get(Table::Account, b"", b"").unwrap().unwrap()[..],
        b"account"
    );
    assert_eq!(
        &store
            .get(Table::Sessions, b"device-7", b"")
            .unwrap()
            .unwrap()[..],
        b"session"
    );
    assert_eq!(store.scan_group(Table::History, b"bob").unwrap().len(), 2);
    assert!(
        store
            .get(Table::Prekeys, b"one-time", &seq(1))
            .unwrap()
            .is_none()
    );

    store.apply(Batch::new()).unwrap();
}

#[test]
fn later_write_to_the_same_key_wins() {
    let (_tmp, _dir, store) = fresh();
    let mut batch = Batch::new();
    batch.put(Table::BaseKeys, b"", b"k1", b"first");
    batch.remove(Table::BaseKeys, b"", b"k1");
    batch.remove(Table::BaseKeys, b"", b"k2");
    batch.put(Table::BaseKeys, b"", b"k2", b"second");
    store.apply(batch).unwrap();
    assert!(store.get(Table::BaseKeys, b"", b"k1").unwrap().is_none());
    assert_eq!(
        &store.get(Table::BaseKeys, b"", b"k2").unwrap().unwrap()[..],
        b"second"
    );
}

#[test]
fn scans_return_items_in_byte_order() {
    let (_tmp, _dir, store) = fresh();
    let mut batch = Batch::new();
    for n in [5u64, 1, 300, 2, 4, 3, 256] {
        batch.put(
            Table::History,
            b"bob",
            &seq(n),
            format!("message {n}").as_bytes(),
        );
    }
    store.apply(batch).unwrap();

    let all = values(&store.scan_group(Table::History, b"bob").unwrap());
    let expected: Vec<(Vec<u8>, Vec<u8>)> = [1u64, 2, 3, 4, 5, 256, 300]
        .iter()
        .map(|n| (seq(*n).to_vec(), format!("message {n}").into_bytes()))
        .collect();
    assert_eq!(all, expected);

    let last = values(&store.scan_group_last(Table::History, b"bob", 3).unwrap());
    assert_eq!(last, expected[4..].to_vec());
    assert!(
        store
            .scan_group_last(Table::History, b"bob", 0)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        values(&store.scan_group_last(Table::History, b"bob", 100).unwrap()),
        expected
    );
    assert!(
        store
            .scan_group(Table::History, b"carol")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn groups_and_tables_do_not_mix() {
    let (_tmp, _dir, store) = fresh();
    let mut batch = Batch::new();
    batch.put(Table::History, b"bob", &seq(1), b"to bob");
    batch.put(Table::History, b"bo", &seq(1), b"to bo");
    batch.put(Table::History, b"bobby", &seq(1), b"to bobby");
    batch.put(Table::Contacts, b"bob", &seq(1), b"contact bob");
    store.apply(batch).unwrap();

    assert_eq!(
        &store.get(Table::History, b"bob", &seq(1)).unwrap().unwrap()[..],
        b"to bob"
    );
    assert_eq!(
        &store.get(Table::History, b"bo", &seq(1)).unwrap().unwrap()[..],
        b"to bo"
    );
    assert_eq!(
        &store
            .get(Table::Contacts, b"bob", &seq(1))
            .unwrap()
            .unwrap()[..],
        b"contact bob"
    );
    let bob = values(&store.scan_group(Table::History, b"bob").unwrap());
    assert_eq!(bob, vec![(seq(1).to_vec(), b"to bob".to_vec())]);

    let mut history: Vec<Vec<u8>> = store
        .scan_table(Table::History)
        .unwrap()
        .iter()
        .map(|v| v.to_vec())
        .collect();
    history.sort();
    assert_eq!(
        history,
        vec![b"to bo".to_vec(), b"to bob".to_vec(), b"to bobby".to_vec()]
    );
    assert_eq!(store.scan_table(Table::Contacts).unwrap().len(), 1);
    assert!(store.scan_table(Table::Sessions).unwrap().is_empty());
}

#[test]
fn reopen_after_drop_sees_the_data() {
    let (_tmp, dir, store) = fresh();
    put(&store, Table::Account, b"", b"", b"persisted");
    drop(store);
    let store = reopen(&dir);
    assert_eq!(
        &store.get(Table::Account, b"", b"").unwrap().unwrap()[..],
        b"persisted"
    );
}

#[test]
fn create_refuses_an_existing_store_or_a_non_empty_directory() {
    let (tmp, dir, store) = fresh();
    drop(store);
    let again = LocalStore::create(&dir, &passphrase(), FAST);
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    reopen(&dir);

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"keep me").unwrap();
    let result = LocalStore::create(&other, &passphrase(), FAST);
    assert!(
        matches!(result, Err(StoreError::AlreadyExists)),
        "{result:?}"
    );
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"keep me");
}

#[test]
fn create_accepts_an_existing_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    LocalStore::create(tmp.path(), &passphrase(), FAST).unwrap();
}

#[test]
fn create_rejects_absurd_params_without_touching_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    for params in [
        KdfParams {
            memory_kib: 4,
            ..FAST
        },
        KdfParams {
            memory_kib: u32::MAX,
            ..FAST
        },
        KdfParams {
            iterations: 0,
            ..FAST
        },
        KdfParams {
            iterations: 101,
            ..FAST
        },
        KdfParams {
            parallelism: 0,
            ..FAST
        },
        KdfParams {
            parallelism: 17,
            ..FAST
        },
        KdfParams {
            memory_kib: 64,
            parallelism: 16,
            ..FAST
        },
    ] {
        let result = LocalStore::create(&dir, &passphrase(), params);
        assert!(
            matches!(result, Err(StoreError::InvalidKdfParams)),
            "{params:?}: {result:?}"
        );
    }
    assert!(!dir.exists());
}

#[test]
fn open_of_a_missing_store_is_not_found_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    assert!(matches!(
        LocalStore::open(&missing, &passphrase()),
        Err(StoreError::NotFound)
    ));
    assert!(!missing.exists());

    assert!(matches!(
        LocalStore::open(tmp.path(), &passphrase()),
        Err(StoreError::NotFound)
    ));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn default_params_create_and_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = LocalStore::create(&dir, &passphrase(), KdfParams::default()).unwrap();
    put(&store, Table::Account, b"", b"", b"with defaults");
    drop(store);
    let store = reopen(&dir);
    assert_eq!(
        &store.get(Table::Account, b"", b"").unwrap().unwrap()[..],
        b"with defaults"
    );
}

#[test]
fn local_store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LocalStore>();
}
