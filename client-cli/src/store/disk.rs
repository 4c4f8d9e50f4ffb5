//! The store's directory and sled database: creating the directory, opening sled, and keeping
//! the files private to this user.
//!
//! sled 0.34 takes an exclusive `flock` on `DIR/db` when it opens. A second open of the same
//! directory, from another process or from this one (a new file description), fails at once
//! with an `io::Error` of kind `Other` reading "could not acquire lock on …: … WouldBlock",
//! which becomes [`StoreError::InUse`].

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::{StoreError, sled_error};

/// sled's page cache: its default is 1 GiB, far more than a client needs.
const CACHE_CAPACITY: u64 = 8 * 1024 * 1024;
/// The file sled keeps its data in (and locks). Its presence means a store exists.
const SLED_DB_FILE: &str = "db";

/// Creates `dir` (and missing parents) for a new store: fails if it exists and is not empty.
pub(super) fn create_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            return match entries.next() {
                Some(_) => Err(StoreError::AlreadyExists),
                None => Ok(()),
            };
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::Io(e)),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    Ok(())
}

/// Whether `dir` holds a sled database (so opening it does not create one).
pub(super) fn exists(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(dir.join(SLED_DB_FILE)) {
        Ok(meta) => Ok(meta.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::Io(e)),
    }
}

/// How long `open_db` waits for sled's file lock. sled releases it when the last of its
/// internal handles goes, which can be a moment after the `Db` was dropped (its background I/O
/// holds references briefly); a lock still held after this long belongs to another process.
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// Pause between attempts to take the lock.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Opens (or creates) the sled database in `dir`, then restricts the files' permissions.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let db = loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(sled_error);
        match opened {
            Err(StoreError::InUse) if Instant::now() < deadline => std::thread::sleep(LOCK_RETRY),
            other => break other?,
        }
    };
    restrict_permissions(dir)?;
    Ok(db)
}

/// Makes every file under `dir` 0600 and every directory (`dir` included) 0700. Symbolic
/// links are left alone. Files sled creates later live in the 0700 directory.
#[cfg(unix)]
fn restrict_permissions(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_dir() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            restrict_permissions(&entry?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Permissions are left to the platform where Unix modes do not exist.
#[cfg(not(unix))]
fn restrict_permissions(_dir: &Path) -> io::Result<()> {
    Ok(())
}
