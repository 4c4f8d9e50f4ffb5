//! The records the [`Store`](super::Store) trait takes and returns.
//!
//! These are engine-neutral: plain data, no engine types. Times are Unix seconds passed in by the
//! caller; the store has no clock of its own.

use kith_protocol::{
    AccountPublicKey, DeviceCertificate, DeviceId, KemPrekey, OneTimePrekey, SignedPrekey,
    VerifiedCertificate,
};
use sha2::{Digest, Sha256};

/// A mailbox entry's id: assigned by the store, increasing per device and never reused, so a
/// device's queue in id order is its arrival order. Starts at 1; not contiguous (the sled
/// engine skips ahead at every start). Same meaning as the wire's delivery id.
pub type DeliveryId = u64;

/// An account as stored: handle, account key and the ids of its devices in the order added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's public key.
    pub account_key: AccountPublicKey,
    /// The normalised handle (the caller normalises and validates it).
    pub handle: String,
    /// The account's devices, in the order they were added.
    pub devices: Vec<DeviceId>,
    /// When the account was created.
    pub created_at: u64,
}

/// A device as stored: its account and its certificate (verified before it was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The account the device belongs to.
    pub account_key: AccountPublicKey,
    /// The certificate the account key signed for the device.
    pub certificate: DeviceCertificate,
    /// When the device was added.
    pub added_at: u64,
}

/// What [`Store::create_account`](super::Store::create_account) needs.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The normalised handle; must be free.
    pub handle: String,
    /// The first device's verified certificate; its account key becomes the account's key.
    pub certificate: VerifiedCertificate,
    /// The invite to use up, or `None` when registration is open.
    pub invite: Option<InviteTokenHash>,
    /// Now: the creation time, and the time against which the invite's expiry is checked.
    pub now: u64,
}

/// SHA-256 of an invite token. The store keeps only this, never the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InviteTokenHash(pub [u8; 32]);

impl InviteTokenHash {
    /// Hashes a token: `SHA-256("kith-relay invite v1" || token)`. Tokens are long random
    /// strings, so a plain hash is enough: the stored hash lets no one register.
    pub fn of(token: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"kith-relay invite v1");
        h.update(token);
        Self(h.finalize().into())
    }
}

/// Prekeys a device publishes. The caller has checked every signature against the device's
/// signing key and that each KEM prekey's kind matches the field it is in.
#[derive(Debug, Clone, Default)]
pub struct Prekeys {
    /// Replaces the signed X25519 prekey.
    pub signed: Option<SignedPrekey>,
    /// Replaces the last-resort ML-KEM prekey.
    pub last_resort_kem: Option<KemPrekey>,
    /// One-time X25519 prekeys to add; an id already stored is an error.
    pub one_time: Vec<OneTimePrekey>,
    /// One-time ML-KEM prekeys to add; an id already stored is an error.
    pub one_time_kem: Vec<KemPrekey>,
}

/// What a bundle fetch takes from a device's prekeys: the one-time keys are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleMaterial {
    /// The device's current signed prekey.
    pub signed: SignedPrekey,
    /// A one-time X25519 prekey, handed to this caller only; `None` when none is left.
    pub one_time: Option<OneTimePrekey>,
    /// A one-time ML-KEM prekey handed to this caller only, or the last-resort one when none
    /// is left (see [`KemPrekey::kind`]).
    pub kem: KemPrekey,
}

/// How many prekeys a device has stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrekeyCounts {
    /// Whether a signed prekey is stored.
    pub signed: bool,
    /// Whether a last-resort KEM prekey is stored.
    pub last_resort_kem: bool,
    /// One-time X25519 prekeys left.
    pub one_time: u32,
    /// One-time ML-KEM prekeys left.
    pub one_time_kem: u32,
}

/// The idempotency key of a send: how the store recognises a retried send without keeping
/// who sent it. The store treats it as 32 opaque bytes; the relay chooses how to derive it:
///
/// - [`IdempotencyKey::of_message`]: `SHA-256("kith-relay idempotency v1" || client message id)`,
///   what SPEC.md §9.3 recommends. Keeps nothing about the sender at all. Client message ids are
///   16 random bytes, so two senders collide with negligible probability, and a sender cannot
///   aim at another's id: ids travel only between a device and the relay (a delivery does not
///   carry them).
/// - [`IdempotencyKey::of_sender_message`]: `SHA-256("kith-relay idempotency v1 sender" ||
///   sending device id || client message id)`. Scopes ids per device, at a privacy cost:
///   whoever holds the data *and* knows a device id and a client message id can confirm that
///   this device made that send. The hash cannot be searched for a sender without the 128-bit
///   id. A secret relay key would not remove that cost: kept next to the data it protects nothing
///   from whoever has the data; kept only in memory it would break idempotency across a restart,
///   the very case retries are for.
///
/// Either way the record holds only the key, the delivery ids it produced and its expiry
/// ([`Enqueue::idempotent_until`], a short retry window), and is deleted by
/// [`Store::expire`](super::Store::expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub [u8; 32]);

impl IdempotencyKey {
    /// The key of a send from its client message id alone (SPEC.md §9.3).
    pub fn of_message(client_message_id: &[u8; 16]) -> Self {
        let mut h = Sha256::new();
        h.update(b"kith-relay idempotency v1");
        h.update(client_message_id);
        Self(h.finalize().into())
    }

    /// The key of a send scoped to its sending device (see the type docs for the trade-off).
    pub fn of_sender_message(sender: &DeviceId, client_message_id: &[u8; 16]) -> Self {
        let mut h = Sha256::new();
        h.update(b"kith-relay idempotency v1 sender");
        h.update(sender.as_bytes());
        h.update(client_message_id);
        Self(h.finalize().into())
    }
}

/// Per-device mailbox quota, passed with each send (it is configuration, not stored state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Maximum entries queued for one device.
    pub max_entries: u64,
    /// Maximum bytes charged to one device: each entry costs its body plus its part, even when
    /// the body is shared with other recipients.
    pub max_bytes: u64,
}

/// One recipient of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The recipient device.
    pub device: DeviceId,
    /// Bytes for this recipient only (e.g. a sealed sender-key distribution).
    pub part: Option<Vec<u8>>,
}

/// A send to store: one body, one mailbox entry per recipient. No sender field, on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// See [`IdempotencyKey`].
    pub idempotency_key: IdempotencyKey,
    /// The opaque sealed body, stored once.
    pub body: Vec<u8>,
    /// The recipient devices; all must exist.
    pub recipients: Vec<Recipient>,
    /// Arrival time.
    pub arrived_at: u64,
    /// When the entries expire.
    pub expires_at: u64,
    /// Until when a retry with the same idempotency key is recognised (the retry window; keep
    /// it short, and not after `expires_at`). After it, a late retry is stored as a new copy,
    /// which devices deduplicate by content.
    pub idempotent_until: u64,
    /// The quota each recipient's mailbox is held to.
    pub limits: MailboxLimits,
}

/// The result of an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The delivery id of each recipient's entry, in the order of [`Enqueue::recipients`].
    pub deliveries: Vec<DeliveryId>,
    /// `true` when the idempotency key was seen before: nothing new was stored and
    /// `deliveries` are those of the first send (do not push them again).
    pub duplicate: bool,
}

/// A queued mailbox entry with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The entry's id, to acknowledge.
    pub delivery_id: DeliveryId,
    /// When the send arrived.
    pub arrived_at: u64,
    /// When the entry expires.
    pub expires_at: u64,
    /// The shared body.
    pub body: Vec<u8>,
    /// This device's part, if any.
    pub part: Option<Vec<u8>>,
}

/// What one [`Store::expire`](super::Store::expire) run deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCounts {
    /// Mailbox entries.
    pub entries: u64,
    /// Bodies no entry referred to any more.
    pub bodies: u64,
    /// Idempotency records.
    pub idempotency_keys: u64,
    /// Invites.
    pub invites: u64,
}

/// The size of all queues together, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Mailbox entries.
    pub entries: u64,
    /// Stored bodies (a body shared by several entries counts once).
    pub bodies: u64,
    /// Bytes held: every body once, plus every entry's part.
    pub bytes: u64,
}

/// Totals for `kith-relay stats` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Accounts.
    pub accounts: u64,
    /// Devices.
    pub devices: u64,
    /// Queued mailbox entries.
    pub queued_envelopes: u64,
    /// Queued bytes, as [`QueueStats::bytes`].
    pub queued_bytes: u64,
}

// ---- a store's contents, record by record, for `kith-relay migrate` ----

/// An account with its devices (in the order added), as copied between engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The account; `account.devices` lists the ids of `devices`, in the same order.
    pub account: Account,
    /// The account's devices, in the order added.
    pub devices: Vec<DeviceRecord>,
}

/// Every prekey one device has stored, as copied between engines.
#[derive(Debug, Clone)]
pub struct DevicePrekeys {
    /// The device.
    pub device: DeviceId,
    /// Its signed and last-resort prekeys (if stored) and its one-time prekeys, by id.
    pub prekeys: Prekeys,
}

/// A stored body with its engine id and reference count, as copied between engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRecord {
    /// The engine's id of the body, kept across the copy so entries keep pointing at it.
    pub id: u64,
    /// How many entries refer to it.
    pub refs: u64,
    /// The opaque sealed body.
    pub body: Vec<u8>,
}

/// A mailbox entry as copied between engines: its device, ids and times, and its body's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// The recipient device.
    pub device: DeviceId,
    /// The entry's delivery id (kept, so nothing is re-numbered).
    pub delivery_id: DeliveryId,
    /// The [`BodyRecord::id`] of its body.
    pub body: u64,
    /// This device's part, if any.
    pub part: Option<Vec<u8>>,
    /// When the send arrived.
    pub arrived_at: u64,
    /// When the entry expires.
    pub expires_at: u64,
}

/// A device's next delivery id, as copied between engines (the quota counters are derived
/// from the entries by the receiving engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxRecord {
    /// The device.
    pub device: DeviceId,
    /// The next delivery id the device's mailbox will assign.
    pub next_delivery: DeliveryId,
}

/// An invite as copied between engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteRecord {
    /// SHA-256 of the token.
    pub token: InviteTokenHash,
    /// Registrations it still allows.
    pub uses_left: u32,
    /// Valid while `now < expires_at`.
    pub expires_at: u64,
}

/// An idempotency record as copied between engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: IdempotencyKey,
    /// The delivery ids the first send produced.
    pub deliveries: Vec<DeliveryId>,
    /// When the record expires.
    pub expires_at: u64,
}

/// How many records of each kind a store holds (or a copy found in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotCounts {
    /// Accounts.
    pub accounts: u64,
    /// Devices.
    pub devices: u64,
    /// Signed X25519 prekeys.
    pub signed_prekeys: u64,
    /// Last-resort ML-KEM prekeys.
    pub last_resort_kem_prekeys: u64,
    /// One-time X25519 prekeys.
    pub one_time_prekeys: u64,
    /// One-time ML-KEM prekeys.
    pub one_time_kem_prekeys: u64,
    /// Stored bodies (each once, however many entries refer to it).
    pub bodies: u64,
    /// Mailbox entries.
    pub entries: u64,
    /// Invites.
    pub invites: u64,
    /// Idempotency records.
    pub idempotency_keys: u64,
}

impl SnapshotCounts {
    /// Every count with its name, in copy order.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("accounts", self.accounts),
            ("devices", self.devices),
            ("signed prekeys", self.signed_prekeys),
            ("last-resort KEM prekeys", self.last_resort_kem_prekeys),
            ("one-time prekeys", self.one_time_prekeys),
            ("one-time KEM prekeys", self.one_time_kem_prekeys),
            ("bodies", self.bodies),
            ("mailbox entries", self.entries),
            ("invites", self.invites),
            ("idempotency records", self.idempotency_keys),
        ]
    }

    /// The counts as a list in [`named`](Self::named) order (for storing them).
    pub fn to_vec(&self) -> Vec<u64> {
        self.named().iter().map(|(_, n)| *n).collect()
    }

    /// The counts from a list in [`named`](Self::named) order; `None` if its length differs.
    pub fn from_slice(values: &[u64]) -> Option<Self> {
        let [a, d, s, l, o, k, b, e, i, x] = values.try_into().ok()?;
        Some(Self {
            accounts: a,
            devices: d,
            signed_prekeys: s,
            last_resort_kem_prekeys: l,
            one_time_prekeys: o,
            one_time_kem_prekeys: k,
            bodies: b,
            entries: e,
            invites: i,
            idempotency_keys: x,
        })
    }

    /// Adds `other` to these counts, kind by kind.
    pub fn add(&mut self, other: &Self) {
        let sum: Vec<u64> = self
            .to_vec()
            .iter()
            .zip(other.to_vec())
            .map(|(a, b)| a.saturating_add(b))
            .collect();
        if let Some(sum) = Self::from_slice(&sum) {
            *self = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use kith_protocol::DeviceId;

    use super::{IdempotencyKey, InviteTokenHash};

    #[test]
    fn derived_keys_are_deterministic_and_domain_separated() {
        let (a, b) = (DeviceId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]));
        let id = [7; 16];
        assert_eq!(
            IdempotencyKey::of_message(&id),
            IdempotencyKey::of_message(&id)
        );
        assert_ne!(
            IdempotencyKey::of_message(&id),
            IdempotencyKey::of_message(&[8; 16])
        );
        assert_ne!(
            IdempotencyKey::of_sender_message(&a, &id),
            IdempotencyKey::of_sender_message(&b, &id)
        );
        assert_ne!(
            IdempotencyKey::of_message(&id),
            IdempotencyKey::of_sender_message(&a, &id)
        );
        assert_ne!(InviteTokenHash::of(b"x"), InviteTokenHash::of(b"y"));
        assert_ne!(
            InviteTokenHash::of(&id).0,
            IdempotencyKey::of_message(&id).0
        );
    }
}
