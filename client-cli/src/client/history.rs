//! The message history of each conversation, in the order this device stored the messages.

use kith_protocol::AccountPublicKey;
use kith_protocol::wire::Handle;

use super::Message;
use super::records::{self, ContactRecord, HistoryRecord};
use crate::store::{Batch, LocalStore, StoreError, Table};

/// Where a conversation's messages are numbered: its store group, the next sequence number
/// and the time of its last message (kept in the contact's or the circle's record, which the
/// caller saves in the same batch).
pub(super) struct Conversation<'a> {
    /// The history group: a handle, or `group:` and a group id (handles have no ':').
    pub(super) key: Vec<u8>,
    /// The next sequence number.
    pub(super) next_seq: &'a mut u64,
    /// When the last message was stored.
    pub(super) last_message_at: &'a mut Option<u64>,
}

impl<'a> Conversation<'a> {
    /// The one-on-one conversation with `contact`.
    pub(super) fn with_contact(contact: &'a mut ContactRecord) -> Self {
        Self {
            key: contact.handle.as_bytes().to_vec(),
            next_seq: &mut contact.next_seq,
            last_message_at: &mut contact.last_message_at,
        }
    }
}

/// The history group of a circle.
pub(super) fn group_key(group_id: &[u8; 16]) -> Vec<u8> {
    [b"group:".as_slice(), group_id].concat()
}

/// Adds `record` to `conversation` in `batch`, advancing its sequence number.
pub(super) fn append(
    batch: &mut Batch,
    conversation: Conversation<'_>,
    record: &HistoryRecord,
) -> Result<(), StoreError> {
    let seq = *conversation.next_seq;
    *conversation.next_seq = seq.saturating_add(1);
    *conversation.last_message_at = Some(record.received_at);
    batch.put(
        Table::History,
        &conversation.key,
        &seq.to_be_bytes(),
        &records::encode(record)?,
    );
    Ok(())
}

/// Where the ids of accepted messages are remembered: the account that wrote them and the
/// conversation (SPEC.md §13.3 rule 4), with the message id as the item.
fn accepted_group(conversation: &Handle, author: &AccountPublicKey) -> Vec<u8> {
    [
        author.as_bytes().as_slice(),
        conversation.as_str().as_bytes(),
    ]
    .concat()
}

/// Whether a message with `id` from `author` was already accepted in `conversation`: a
/// re-encrypted copy (the ratchet only catches a replay of the same ciphertext), which must not
/// be shown twice. Keyed by the author too, so a peer who learnt the id of the user's message
/// cannot reuse it to suppress the user's own copy on another device.
pub(super) fn already_accepted(
    store: &LocalStore,
    conversation: &Handle,
    author: &AccountPublicKey,
    id: &[u8; 16],
) -> Result<bool, StoreError> {
    Ok(store
        .get(
            Table::SeenMessages,
            &accepted_group(conversation, author),
            id,
        )?
        .is_some())
}

/// Records in `batch` that the message `id` from `author` was accepted in `conversation`.
pub(super) fn remember_accepted(
    batch: &mut Batch,
    conversation: &Handle,
    author: &AccountPublicKey,
    id: &[u8; 16],
) {
    batch.put(
        Table::SeenMessages,
        &accepted_group(conversation, author),
        id,
        &[1],
    );
}

/// The last `limit` records of the conversation stored under `key` (all when `None`), oldest
/// first.
pub(super) fn records(
    store: &LocalStore,
    key: &[u8],
    limit: Option<usize>,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let entries = match limit {
        Some(limit) => store.scan_group_last(Table::History, key, limit)?,
        None => store.scan_group(Table::History, key)?,
    };
    entries
        .iter()
        .map(|(_, bytes)| records::decode(bytes))
        .collect()
}

/// The last `limit` messages with `with` (all when `None`), oldest first.
pub(super) fn list(
    store: &LocalStore,
    with: &Handle,
    limit: Option<usize>,
) -> Result<Vec<Message>, StoreError> {
    Ok(records(store, with.as_str().as_bytes(), limit)?
        .iter()
        .map(|record| message(with, record))
        .collect())
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
