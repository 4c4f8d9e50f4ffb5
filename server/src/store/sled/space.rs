//! The free-space reserve: sends are refused while the data directory's file system has less
//! than [`SledOptions::min_free_bytes`](super::SledOptions) available.
//!
//! Refusing early is what keeps a full disk harmless. Once sled itself hits `ENOSPC` mid-write
//! it marks its log failed and nothing more can be written until the process restarts, and a
//! flush that fails leaves the group committer unable to promise anything. With the reserve,
//! sends get `StorageFull` while there is still room for what must keep working —
//! acknowledgements and expiry (which free space), the flushes behind them, the few bytes a
//! restart writes — and are accepted again as soon as space returns, without a restart.
//!
//! `statvfs` is cheap, but a send costs only a few microseconds, so the answer is reused for
//! [`RECHECK`]: the reserve must be larger than what can be written in that time (at the
//! relay's peak, well under a megabyte).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::StoreError;

/// How long one look at the free space is reused.
const RECHECK: Duration = Duration::from_millis(10);

/// The reserve of one data directory.
#[derive(Debug)]
pub(super) struct SpaceGuard {
    dir: PathBuf,
    min_free: u64,
    last: Mutex<Option<Look>>,
}

/// One look at the file system.
#[derive(Debug, Clone, Copy)]
struct Look {
    at: Instant,
    full: bool,
}

impl SpaceGuard {
    /// A guard keeping `min_free` bytes free on the file system holding `dir` (0: no reserve).
    pub(super) fn new(dir: PathBuf, min_free: u64) -> Self {
        Self {
            dir,
            min_free,
            last: Mutex::new(None),
        }
    }

    /// `Err(StorageFull)` when a write that grows the store must be refused. A file system
    /// that cannot be asked (an unusual `statvfs` failure) does not block writes: sled's own
    /// errors still stop them if the disk really is full.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.min_free == 0 {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let full = match *last {
            Some(look) if now.duration_since(look.at) < RECHECK => look.full,
            previous => {
                let full = self.look();
                let was_full = previous.is_some_and(|p| p.full);
                if full && !was_full {
                    tracing::warn!(
                        reserve_mib = self.min_free / (1024 * 1024),
                        "the data directory's disk is nearly full: sends are refused (StorageFull) \
                         until space is freed; deliveries and acknowledgements go on"
                    );
                } else if was_full && !full {
                    tracing::info!(
                        "disk space is back above the reserve: sends are accepted again"
                    );
                }
                *last = Some(Look { at: now, full });
                full
            }
        };
        if full {
            Err(StoreError::StorageFull)
        } else {
            Ok(())
        }
    }

    /// Whether the file system is below the reserve now.
    fn look(&self) -> bool {
        match fs2::available_space(&self.dir) {
            Ok(available) => available < self.min_free,
            Err(e) => {
                tracing::debug!(error = %e.kind(), "cannot read the data directory's free space");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reserve_never_refuses() {
        let dir = tempfile::tempdir().unwrap();
        SpaceGuard::new(dir.path().into(), 0).check().unwrap();
    }

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_a_small_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let available = fs2::available_space(dir.path()).unwrap();
        let huge = SpaceGuard::new(dir.path().into(), available.saturating_mul(2).max(1));
        assert!(matches!(huge.check(), Err(StoreError::StorageFull)));
        // The answer is reused, and stays "full".
        assert!(matches!(huge.check(), Err(StoreError::StorageFull)));
        SpaceGuard::new(dir.path().into(), 1).check().unwrap();
    }
}
