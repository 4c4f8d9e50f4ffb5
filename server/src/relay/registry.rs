//! Which device is connected where: each authenticated device maps to the wake-up signals of
//! its one live connection.
//!
//! A wake-up carries no data ("look at your queue", "look at your prekey counts"), so wake-ups
//! coalesce: setting a flag that is already set costs nothing, and a connection busy pushing
//! sees the flag on its next turn. A second connection of the same device replaces the first:
//! the old connection's `replaced` token is cancelled and it closes itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kith_protocol::DeviceId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// DeviceId → the signals of its live connection.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// The live connection of each connected device.
    entries: Mutex<HashMap<DeviceId, Entry>>,
    /// Source of connection ids, so that a replaced connection does not unregister its
    /// successor when it ends.
    next_id: AtomicU64,
}

/// One registered connection.
#[derive(Debug)]
struct Entry {
    /// Which registration this is.
    id: u64,
    /// Its wake-up signals.
    signals: Arc<Signals>,
}

/// The wake-up signals of one connection.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// New mailbox entries may be waiting.
    queue: AtomicBool,
    /// The device's one-time prekeys may be running low.
    prekeys: AtomicBool,
    /// Wakes the connection's loop; holds one permit, so wake-ups never get lost.
    notify: Notify,
    /// Cancelled when a newer connection of the same device replaces this one.
    replaced: CancellationToken,
}

/// What a connection was woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    /// Push the queue after the last pushed entry.
    pub(super) queue: bool,
    /// Check the prekey counts and send `PrekeyCountLow` if they are low.
    pub(super) prekeys: bool,
}

/// A connection's place in the registry; unregisters itself on drop (unless replaced).
#[derive(Debug)]
pub(super) struct Registered {
    registry: Arc<Registry>,
    device: DeviceId,
    id: u64,
    signals: Arc<Signals>,
}

impl Registry {
    /// Registers the live connection of `device`, replacing (and signalling) an older one.
    pub(super) fn register(self: &Arc<Self>, device: DeviceId) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let signals = Arc::new(Signals::default());
        let entry = Entry {
            id,
            signals: Arc::clone(&signals),
        };
        if let Some(old) = self.lock().insert(device, entry) {
            old.signals.replaced.cancel();
        }
        Registered {
            registry: Arc::clone(self),
            device,
            id,
            signals,
        }
    }

    /// Tells `device`'s connection, if any, that its queue has new entries.
    pub(super) fn wake_queue(&self, device: &DeviceId) {
        self.signal(device, |s| &s.queue);
    }

    /// Tells every connection here that its queue may have new entries (after wake-ups from
    /// other nodes may have been lost). Returns how many connections were woken.
    pub(super) fn wake_all_queues(&self) -> usize {
        let entries = self.lock();
        for entry in entries.values() {
            entry.signals.queue.store(true, Ordering::Release);
            entry.signals.notify.notify_one();
        }
        entries.len()
    }

    /// Tells `device`'s connection, if any, to check its prekey counts.
    pub(super) fn wake_prekeys(&self, device: &DeviceId) {
        self.signal(device, |s| &s.prekeys);
    }

    /// Whether `device` has a live connection.
    pub(super) fn is_connected(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    /// Number of registered connections.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Sets one flag of `device`'s connection and wakes it.
    fn signal(&self, device: &DeviceId, flag: impl Fn(&Signals) -> &AtomicBool) {
        if let Some(entry) = self.lock().get(device) {
            flag(&entry.signals).store(true, Ordering::Release);
            entry.signals.notify.notify_one();
        }
    }

    /// Removes `device`'s entry if it is still registration `id`.
    fn unregister(&self, device: &DeviceId, id: u64) {
        let mut entries = self.lock();
        if entries.get(device).is_some_and(|e| e.id == id) {
            entries.remove(device);
        }
    }

    /// The map; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Registered {
    /// Waits for the next wake-up. Cancel-safe: a wake-up that arrives while this future is
    /// dropped is seen by the next call.
    pub(super) async fn woken(&self) -> Wake {
        loop {
            let wake = Wake {
                queue: self.signals.queue.swap(false, Ordering::AcqRel),
                prekeys: self.signals.prekeys.swap(false, Ordering::AcqRel),
            };
            if wake.queue || wake.prekeys {
                return wake;
            }
            self.signals.notify.notified().await;
        }
    }

    /// Completes when a newer connection of the same device has replaced this one.
    pub(super) async fn replaced(&self) {
        self.signals.replaced.cancelled().await;
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.unregister(&self.device, self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    async fn woken_soon(reg: &Registered) -> Option<Wake> {
        tokio::time::timeout(Duration::from_millis(50), reg.woken())
            .await
            .ok()
    }

    #[tokio::test]
    async fn newer_connection_replaces_older() {
        let registry = Arc::new(Registry::default());
        let first = registry.register(device(1));
        let second = registry.register(device(1));
        assert!(first.signals.replaced.is_cancelled());
        assert!(!second.signals.replaced.is_cancelled());
        // The replaced connection ending must not unregister its successor.
        drop(first);
        assert!(registry.is_connected(&device(1)));
        registry.wake_queue(&device(1));
        assert_eq!(
            woken_soon(&second).await,
            Some(Wake {
                queue: true,
                prekeys: false
            })
        );
        drop(second);
        assert!(!registry.is_connected(&device(1)));
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn wake_ups_coalesce_and_are_not_lost() {
        let registry = Arc::new(Registry::default());
        let reg = registry.register(device(2));
        assert_eq!(woken_soon(&reg).await, None);
        registry.wake_queue(&device(2));
        registry.wake_queue(&device(2));
        registry.wake_prekeys(&device(2));
        assert_eq!(
            woken_soon(&reg).await,
            Some(Wake {
                queue: true,
                prekeys: true
            })
        );
        assert_eq!(woken_soon(&reg).await, None);
        // Waking an unknown device is a no-op.
        registry.wake_queue(&device(3));
        assert!(!registry.is_connected(&device(3)));
    }
}
