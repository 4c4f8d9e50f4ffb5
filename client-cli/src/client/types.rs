//! The client's public value types: what callers pass in and get back.

use kith_protocol::SafetyNumber;
use kith_protocol::wire::Handle;

use crate::relay::{RelayUrl, Trust};
use crate::store::KdfParams;

/// What `kith init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The relay's address.
    pub relay: RelayUrl,
    /// How to trust its certificate.
    pub trust: Trust,
    /// The handle to register.
    pub handle: Handle,
    /// The invite token, when the relay needs one.
    pub invite: Option<String>,
    /// Argon2id parameters for the local store.
    pub kdf: KdfParams,
}

/// A message sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message id (hex).
    pub id: String,
    /// The recipient.
    pub to: Handle,
    /// Envelopes stored by the relay (recipient devices plus this account's other devices).
    pub envelopes: usize,
    /// When it was sent (seconds since the Unix epoch).
    pub sent_at: u64,
}

/// A message in a conversation: received, or sent from this or another device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's message id (hex, 32 characters).
    pub id: String,
    /// The other party of the one-on-one conversation.
    pub conversation: Handle,
    /// Who wrote it (this account's handle for outgoing messages).
    pub from: Handle,
    /// Whether this account wrote it.
    pub outgoing: bool,
    /// The text.
    pub text: String,
    /// When the sender sent it (sender's clock, seconds since the Unix epoch).
    pub sent_at: u64,
    /// When this device stored it (seconds since the Unix epoch).
    pub received_at: u64,
    /// The group circle, `None` for one-on-one messages.
    pub group: Option<String>,
}

/// Something that happened while receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message was decrypted and stored.
    Message(Message),
    /// A contact's account key changed; their messages are still shown, sending is refused
    /// until the user confirms the new safety number.
    KeyChanged {
        /// The contact.
        handle: Handle,
    },
    /// An envelope could not be used and was dropped (acknowledged so it is not redelivered).
    Dropped {
        /// Why, for the user.
        reason: String,
    },
    /// A message arrived whose counters show that earlier messages from the same sender were
    /// sent but have not arrived: the relay lost or withheld them, or they are still on their
    /// way. Reported once, when the gap shows; a late message is simply shown when it comes.
    Gap {
        /// Who sent the missing messages (this account's handle for its other devices).
        handle: Handle,
        /// How many are missing.
        missing: usize,
    },
    /// Everything queued while this device was offline has been received.
    QueueDrained,
    /// A circle this device belongs to changed (created, members added or removed, renamed),
    /// or this device was added to one.
    GroupChanged {
        /// The circle's name.
        group: String,
        /// What happened, for the user.
        description: String,
    },
    /// New one-time prekeys were published because the relay ran low.
    PrekeysPublished {
        /// How many of each kind.
        count: usize,
    },
}

/// A contact as shown by `kith contacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The handle.
    pub handle: Handle,
    /// Whether the user confirmed the safety number.
    pub verified: bool,
    /// Whether the account key changed and is waiting for confirmation.
    pub key_changed: bool,
    /// Their devices known to this device.
    pub devices: usize,
    /// When the last message in the conversation was stored, if any.
    pub last_message_at: Option<u64>,
}

/// A contact's safety number, for `kith verify`.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The contact.
    pub handle: Handle,
    /// The safety number over this account's key and the contact's (current) key.
    pub safety_number: SafetyNumber,
    /// Whether the user already confirmed it.
    pub verified: bool,
    /// Whether the contact's key changed and this number is the new one.
    pub key_changed: bool,
}

/// A circle (group), as `kith group list` and `kith group members` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group id (hex, 32 characters).
    pub id: String,
    /// The name.
    pub name: String,
    /// The current epoch (every membership change starts a new one).
    pub epoch: u64,
    /// The members, this account included.
    pub members: Vec<GroupMember>,
    /// Whether this account is an admin (may add and remove members).
    pub admin: bool,
    /// When the last message of the circle was stored, if any.
    pub last_message_at: Option<u64>,
}

/// A member of a circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's handle.
    pub handle: Handle,
    /// Whether the member is an admin.
    pub admin: bool,
    /// Whether this is this account.
    pub you: bool,
}

/// A message sent to a circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSent {
    /// The message id (hex).
    pub id: String,
    /// The circle's name.
    pub group: String,
    /// Recipient devices (members' devices and this account's other devices).
    pub envelopes: usize,
    /// Size of the one body uploaded for all of them, in bytes.
    pub body_len: usize,
    /// Devices that received this device's sender key first (over 1:1 sessions).
    pub keys_distributed: usize,
    /// Members skipped because their account key no longer matches the circle's.
    pub skipped: Vec<Handle>,
}
