//! [`Store`] for [`SledStore`]: each write runs its sled operation, then waits for the group
//! commit that makes it durable.

use std::sync::atomic::Ordering;

use kith_protocol::{AccountPublicKey, DeviceId, VerifiedCertificate};

use super::SledStore;
use super::combiner::Op;
use super::mailbox::MailboxOutcome;
use crate::store::{
    Account, BundleMaterial, DeliveryId, DeviceRecord, Enqueue, Envelope, ExpireCounts,
    InviteTokenHash, NewAccount, PrekeyCounts, Prekeys, QueueStats, Receipt, Staged, Store,
    StoreError, StoreStats,
};

impl Store for SledStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account, StoreError> {
        self.check_writable()?;
        let account = self.trees.create_account(&new)?;
        self.commit.durable().await?;
        Ok(account)
    }

    async fn account_by_handle(&self, handle: &str) -> Result<Option<Account>, StoreError> {
        self.trees.account_by_handle(handle)
    }

    async fn account_by_key(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Option<Account>, StoreError> {
        self.trees.account_by_key(account_key)
    }

    async fn add_device(
        &self,
        certificate: &VerifiedCertificate,
        added_at: u64,
    ) -> Result<Account, StoreError> {
        self.check_writable()?;
        let account = self.trees.add_device(certificate, added_at)?;
        self.commit.durable().await?;
        Ok(account)
    }

    async fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        self.trees.device(&device)
    }

    async fn devices_of(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        self.trees.devices_of(account_key)
    }

    async fn publish_prekeys(&self, device: DeviceId, prekeys: Prekeys) -> Result<(), StoreError> {
        self.check_writable()?;
        self.trees.publish_prekeys(&device, &prekeys)?;
        self.commit.durable().await
    }

    async fn take_bundle_material(&self, device: DeviceId) -> Result<BundleMaterial, StoreError> {
        self.check_open()?;
        let (material, taken) = self.trees.take_bundle_material(&device)?;
        // A one-time key handed out must stay handed out after a crash.
        if taken {
            self.commit.durable().await?;
        }
        Ok(material)
    }

    async fn prekey_counts(&self, device: DeviceId) -> Result<PrekeyCounts, StoreError> {
        self.trees.prekey_counts(&device)
    }

    async fn enqueue(&self, send: Enqueue) -> Result<Receipt, StoreError> {
        self.enqueue_staged(send).await?.await
    }

    async fn enqueue_staged(&self, send: Enqueue) -> Result<Staged<Receipt>, StoreError> {
        self.check_writable()?;
        let outcome = self.combiner.queue(Op::Enqueue(send)).await?;
        Ok(Box::pin(async move {
            match outcome.await? {
                MailboxOutcome::Enqueued(receipt) => Ok(receipt),
                MailboxOutcome::Acked(_) => Err(mismatched()),
            }
        }))
    }

    async fn list(
        &self,
        device: DeviceId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let envelopes = self.trees.list(&device, after, limit)?;
        // Only durable entries leave the store (see `combiner.rs`).
        if !envelopes.is_empty() {
            self.combiner.until_durable(&device).await?;
        }
        Ok(envelopes)
    }

    async fn ack(&self, device: DeviceId, ids: &[DeliveryId]) -> Result<u64, StoreError> {
        self.ack_staged(device, ids).await?.await
    }

    async fn ack_staged(
        &self,
        device: DeviceId,
        ids: &[DeliveryId],
    ) -> Result<Staged<u64>, StoreError> {
        self.check_open()?;
        let outcome = self.combiner.queue(Op::Ack(device, ids.to_vec())).await?;
        Ok(Box::pin(async move {
            match outcome.await? {
                MailboxOutcome::Acked(removed) => Ok(removed),
                MailboxOutcome::Enqueued(_) => Err(mismatched()),
            }
        }))
    }

    async fn expire(&self, now: u64) -> Result<ExpireCounts, StoreError> {
        self.check_open()?;
        let counts = self.trees.expire(now)?;
        self.commit.durable().await?;
        Ok(counts)
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.trees.queue_stats()
    }

    async fn create_invite(
        &self,
        token: InviteTokenHash,
        uses: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        self.trees.create_invite(&token, uses, expires_at)?;
        self.commit.durable().await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.trees.stats()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.check_open()?;
        self.commit.durable().await
    }

    async fn broken(&self) -> StoreError {
        self.commit.failed().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::SeqCst);
        // Writes already queued are applied first, so the last flush covers them.
        let stopped = self.combiner.stop().await;
        self.commit.close().await?;
        stopped
    }
}

/// The writer answered an op with the outcome of another kind (a bug).
fn mismatched() -> StoreError {
    StoreError::Backend("the store's writer answered with the wrong kind of outcome".into())
}
