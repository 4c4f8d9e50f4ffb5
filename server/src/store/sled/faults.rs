//! Injected failures for the store's own tests: make the next batch's transaction or every
//! flush fail as an I/O error would. Never switched on outside `#[cfg(test)]` code (the
//! setters exist only there); in the relay each is one relaxed atomic load per batch or flush.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::StoreError;

/// The switches, shared by the store, its writer thread and its flusher.
#[derive(Debug, Default)]
pub(super) struct Faults {
    apply: AtomicBool,
    flush: AtomicBool,
}

impl Faults {
    /// `Err` in place of applying a batch, when switched on.
    pub(super) fn on_apply(&self) -> Result<(), StoreError> {
        injected(&self.apply, "write")
    }

    /// `Err` in place of a flush, when switched on.
    pub(super) fn on_flush(&self) -> Result<(), StoreError> {
        injected(&self.flush, "flush")
    }

    /// Makes batch transactions fail (`true`) or work again.
    #[cfg(test)]
    pub(super) fn fail_apply(&self, on: bool) {
        self.apply.store(on, Ordering::Relaxed);
    }

    /// Makes flushes fail.
    #[cfg(test)]
    pub(super) fn fail_flush(&self, on: bool) {
        self.flush.store(on, Ordering::Relaxed);
    }
}

fn injected(switch: &AtomicBool, what: &str) -> Result<(), StoreError> {
    if switch.load(Ordering::Relaxed) {
        Err(StoreError::Backend(format!("injected {what} failure")))
    } else {
        Ok(())
    }
}
