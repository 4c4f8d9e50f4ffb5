//! Mailboxes: enqueue, list, ack.
//!
//! An enqueue is one transaction over seven trees: it checks the idempotency key, every
//! recipient's existence and quota, then writes the body once (with its reference count), an
//! entry and an expiry index key per recipient, and the idempotency record. Any failed check
//! aborts the whole transaction, so a full mailbox stores nothing for anyone.

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

impl Trees {
    /// Stores a send (or finds it stored already) and returns its receipt.
    pub(super) fn enqueue(&self, send: &Enqueue) -> Result<Receipt, StoreError> {
        if send.recipients.is_empty() {
            return Ok(Receipt {
                deliveries: Vec::new(),
                duplicate: false,
            });
        }
        let body_id = self.db.generate_id().map_err(backend)?;
        let body_ref = encode(&BodyRefValue {
            refs: len_u64(send.recipients.len()),
            len: len_u64(send.body.len()),
        })?;
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
                |(idempotency, devices, mailboxes, entries, bodies, refs, expiry)| {
                    let key = &send.idempotency_key.0;
                    if let Some(bytes) = idempotency.get(key)? {
                        let seen: IdempotencyValue =
                            decode(&bytes, "idempotency").map_err(abort)?;
                        return Ok(Receipt {
                            deliveries: seen.deliveries,
                            duplicate: true,
                        });
                    }
                    let recipients = RecipientViews {
                        devices,
                        mailboxes,
                        entries,
                        expiry,
                    };
                    let deliveries = append_entries(&recipients, send, body_id)?;
                    bodies.insert(&body_key(body_id)[..], &send.body[..])?;
                    refs.insert(&body_key(body_id)[..], &body_ref[..])?;
                    let record = IdempotencyValue {
                        deliveries: deliveries.clone(),
                        expires_at: send.idempotent_until,
                    };
                    idempotency.insert(&key[..], encode(&record).map_err(abort)?)?;
                    expiry.insert(
                        expiry_key(send.idempotent_until, Expiring::Idempotency(*key)),
                        &[][..],
                    )?;
                    Ok(Receipt {
                        deliveries,
                        duplicate: false,
                    })
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

    /// Deletes the device's entries with these ids; returns how many existed.
    pub(super) fn ack(&self, device: &DeviceId, ids: &[DeliveryId]) -> Result<u64, StoreError> {
        (
            &self.mailboxes,
            &self.entries,
            &self.bodies,
            &self.body_refs,
            &self.expiry,
        )
            .transaction(|(mailboxes, entries, bodies, body_refs, expiry)| {
                let views = EntryViews {
                    mailboxes,
                    entries,
                    bodies,
                    body_refs,
                    expiry,
                };
                let mut removed = 0u64;
                for id in ids {
                    if remove_entry(&views, device, *id)?.is_some() {
                        removed += 1;
                    }
                }
                Ok(removed)
            })
            .map_err(tx_error)
    }
}

/// The trees the per-recipient part of an enqueue writes, inside its transaction.
struct RecipientViews<'a> {
    devices: &'a TransactionalTree,
    mailboxes: &'a TransactionalTree,
    entries: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
}

/// Appends an entry (pointing at `body_id`) to every recipient's mailbox: checks the device
/// exists, charges its quota, writes the entry and its expiry key. Returns the delivery ids.
fn append_entries(
    views: &RecipientViews<'_>,
    send: &Enqueue,
    body_id: u64,
) -> ConflictableTransactionResult<Vec<DeliveryId>, StoreError> {
    let mut deliveries = Vec::with_capacity(send.recipients.len());
    for recipient in &send.recipients {
        let device = &recipient.device;
        if views.devices.get(device.as_bytes())?.is_none() {
            return Err(abort(StoreError::DeviceNotFound));
        }
        let id = charge(views.mailboxes, device, send, recipient.part.as_deref())?;
        let entry = EntryValue {
            body: body_id,
            part: recipient.part.clone(),
            arrived_at: send.arrived_at,
            expires_at: send.expires_at,
        };
        let entry = encode(&entry).map_err(abort)?;
        views.entries.insert(&entry_key(device, id)[..], entry)?;
        let index = expiry_key(send.expires_at, Expiring::Entry(*device, id));
        views.expiry.insert(index, &[][..])?;
        deliveries.push(id);
    }
    Ok(deliveries)
}

/// Charges one entry to a device's mailbox and assigns its delivery id, or aborts with
/// [`StoreError::MailboxFull`].
fn charge(
    mailboxes: &TransactionalTree,
    device: &DeviceId,
    send: &Enqueue,
    part: Option<&[u8]>,
) -> ConflictableTransactionResult<DeliveryId, StoreError> {
    let mut mailbox: MailboxValue = match mailboxes.get(device.as_bytes())? {
        Some(bytes) => decode(&bytes, "mailbox").map_err(abort)?,
        None => MailboxValue::default(),
    };
    let part_len = len_u64(part.map_or(0, <[u8]>::len));
    let cost = len_u64(send.body.len()).saturating_add(part_len);
    let entries = mailbox.entries.saturating_add(1);
    let bytes = mailbox.charged_bytes.saturating_add(cost);
    if entries > send.limits.max_entries || bytes > send.limits.max_bytes {
        return Err(abort(StoreError::MailboxFull));
    }
    let id = mailbox.next_delivery.max(1);
    mailbox.next_delivery = id.saturating_add(1);
    mailbox.entries = entries;
    mailbox.charged_bytes = bytes;
    mailbox.part_bytes = mailbox.part_bytes.saturating_add(part_len);
    mailboxes.insert(&device.as_bytes()[..], encode(&mailbox).map_err(abort)?)?;
    Ok(id)
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
