//! The message history of each conversation, in the order this device stored the messages.

use kith_protocol::wire::Handle;

use super::Message;
use super::records::{self, ContactRecord, HistoryRecord};
use crate::store::{Batch, LocalStore, StoreError, Table};

/// Adds `record` to the conversation with `contact` in `batch`, advancing the contact's
/// sequence number (the caller saves the contact in the same batch).
pub(super) fn append(
    batch: &mut Batch,
    contact: &mut ContactRecord,
    record: &HistoryRecord,
) -> Result<(), StoreError> {
    let seq = contact.next_seq;
    contact.next_seq = seq.saturating_add(1);
    contact.last_message_at = Some(record.received_at);
    batch.put(
        Table::History,
        contact.handle.as_bytes(),
        &seq.to_be_bytes(),
        &records::encode(record)?,
    );
    Ok(())
}

/// The last `limit` messages with `with` (all when `None`), oldest first.
pub(super) fn list(
    store: &LocalStore,
    with: &Handle,
    limit: Option<usize>,
) -> Result<Vec<Message>, StoreError> {
    let group = with.as_str().as_bytes();
    let entries = match limit {
        Some(limit) => store.scan_group_last(Table::History, group, limit)?,
        None => store.scan_group(Table::History, group)?,
    };
    entries
        .iter()
        .map(|(_, bytes)| {
            let record: HistoryRecord = records::decode(bytes)?;
            Ok(message(with, &record))
        })
        .collect()
}

/// The public form of a history record of the conversation with `conversation`.
pub(super) fn message(conversation: &Handle, record: &HistoryRecord) -> Message {
    Message {
        id: hex::encode(record.id),
        conversation: conversation.clone(),
        from: Handle::parse(&record.from).unwrap_or_else(|_| conversation.clone()),
        outgoing: record.outgoing,
        text: record.text.clone(),
        sent_at: record.sent_at,
        received_at: record.received_at,
        group: None,
    }
}
