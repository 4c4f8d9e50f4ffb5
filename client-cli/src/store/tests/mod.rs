//! Tests of the local store: records in `records.rs`, tampering and secrecy in `security.rs`.

mod records;
mod security;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{KdfParams, LocalStore, Passphrase};

/// Cheap Argon2id parameters so the tests run fast.
const FAST: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// The passphrase most tests use.
fn passphrase() -> Passphrase {
    Passphrase::new("correct horse battery staple".to_owned())
}

/// A fresh store in `TMP/home/store` (the parent does not exist yet either).
#[allow(clippy::expect_used)]
fn fresh() -> (TempDir, PathBuf, LocalStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("home").join("store");
    let store = LocalStore::create(&dir, &passphrase(), FAST).expect("create");
    (tmp, dir, store)
}

/// Reopens the store in `dir` with the usual passphrase.
#[allow(clippy::expect_used)]
fn reopen(dir: &Path) -> LocalStore {
    LocalStore::open(dir, &passphrase()).expect("open")
}

/// Every regular file under `dir`, recursively.
#[allow(clippy::expect_used)]
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
