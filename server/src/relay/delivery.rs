//! Pushing a device's mailbox to its connection.
//!
//! Right after authentication the whole queue is pushed in order, in batches, then
//! `QueueDrained`. Afterwards each queue wake-up pushes what was stored after the last pushed
//! entry. Pushed entries stay stored until the device acknowledges them, so a reconnecting
//! device gets its unacknowledged entries again (devices deduplicate).

use kith_protocol::DeviceId;
use kith_protocol::wire::{Delivery, ServerFrame};
use kith_protocol::{BoundedBytes, consts};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{Connection, Gone};
use super::observe;
use super::registry::Wake;
use crate::store::{DeliveryId, Envelope, Store};

/// Mailbox entries read and pushed per batch.
const BATCH: usize = 64;

/// What has been pushed to one connection so far.
#[derive(Debug)]
pub(super) struct Pusher {
    /// The connection's device.
    device: DeviceId,
    /// The last entry pushed (entries are listed after it).
    cursor: Option<DeliveryId>,
}

impl Pusher {
    /// Nothing pushed yet.
    pub(super) fn new(device: DeviceId) -> Self {
        Self {
            device,
            cursor: None,
        }
    }

    /// The initial push: a prekey check, the whole queue, then `QueueDrained`. The notice
    /// comes first so that a device that stops reading at `QueueDrained` (a one-shot
    /// `kith receive`) has seen everything that was pending for it.
    pub(super) async fn push_initial<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<S, T>,
    ) -> Result<(), Gone> {
        self.push_prekey_notice(conn).await?;
        self.push_queue(conn).await?;
        conn.send(&ServerFrame::QueueDrained).await
    }

    /// Reacts to a registry wake-up.
    pub(super) async fn on_wake<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<S, T>,
        wake: Wake,
    ) -> Result<(), Gone> {
        if wake.queue {
            self.push_queue(conn).await?;
        }
        if wake.prekeys {
            self.push_prekey_notice(conn).await?;
        }
        Ok(())
    }

    /// Pushes every entry after the cursor, in order. A store failure is logged and leaves
    /// the rest for the next wake-up or connection.
    async fn push_queue<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<S, T>,
    ) -> Result<(), Gone> {
        loop {
            let batch = match conn
                .shared
                .store
                .list(self.device, self.cursor, BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "listing a mailbox failed");
                    return Ok(());
                }
            };
            let full = batch.len() >= BATCH;
            let mut pushed = 0u64;
            for envelope in batch {
                let id = envelope.delivery_id;
                if let Some(delivery) = delivery_of(envelope) {
                    conn.feed(&ServerFrame::Deliver(delivery)).await?;
                    pushed += 1;
                }
                self.cursor = Some(id);
            }
            conn.flush().await?;
            observe::count_delivered(pushed);
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends `PrekeyCountLow` when either kind of one-time prekey is below the watermark.
    async fn push_prekey_notice<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut Connection<S, T>,
    ) -> Result<(), Gone> {
        let counts = match conn.shared.store.prekey_counts(self.device).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "reading prekey counts failed");
                return Ok(());
            }
        };
        let low = conn.shared.settings.prekey_low_watermark;
        if counts.one_time >= low && counts.one_time_kem >= low {
            return Ok(());
        }
        conn.send(&ServerFrame::PrekeyCountLow {
            one_time_prekeys: counts.one_time,
            one_time_kem_prekeys: counts.one_time_kem,
        })
        .await
    }
}

/// The wire form of a stored entry; `None` (logged, skipped) if it is over the wire limits,
/// which the limits on `Send` rule out.
fn delivery_of(envelope: Envelope) -> Option<Delivery> {
    let Envelope {
        delivery_id,
        arrived_at,
        body,
        part,
        ..
    } = envelope;
    let body = BoundedBytes::<{ consts::MAX_BODY_LEN }>::new(body);
    let part = match part {
        None => Some(None),
        Some(part) => BoundedBytes::<{ consts::MAX_PART_LEN }>::new(part).map(Some),
    };
    match (body, part) {
        (Some(body), Some(part)) => Some(Delivery {
            delivery_id,
            arrived_at,
            body,
            part,
        }),
        _ => {
            tracing::warn!("a stored entry exceeds the wire limits; skipped");
            None
        }
    }
}
