//! Mailboxes: enqueue, list, ack.
//!
//! Enqueues and acks are applied in batches, one sled transaction over seven trees per batch
//! (see `combiner.rs` for why). Within it each op stands alone: an enqueue checks the
//! idempotency key, every recipient's existence and quota, and only then writes the body once
//! (with its reference count), an entry and an expiry index key per recipient, and the
//! idempotency record. A failed check writes nothing for that send — a full mailbox stores
//! nothing for anyone — and does not affect the other ops of the batch.

use ::sled::Transactional;
use ::sled::transaction::{ConflictableTransactionResult, TransactionalTree};
use kith_protocol::DeviceId;

use super::codec::{
    BodyRefValue, EntryValue, Expiring, IdempotencyValue, MailboxValue, body_key, decode, encode,
    entry_key, expiry_key, parse_entry_key,
};
use super::{Trees, abort, backend, tx_error};
use crate::store::{DeliveryId, Enqueue, Envelope, Receipt, StoreError};

/// The trees an entry's removal touches, inside a transaction.
pub(super) struct EntryViews<'a> {
    pub(super) mailboxes: &'a TransactionalTree,
    pub(super) entries: &'a TransactionalTree,
    pub(super) bodies: &'a TransactionalTree,
    pub(super) body_refs: &'a TransactionalTree,
    pub(super) expiry: &'a TransactionalTree,
}

/// What removing one entry removed.
pub(super) struct Removed {
    /// Whether the body went too (no entry refers to it any more).
    pub(super) body: bool,
}

/// One mailbox write of a combined batch ([`Trees::apply_mailbox_ops`]).
pub(super) enum MailboxOp<'a> {
    /// Store a send; its body gets id `body_id`.
    Enqueue {
        /// The send.
        send: &'a Enqueue,
        /// A fresh body id (taken outside the transaction, which may run more than once).
        body_id: u64,
    },
    /// Delete these entries of the device's mailbox.
    Ack {
        /// Whose mailbox.
        device: &'a DeviceId,
        /// Which entries.
        ids: &'a [DeliveryId],
    },
}

/// What one [`MailboxOp`] did.
#[derive(Debug)]
pub(super) enum MailboxOutcome {
    /// The send's receipt (`duplicate` for a repeated idempotency key).
    Enqueued(Receipt),
    /// How many entries an ack deleted.
    Acked(u64),
}

/// How far every mailbox's next delivery id jumps when the store opens
/// ([`Trees::skip_undurable_delivery_ids`]): far more ids than one mailbox can be given between
/// two flushes, and small enough that ids (u64; i64 in PostgreSQL after a migration) never run
/// out however often the relay restarts (2^39 restarts).
pub(super) const DELIVERY_ID_GAP: u64 = 1 << 24;

impl Trees {
    /// Moves every mailbox's next delivery id [`DELIVERY_ID_GAP`] ahead, durably, before the
    /// store serves anyone.
    ///
    /// An applied write is visible before the group commit has flushed it, so a device may be
    /// pushed an entry that a power cut then takes away, counter included. Without the jump,
    /// the next send to that device would get the same delivery id again, and the device's ack
    /// of the lost entry would delete the new, unseen one. After the jump no id handed out
    /// before the restart is ever reused.
    pub(super) fn skip_undurable_delivery_ids(&self) -> Result<(), StoreError> {
        for item in self.mailboxes.iter() {
            let (key, bytes) = item.map_err(backend)?;
            let mut mailbox: MailboxValue = decode(&bytes, "mailbox")?;
            mailbox.next_delivery = mailbox.next_delivery.max(1).saturating_add(DELIVERY_ID_GAP);
            self.mailboxes
                .insert(key, encode(&mailbox)?)
                .map_err(backend)?;
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    /// Applies `ops` in order in ONE sled transaction, each op all-or-nothing on its own: an op
    /// that fails its checks (unknown device, full mailbox) writes nothing and gets its error,
    /// while the others go ahead. Later ops see the writes of earlier ones (a repeated
    /// idempotency key in one batch is a duplicate). `Err` only when the whole transaction
    /// failed (storage error, corrupt record): then nothing was written.
    pub(super) fn apply_mailbox_ops(
        &self,
        ops: &[MailboxOp<'_>],
    ) -> Result<Vec<Result<MailboxOutcome, StoreError>>, StoreError> {
        (
            &self.idempotency,
            &self.devices,
            &self.mailboxes,
            &self.entries,
            &self.bodies,
            &self.body_refs,
            &self.expiry,
        )
            .transaction(
                |(idempotency, devices, mailboxes, entries, bodies, body_refs, expiry)| {
                    let views = BatchViews {
                        idempotency,
                        devices,
                        entry: EntryViews {
                            mailboxes,
                            entries,
                            bodies,
                            body_refs,
                            expiry,
                        },
                    };
                    let mut outcomes = Vec::with_capacity(ops.len());
                    for op in ops {
                        let outcome = match op {
                            MailboxOp::Enqueue { send, body_id } => {
                                enqueue_one(&views, send, *body_id)?.map(MailboxOutcome::Enqueued)
                            }
                            MailboxOp::Ack { device, ids } => {
                                let mut removed = 0u64;
                                for id in *ids {
                                    if remove_entry(&views.entry, device, *id)?.is_some() {
                                        removed += 1;
                                    }
                                }
                                Ok(MailboxOutcome::Acked(removed))
                            }
                        };
                        outcomes.push(outcome);
                    }
                    Ok(outcomes)
                },
            )
            .map_err(tx_error)
    }

    /// Up to `limit` entries after `after`, in delivery-id order, with their bodies.
    pub(super) fn list(
        &self,
        device: &DeviceId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let Some(first) = after.map_or(Some(1), |a| a.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let range = entry_key(device, first)..=entry_key(device, u64::MAX);
        let mut out = Vec::new();
        for item in self.entries.range(range).take(limit) {
            let (key, bytes) = item.map_err(backend)?;
            let (_, delivery_id) = parse_entry_key(&key).ok_or(StoreError::Corrupt("entry key"))?;
            let entry: EntryValue = decode(&bytes, "mailbox entry")?;
            match self.bodies.get(body_key(entry.body)).map_err(backend)? {
                Some(body) => out.push(Envelope {
                    delivery_id,
                    arrived_at: entry.arrived_at,
                    expires_at: entry.expires_at,
                    body: body.to_vec(),
                    part: entry.part,
                }),
                // Acked or expired between the two reads: skip it. Still there: corrupt.
                None if self.entries.contains_key(&key).map_err(backend)? => {
                    return Err(StoreError::Corrupt("mailbox entry without body"));
                }
                None => {}
            }
        }
        Ok(out)
    }
}

/// Every tree a batch of mailbox writes touches, inside its transaction.
struct BatchViews<'a> {
    idempotency: &'a TransactionalTree,
    devices: &'a TransactionalTree,
    entry: EntryViews<'a>,
}

/// Stores one send inside a batch: the inner `Err` is this send's own failure (it wrote
/// nothing), the outer one fails the whole transaction.
fn enqueue_one(
    views: &BatchViews<'_>,
    send: &Enqueue,
    body_id: u64,
) -> ConflictableTransactionResult<Result<Receipt, StoreError>, StoreError> {
    if send.recipients.is_empty() {
        return Ok(Ok(Receipt {
            deliveries: Vec::new(),
            duplicate: false,
        }));
    }
    let key = &send.idempotency_key.0;
    if let Some(bytes) = views.idempotency.get(key)? {
        let seen: IdempotencyValue = decode(&bytes, "idempotency").map_err(abort)?;
        return Ok(Ok(Receipt {
            deliveries: seen.deliveries,
            duplicate: true,
        }));
    }
    // Check everything before writing anything, so a failed send leaves no trace.
    let mut charged: Vec<(&DeviceId, MailboxValue, DeliveryId)> =
        Vec::with_capacity(send.recipients.len());
    for recipient in &send.recipients {
        let device = &recipient.device;
        if views.devices.get(device.as_bytes())?.is_none() {
            return Ok(Err(StoreError::DeviceNotFound));
        }
        let current = match charged.iter().rev().find(|(d, _, _)| *d == device) {
            Some((_, mailbox, _)) => mailbox.clone(),
            None => match views.entry.mailboxes.get(device.as_bytes())? {
                Some(bytes) => decode(&bytes, "mailbox").map_err(abort)?,
                None => MailboxValue::default(),
            },
        };
        match charge(current, send, recipient.part.as_deref()) {
            Ok((mailbox, id)) => charged.push((device, mailbox, id)),
            Err(e) => return Ok(Err(e)),
        }
    }
    let mut deliveries = Vec::with_capacity(charged.len());
    for ((device, mailbox, id), recipient) in charged.iter().zip(&send.recipients) {
        let entry = EntryValue {
            body: body_id,
            part: recipient.part.clone(),
            arrived_at: send.arrived_at,
            expires_at: send.expires_at,
        };
        views
            .entry
            .mailboxes
            .insert(&device.as_bytes()[..], encode(mailbox).map_err(abort)?)?;
        views
            .entry
            .entries
            .insert(&entry_key(device, *id)[..], encode(&entry).map_err(abort)?)?;
        let index = expiry_key(send.expires_at, Expiring::Entry(**device, *id));
        views.entry.expiry.insert(index, &[][..])?;
        deliveries.push(*id);
    }
    let body_ref = encode(&BodyRefValue {
        refs: len_u64(send.recipients.len()),
        len: len_u64(send.body.len()),
    })
    .map_err(abort)?;
    views
        .entry
        .bodies
        .insert(&body_key(body_id)[..], &send.body[..])?;
    views
        .entry
        .body_refs
        .insert(&body_key(body_id)[..], &body_ref[..])?;
    let record = IdempotencyValue {
        deliveries: deliveries.clone(),
        expires_at: send.idempotent_until,
    };
    views
        .idempotency
        .insert(&key[..], encode(&record).map_err(abort)?)?;
    views.entry.expiry.insert(
        expiry_key(send.idempotent_until, Expiring::Idempotency(*key)),
        &[][..],
    )?;
    Ok(Ok(Receipt {
        deliveries,
        duplicate: false,
    }))
}

/// Charges one entry to a mailbox and assigns its delivery id, or
/// [`StoreError::MailboxFull`].
fn charge(
    mut mailbox: MailboxValue,
    send: &Enqueue,
    part: Option<&[u8]>,
) -> Result<(MailboxValue, DeliveryId), StoreError> {
    let part_len = len_u64(part.map_or(0, <[u8]>::len));
    let cost = len_u64(send.body.len()).saturating_add(part_len);
    let entries = mailbox.entries.saturating_add(1);
    let bytes = mailbox.charged_bytes.saturating_add(cost);
    if entries > send.limits.max_entries || bytes > send.limits.max_bytes {
        return Err(StoreError::MailboxFull);
    }
    let id = mailbox.next_delivery.max(1);
    mailbox.next_delivery = id.saturating_add(1);
    mailbox.entries = entries;
    mailbox.charged_bytes = bytes;
    mailbox.part_bytes = mailbox.part_bytes.saturating_add(part_len);
    Ok((mailbox, id))
}

/// Removes one entry, its expiry key, its share of the mailbox counters and, with the last
/// reference, its body. `None` when there is no such entry.
pub(super) fn remove_entry(
    views: &EntryViews<'_>,
    device: &DeviceId,
    id: DeliveryId,
) -> ConflictableTransactionResult<Option<Removed>, StoreError> {
    let Some(bytes) = views.entries.remove(&entry_key(device, id)[..])? else {
        return Ok(None);
    };
    let entry: EntryValue = decode(&bytes, "mailbox entry").map_err(abort)?;
    views
        .expiry
        .remove(expiry_key(entry.expires_at, Expiring::Entry(*device, id)))?;
    let released = release_body(views, entry.body)?;
    let part_len = len_u64(entry.part.as_ref().map_or(0, Vec::len));
    if let Some(bytes) = views.mailboxes.get(device.as_bytes())? {
        let mut mailbox: MailboxValue = decode(&bytes, "mailbox").map_err(abort)?;
        mailbox.entries = mailbox.entries.saturating_sub(1);
        let cost = released.len.saturating_add(part_len);
        mailbox.charged_bytes = mailbox.charged_bytes.saturating_sub(cost);
        mailbox.part_bytes = mailbox.part_bytes.saturating_sub(part_len);
        let encoded = encode(&mailbox).map_err(abort)?;
        views.mailboxes.insert(&device.as_bytes()[..], encoded)?;
    }
    Ok(Some(Removed {
        body: released.gone,
    }))
}

/// What dropping a reference to a body did.
struct Released {
    /// The body's length.
    len: u64,
    /// Whether that was the last reference and the body is deleted.
    gone: bool,
}

/// Drops one reference to a body; deletes it with the last.
fn release_body(
    views: &EntryViews<'_>,
    body: u64,
) -> ConflictableTransactionResult<Released, StoreError> {
    let key = body_key(body);
    let Some(bytes) = views.body_refs.get(key)? else {
        return Err(abort(StoreError::Corrupt("mailbox entry without body")));
    };
    let mut body_ref: BodyRefValue = decode(&bytes, "body reference").map_err(abort)?;
    body_ref.refs = body_ref.refs.saturating_sub(1);
    let gone = body_ref.refs == 0;
    if gone {
        views.body_refs.remove(&key[..])?;
        views.bodies.remove(&key[..])?;
    } else {
        views
            .body_refs
            .insert(&key[..], encode(&body_ref).map_err(abort)?)?;
    }
    Ok(Released {
        len: body_ref.len,
        gone,
    })
}

/// A length as u64 (lossless on every supported target; saturates otherwise).
pub(super) fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
