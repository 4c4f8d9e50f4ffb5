//! Wake-ups from other relay nodes sharing the store (PostgreSQL's `LISTEN/NOTIFY`).
//!
//! A send on this node wakes this node's recipients directly ([`super::handlers`]); a send on
//! another node reaches this node only through the store's [`Wakeup`] channel, which this task
//! turns into the same registry wake-ups. Single-node engines (sled) have no channel and no
//! task.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::registry::Registry;
use crate::store::Wakeup;

/// Forwards `wakeups` to the connections registered here until `shutdown` is cancelled or the
/// store drops its sender (when it closes).
pub(super) async fn forward(
    registry: Arc<Registry>,
    mut wakeups: mpsc::Receiver<Wakeup>,
    shutdown: CancellationToken,
) {
    loop {
        let wakeup = tokio::select! {
            () = shutdown.cancelled() => return,
            wakeup = wakeups.recv() => wakeup,
        };
        match wakeup {
            Some(Wakeup::Device(device)) => registry.wake_queue(&device),
            Some(Wakeup::Resync) => {
                let woken = registry.wake_all_queues();
                tracing::debug!(connections = woken, "resync: re-reading every queue");
            }
            None => {
                tracing::debug!("the store stopped sending wake-ups");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kith_protocol::DeviceId;

    use super::*;

    #[tokio::test]
    async fn device_and_resync_wake_ups_reach_local_connections() {
        let registry = Arc::new(Registry::default());
        let one = registry.register(DeviceId::from_bytes([1; 16]));
        let two = registry.register(DeviceId::from_bytes([2; 16]));
        let (tx, rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(forward(Arc::clone(&registry), rx, shutdown.clone()));
        let soon = Duration::from_secs(5);

        tx.send(Wakeup::Device(DeviceId::from_bytes([1; 16])))
            .await
            .unwrap();
        // A device connected elsewhere (not registered here) is ignored.
        tx.send(Wakeup::Device(DeviceId::from_bytes([9; 16])))
            .await
            .unwrap();
        assert!(tokio::time::timeout(soon, one.woken()).await.unwrap().queue);

        tx.send(Wakeup::Resync).await.unwrap();
        assert!(tokio::time::timeout(soon, one.woken()).await.unwrap().queue);
        assert!(tokio::time::timeout(soon, two.woken()).await.unwrap().queue);

        shutdown.cancel();
        tokio::time::timeout(soon, task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn stops_when_the_store_drops_its_sender() {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(forward(
            Arc::new(Registry::default()),
            rx,
            CancellationToken::new(),
        ));
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
