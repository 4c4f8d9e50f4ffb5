//! What the store does against a wrong passphrase, tampering, a second process, and prying
//! eyes on the disk.

use std::path::Path;

use super::super::vault::Header;
use super::super::{Batch, HEADER_KEY, LocalStore, Passphrase, StoreError, Table};
use super::{FAST, files_under, fresh, passphrase, reopen};

/// Runs `edit` on the raw sled database of the (closed) store in `dir`.
#[allow(clippy::expect_used)]
fn edit_raw(dir: &Path, edit: impl FnOnce(&sled::Db, &sled::Tree)) {
    let db = sled::open(dir).expect("raw open");
    let data = db.open_tree("data").expect("data tree");
    edit(&db, &data);
    db.flush().expect("flush");
}

/// A closed store holding two history records of `bob`.
#[allow(clippy::expect_used)]
fn closed_store_with_two_records() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, dir, store) = fresh();
    let mut batch = Batch::new();
    batch.put(Table::History, b"bob", &[1], b"first message");
    batch.put(Table::History, b"bob", &[2], b"second message");
    store.apply(batch).expect("apply");
    drop(store);
    (tmp, dir)
}

/// Rewrites the header of the closed store in `dir` with `edit`.
#[allow(clippy::expect_used)]
fn edit_header(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    edit_raw(dir, |db, _| {
        let mut header = db.get(HEADER_KEY).expect("get").expect("header").to_vec();
        edit(&mut header);
        db.insert(HEADER_KEY, header).expect("insert");
    });
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let (_tmp, dir, store) = fresh();
    drop(store);
    for wrong in [
        "correct horse battery stapl",
        "",
        "Correct horse battery staple",
    ] {
        let result = LocalStore::open(&dir, &Passphrase::new(wrong.to_owned()));
        assert!(
            matches!(result, Err(StoreError::WrongPassphrase)),
            "{result:?}"
        );
    }
    reopen(&dir);
}

#[test]
fn empty_passphrase_is_allowed_at_this_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = || Passphrase::new(String::new());
    drop(LocalStore::create(tmp.path(), &empty(), FAST).unwrap());
    LocalStore::open(tmp.path(), &empty()).unwrap();
}

#[test]
fn every_flipped_byte_of_a_value_is_corrupt() {
    let (_tmp, dir) = closed_store_with_two_records();
    let len = {
        let mut len = 0;
        edit_raw(&dir, |_, data| {
            len = data.iter().next().unwrap().unwrap().1.len()
        });
        len
    };
    assert_eq!(len, 24 + b"first message".len() + 16);
    for at in [0, 23, 24, 24 + 5, len - 16, len - 1] {
        edit_raw(&dir, |_, data| {
            let (key, value) = data.iter().next().unwrap().unwrap();
            let mut value = value.to_vec();
            value[at] ^= 0x01;
            data.insert(key, value).unwrap();
        });
        let store = reopen(&dir);
        let result = store.get(Table::History, b"bob", &[1]);
        assert!(
            matches!(result, Err(StoreError::Corrupt)),
            "byte {at}: {result:?}"
        );
        assert!(matches!(
            store.scan_group(Table::History, b"bob"),
            Err(StoreError::Corrupt)
        ));
        assert!(matches!(
            store.scan_table(Table::History),
            Err(StoreError::Corrupt)
        ));
        drop(store);
        edit_raw(&dir, |_, data| {
            let (key, value) = data.iter().next().unwrap().unwrap();
            let mut value = value.to_vec();
            value[at] ^= 0x01;
            data.insert(key, value).unwrap();
        });
        assert_eq!(
            &reopen(&dir)
                .get(Table::History, b"bob", &[1])
                .unwrap()
                .unwrap()[..],
            b"first message"
        );
    }
}

#[test]
fn truncated_value_is_corrupt() {
    let (_tmp, dir) = closed_store_with_two_records();
    edit_raw(&dir, |_, data| {
        let (key, _) = data.iter().next().unwrap().unwrap();
        data.insert(key, vec![0u8; 10]).unwrap();
    });
    let result = reopen(&dir).get(Table::History, b"bob", &[1]);
    assert!(matches!(result, Err(StoreError::Corrupt)), "{result:?}");
}

#[test]
fn a_value_moved_to_another_key_is_corrupt() {
    let (_tmp, dir) = closed_store_with_two_records();
    edit_raw(&dir, |_, data| {
        let entries: Vec<_> = data.iter().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 2);
        data.insert(entries[1].0.clone(), entries[0].1.clone())
            .unwrap();
    });
    let store = reopen(&dir);
    assert_eq!(
        &store.get(Table::History, b"bob", &[1]).unwrap().unwrap()[..],
        b"first message"
    );
    let result = store.get(Table::History, b"bob", &[2]);
    assert!(matches!(result, Err(StoreError::Corrupt)), "{result:?}");
    assert!(matches!(
        store.scan_group_last(Table::History, b"bob", 1),
        Err(StoreError::Corrupt)
    ));
}

#[test]
fn header_params_or_salt_changed_within_bounds_fail_to_unlock() {
    let (_tmp, dir) = closed_store_with_two_records();
    // memory_kib 1024 → 2048 (byte 3 of the big-endian u32 at offset 1); then the salt.
    for (at, flip) in [
        (3, 0x0C),
        (8, 0x03),
        (13, 0x01),
        (28, 0x80),
        (29, 0x01),
        (100, 0x01),
    ] {
        edit_header(&dir, |h| h[at] ^= flip);
        let result = LocalStore::open(&dir, &passphrase());
        assert!(
            matches!(result, Err(StoreError::WrongPassphrase)),
            "byte {at}: {result:?}"
        );
        edit_header(&dir, |h| h[at] ^= flip);
    }
    reopen(&dir);
}

#[test]
fn absurd_header_params_are_corrupt_before_argon2_runs() {
    let (_tmp, dir) = closed_store_with_two_records();
    let absurd: [(usize, [u8; 4]); 6] = [
        (1, u32::MAX.to_be_bytes()), // 4 TiB of memory: must not be allocated
        (1, (4 * 1024 * 1024 + 1u32).to_be_bytes()),
        (1, 4u32.to_be_bytes()),
        (5, 0u32.to_be_bytes()),
        (5, 1_000_000u32.to_be_bytes()),
        (9, 0u32.to_be_bytes()),
    ];
    for (at, bytes) in absurd {
        let mut saved = [0u8; 4];
        edit_header(&dir, |h| {
            saved.copy_from_slice(&h[at..at + 4]);
            h[at..at + 4].copy_from_slice(&bytes);
        });
        let result = LocalStore::open(&dir, &passphrase());
        assert!(
            matches!(result, Err(StoreError::Corrupt)),
            "{at} {bytes:?}: {result:?}"
        );
        edit_header(&dir, |h| h[at..at + 4].copy_from_slice(&saved));
    }
    reopen(&dir);
}

#[test]
fn unknown_versions_and_bad_lengths_are_rejected() {
    assert!(matches!(Header::decode(&[]), Err(StoreError::Corrupt)));
    assert!(matches!(
        Header::decode(&[2; 101]),
        Err(StoreError::UnsupportedVersion { found: 2 })
    ));
    assert!(matches!(
        Header::decode(&[1; 100]),
        Err(StoreError::Corrupt)
    ));
    assert!(matches!(
        Header::decode(&[1; 102]),
        Err(StoreError::Corrupt)
    ));

    let (_tmp, dir) = closed_store_with_two_records();
    edit_header(&dir, |h| h[0] = 9);
    let result = LocalStore::open(&dir, &passphrase());
    assert!(
        matches!(result, Err(StoreError::UnsupportedVersion { found: 9 })),
        "{result:?}"
    );
    edit_header(&dir, |h| h.truncate(60));
    assert!(matches!(
        LocalStore::open(&dir, &passphrase()),
        Err(StoreError::UnsupportedVersion { .. })
    ));
    edit_header(&dir, |h| h[0] = 1);
    assert!(matches!(
        LocalStore::open(&dir, &passphrase()),
        Err(StoreError::Corrupt)
    ));
}

#[test]
fn missing_header_is_not_found() {
    let (_tmp, dir) = closed_store_with_two_records();
    edit_raw(&dir, |db, _| {
        db.remove(HEADER_KEY).unwrap();
    });
    assert!(matches!(
        LocalStore::open(&dir, &passphrase()),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn plaintext_never_reaches_the_disk() {
    const MARKER: &[u8] = b"MARKER-7f3a9c-plaintext-must-not-leak";
    let (_tmp, dir, store) = fresh();
    let mut batch = Batch::new();
    batch.put(Table::History, MARKER, &[1], b"value of the marker group");
    batch.put(Table::Contacts, b"alice", b"", MARKER);
    batch.put(Table::Account, b"", b"", &MARKER.repeat(100));
    store.apply(batch).unwrap();

    let on_disk = || {
        let files = files_under(&dir);
        assert!(!files.is_empty());
        files.iter().any(|file| {
            let bytes = std::fs::read(file).unwrap();
            bytes.windows(MARKER.len()).any(|w| w == MARKER)
        })
    };
    assert!(!on_disk(), "marker on disk while the store is open");
    drop(store);
    assert!(!on_disk(), "marker on disk after the store was closed");
    let store = reopen(&dir);
    assert_eq!(
        &store.get(Table::Contacts, b"alice", b"").unwrap().unwrap()[..],
        MARKER
    );
    drop(store);

    // Control: the search does find the marker once it is written without encryption.
    edit_raw(&dir, |db, _| {
        db.insert(b"control", MARKER).unwrap();
    });
    assert!(on_disk(), "the search is blind");
}

#[cfg(unix)]
#[test]
fn files_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;

    let (tmp, dir, store) = fresh();
    store.apply(Batch::new()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("home")), 0o700);
    let mut checked = 0;
    let mut walk = vec![dir.clone()];
    while let Some(d) = walk.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                walk.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    drop(store);

    std::fs::set_permissions(dir.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(reopen(&dir));
    assert_eq!(mode(&dir.join("db")), 0o600);
}

#[test]
fn a_second_open_of_the_same_store_is_in_use() {
    let (_tmp, dir, store) = fresh();
    let second = LocalStore::open(&dir, &passphrase());
    assert!(matches!(second, Err(StoreError::InUse)), "{second:?}");
    // Also when the second opener has the wrong passphrase: the lock is checked first.
    let wrong = LocalStore::open(&dir, &Passphrase::new("nope".to_owned()));
    assert!(matches!(wrong, Err(StoreError::InUse)), "{wrong:?}");
    drop(store);
    reopen(&dir);
}

#[test]
fn secrets_are_never_printed() {
    let secret = "hunter2-very-secret";
    let passphrase = Passphrase::new(secret.to_owned());
    assert_eq!(format!("{passphrase:?}"), "Passphrase(..)");
    assert_eq!(format!("{passphrase:#?}"), "Passphrase(..)");

    let (_tmp, _dir, store) = fresh();
    assert_eq!(format!("{store:?}"), "LocalStore { .. }");
    let mut batch = Batch::new();
    batch.put(Table::Account, secret.as_bytes(), b"", secret.as_bytes());
    assert!(!format!("{batch:?}").contains(secret));
}

#[test]
fn messages_speak_to_the_person_at_the_keyboard() {
    let full = StoreError::Io(std::io::ErrorKind::StorageFull.into());
    assert_eq!(
        full.to_string(),
        "The disk is full: free some space and try again; nothing was lost."
    );
    let quota = StoreError::Io(std::io::ErrorKind::QuotaExceeded.into());
    assert!(quota.to_string().starts_with("The disk is full"));
    assert!(
        StoreError::WrongPassphrase
            .to_string()
            .contains("KITH_PASSPHRASE")
    );
    assert!(
        StoreError::InUse
            .to_string()
            .contains("Close it and try again")
    );
    assert!(
        StoreError::Corrupt
            .to_string()
            .contains("Restore the home directory")
    );
    assert!(
        StoreError::UnsupportedVersion { found: 7 }
            .to_string()
            .contains("version 7")
    );
}
