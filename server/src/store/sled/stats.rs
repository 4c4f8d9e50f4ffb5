//! Expiry and totals.

use ::sled::Transactional;
use ::sled::transaction::TransactionalTree;

use super::codec::{BodyRefValue, Expiring, MailboxValue, decode, expiry_bound, parse_expiry_key};
use super::mailbox::{EntryViews, len_u64, remove_entry};
use super::{Trees, backend, tx_error};
use crate::store::{ExpireCounts, QueueStats, StoreError, StoreStats};

/// Expiry keys handled per transaction, so one transaction stays small.
const EXPIRE_BATCH: usize = 256;

impl Trees {
    /// Deletes everything whose expiry is `<= now`, a batch per transaction.
    pub(super) fn expire(&self, now: u64) -> Result<ExpireCounts, StoreError> {
        let mut counts = ExpireCounts::default();
        loop {
            let batch = self
                .expiry
                .range(..expiry_bound(now))
                .keys()
                .take(EXPIRE_BATCH)
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            if batch.is_empty() {
                return Ok(counts);
            }
            let done = self.expire_batch(&batch)?;
            counts.entries += done.entries;
            counts.bodies += done.bodies;
            counts.idempotency_keys += done.idempotency_keys;
            counts.invites += done.invites;
        }
    }

    fn expire_batch(&self, batch: &[::sled::IVec]) -> Result<ExpireCounts, StoreError> {
        let kinds = batch
            .iter()
            .map(|key| parse_expiry_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        (
            &self.mailboxes,
            &self.entries,
            &self.bodies,
            &self.body_refs,
            &self.expiry,
            &self.idempotency,
            &self.invites,
        )
            .transaction(
                |(mailboxes, entries, bodies, body_refs, expiry, idempotency, invites)| {
                    let views = EntryViews {
                        mailboxes,
                        entries,
                        bodies,
                        body_refs,
                        expiry,
                    };
                    let mut counts = ExpireCounts::default();
                    for (key, kind) in batch.iter().zip(&kinds) {
                        expiry.remove(key)?;
                        match kind {
                            Expiring::Entry(device, id) => {
                                if let Some(removed) = remove_entry(&views, device, *id)? {
                                    counts.entries += 1;
                                    counts.bodies += u64::from(removed.body);
                                }
                            }
                            Expiring::Idempotency(hash) => {
                                counts.idempotency_keys += removed_count(idempotency, hash)?;
                            }
                            Expiring::Invite(hash) => {
                                counts.invites += removed_count(invites, hash)?;
                            }
                        }
                    }
                    Ok(counts)
                },
            )
            .map_err(tx_error)
    }

    /// Queue totals: one pass over `mailboxes` (entries, part bytes) and `body_refs` (bodies).
    pub(super) fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut stats = QueueStats::default();
        for item in self.mailboxes.iter().values() {
            let mailbox: MailboxValue = decode(&item.map_err(backend)?, "mailbox")?;
            stats.entries = stats.entries.saturating_add(mailbox.entries);
            stats.bytes = stats.bytes.saturating_add(mailbox.part_bytes);
        }
        for item in self.body_refs.iter().values() {
            let body: BodyRefValue = decode(&item.map_err(backend)?, "body reference")?;
            stats.bodies = stats.bodies.saturating_add(1);
            stats.bytes = stats.bytes.saturating_add(body.len);
        }
        Ok(stats)
    }

    /// Totals for `kith-relay stats`.
    pub(super) fn stats(&self) -> Result<StoreStats, StoreError> {
        let queue = self.queue_stats()?;
        Ok(StoreStats {
            accounts: len_u64(self.accounts.len()),
            devices: len_u64(self.devices.len()),
            queued_envelopes: queue.entries,
            queued_bytes: queue.bytes,
        })
    }
}

/// Removes a key; 1 if it was there.
fn removed_count(
    tree: &TransactionalTree,
    key: &[u8; 32],
) -> Result<u64, ::sled::transaction::UnabortableTransactionError> {
    Ok(u64::from(tree.remove(&key[..])?.is_some()))
}
