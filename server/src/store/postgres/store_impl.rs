//! [`Store`] for [`PostgresStore`]: each write is one transaction (retried on serialisation
//! failures and deadlocks) and returns after its COMMIT; reads are single statements.

use kith_protocol::{AccountPublicKey, DeviceId, VerifiedCertificate};
use tokio::sync::mpsc;

use super::stats::Expiring;
use super::{PostgresStore, accounts, mailbox, prekeys, stats, transaction};
use crate::store::{
    Account, BundleMaterial, DeliveryId, DeviceRecord, Enqueue, Envelope, ExpireCounts,
    InviteTokenHash, NewAccount, PrekeyCounts, Prekeys, QueueStats, Receipt, Store, StoreError,
    StoreStats, Wakeup,
};

impl Store for PostgresStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account, StoreError> {
        self.check_open()?;
        transaction!(self, |tx| accounts::create_account(&tx, &new).await?)
    }

    async fn account_by_handle(&self, handle: &str) -> Result<Option<Account>, StoreError> {
        let client = self.client().await?;
        accounts::account_by_handle(&client, handle)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn account_by_key(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Option<Account>, StoreError> {
        let client = self.client().await?;
        accounts::account_by_key(&client, account_key)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn add_device(
        &self,
        certificate: &VerifiedCertificate,
        added_at: u64,
    ) -> Result<Account, StoreError> {
        self.check_open()?;
        transaction!(self, |tx| accounts::add_device(&tx, certificate, added_at)
            .await?)
    }

    async fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let client = self.client().await?;
        accounts::device(&client, &device)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn devices_of(
        &self,
        account_key: &AccountPublicKey,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let client = self.client().await?;
        accounts::devices_of(&client, account_key)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn publish_prekeys(&self, device: DeviceId, prekeys: Prekeys) -> Result<(), StoreError> {
        self.check_open()?;
        transaction!(self, |tx| prekeys::publish(&tx, &device, &prekeys).await?)
    }

    async fn take_bundle_material(&self, device: DeviceId) -> Result<BundleMaterial, StoreError> {
        self.check_open()?;
        transaction!(self, |tx| prekeys::take(&tx, &device).await?)
    }

    async fn prekey_counts(&self, device: DeviceId) -> Result<PrekeyCounts, StoreError> {
        let client = self.client().await?;
        prekeys::counts(&client, &device)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn enqueue(&self, send: Enqueue) -> Result<Receipt, StoreError> {
        self.check_open()?;
        if send.recipients.is_empty() {
            return Ok(Receipt {
                deliveries: Vec::new(),
                duplicate: false,
            });
        }
        transaction!(self, |tx| mailbox::enqueue(&tx, &send, &self.node).await?)
    }

    async fn list(
        &self,
        device: DeviceId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let client = self.client().await?;
        mailbox::list(&client, &device, after, limit)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn ack(&self, device: DeviceId, ids: &[DeliveryId]) -> Result<u64, StoreError> {
        self.check_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        transaction!(self, |tx| mailbox::ack(&tx, &device, ids).await?)
    }

    async fn expire(&self, now: u64) -> Result<ExpireCounts, StoreError> {
        self.check_open()?;
        let mut counts = ExpireCounts::default();
        loop {
            let (entries, bodies) =
                transaction!(self, |tx| stats::expire_entries(&tx, now).await?)?;
            if entries == 0 {
                break;
            }
            stats::add(&mut counts, entries, bodies);
        }
        counts.idempotency_keys = self.expire_keys(Expiring::Idempotency, now).await?;
        counts.invites = self.expire_keys(Expiring::Invites, now).await?;
        Ok(counts)
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let client = self.client().await?;
        stats::queue_stats(&client)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn create_invite(
        &self,
        token: InviteTokenHash,
        uses: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let client = self.client().await?;
        accounts::create_invite(&client, &token, uses, expires_at)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let client = self.client().await?;
        stats::stats(&client)
            .await
            .map_err(super::Failure::into_store)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write returned after its COMMIT: nothing is pending.
        self.check_open()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.shut_down().await;
        Ok(())
    }

    fn take_wakeups(&self) -> Option<mpsc::Receiver<Wakeup>> {
        self.take_receiver()
    }
}

impl PostgresStore {
    /// Deletes expired idempotency records or invites, a batch per statement (autocommit).
    async fn expire_keys(&self, table: Expiring, now: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let mut total = 0u64;
        loop {
            let deleted = stats::expire_keys(&client, table, now)
                .await
                .map_err(super::Failure::into_store)?;
            if deleted == 0 {
                return Ok(total);
            }
            total = total.saturating_add(deleted);
        }
    }
}
