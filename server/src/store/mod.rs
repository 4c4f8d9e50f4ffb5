//! Storage: the [`Store`] trait the relay needs, and its engines.
//!
//! One trait, one folder per engine. [`SledStore`] (`sled/`) is the embedded default; a
//! PostgreSQL engine (issue #6) implements the same trait. Every engine runs the same
//! `conformance` suite (a module built for tests and with the `conformance` feature).
//!
//! ## What the store keeps (ARCHITECTURE.md, "What the relay may know and keep")
//!
//! Accounts (handle, account key), devices (certificate), prekeys, invites (SHA-256 of the
//! token only), and mailbox entries: recipient device, opaque body, optional per-recipient part,
//! arrival time, expiry. It keeps **no sender** for an envelope. To recognise a retried send it
//! keeps an [`IdempotencyKey`] (32 opaque bytes the relay derives, see there for the choices
//! and their privacy trade-off) for a short retry window.
//!
//! ## Guarantees every engine gives
//!
//! - **Durable before answering.** Every method that changes data returns `Ok` only once the
//!   change is durable (sled: after a group-commit flush that covers it; PostgreSQL: after
//!   commit). The relay may answer "accepted" as soon as `enqueue` returns.
//! - **Atomic.** Account creation and invite use-up happen together or not at all; an enqueue
//!   stores everything (body, every entry, idempotency record) or nothing.
//! - **Exactly once.** Each one-time prekey is returned by [`Store::take_bundle_material`] to one
//!   caller only, however many run concurrently.
//! - **No panics on stored bytes.** Undecodable records give [`StoreError::Corrupt`].
//! - **No clock.** Times are Unix seconds passed by the caller.
//!
//! ## Copying between engines
//!
//! `kith-relay migrate` ([`crate::migrate`]) reads a sled store out record by record
//! (`SledStore::export_*`, as [`AccountRecord`], [`BodyRecord`], [`EntryRecord`], …) and
//! writes the records into PostgreSQL (`PostgresStore::import_*`), keeping every id.
//!
//! ## Futures
//!
//! Methods are written `fn …(…) -> impl Future<Output = …> + Send` rather than `async fn` so the
//! trait promises `Send` futures and the relay can call the store from `tokio::spawn`ed tasks.
//! An engine implements them with plain `async fn` (the compiler checks they are `Send`).
//! Generic code takes `S: Store` (no `dyn`: one engine is chosen at start).

use std::future::Future;
use std::pin::Pin;

use kith_protocol::{AccountPublicKey, DeviceId, VerifiedCertificate};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod postgres;
mod sled;
mod types;

pub use self::error::StoreError;
pub use self::postgres::{Conflict, ImportError, PostgresOptions, PostgresStore};
pub use self::sled::{Records, SledOptions, SledStore};
pub use self::types::{
    Account, AccountRecord, BodyRecord, BundleMaterial, DeliveryId, DevicePrekeys, DeviceRecord,
    Enqueue, EntryRecord, Envelope, ExpireCounts, IdempotencyKey, IdempotencyRecord, InviteRecord,
    InviteTokenHash, MailboxLimits, MailboxRecord, NewAccount, PrekeyCounts, Prekeys, QueueStats,
    Receipt, Recipient, SnapshotCounts, StoreStats,
};

/// Everything the relay stores, behind one interface. See the [module docs](self) for the
/// guarantees every implementation gives.
pub trait Store: Send + Sync + 'static {
    // ---- accounts and devices ----

    /// Creates an account with its first device and, if given, uses up one use of the invite,
    /// atomically. Errors: [`StoreError::InviteInvalid`] (unknown, expired at `now`, used up),
    /// [`StoreError::HandleTaken`], [`StoreError::AccountExists`], [`StoreError::DeviceExists`].
    fn create_account(
        &self,
        new: NewAccount,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    /// The account with this (normalised) handle.
    fn account_by_handle(
        &self,
        handle: &str,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// The account with this key.
    fn account_by_key(
        &self,
        account_key: &AccountPublicKey,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Adds a device, certified by an existing account's key, to that account. Errors:
    /// [`StoreError::AccountNotFound`], [`StoreError::TooManyDevices`],
    /// [`StoreError::DeviceExists`].
    fn add_device(
        &self,
        certificate: &VerifiedCertificate,
        added_at: u64,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    /// The device with this id.
    fn device(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, StoreError>> + Send;

    /// The devices of an account, in the order added ([`StoreError::AccountNotFound`]).
    fn devices_of(
        &self,
        account_key: &AccountPublicKey,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, StoreError>> + Send;

    // ---- prekeys ----

    /// Replaces the signed and last-resort prekeys given and adds the one-time ones, all or
    /// nothing. Errors: [`StoreError::DeviceNotFound`], [`StoreError::DuplicatePrekey`].
    fn publish_prekeys(
        &self,
        device: DeviceId,
        prekeys: Prekeys,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes what one bundle needs: the signed prekey, one one-time X25519 prekey (removed; none
    /// when none is left) and one one-time KEM prekey (removed), or the last-resort KEM prekey
    /// when none is left. Errors: [`StoreError::DeviceNotFound`], [`StoreError::PrekeysMissing`].
    fn take_bundle_material(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<BundleMaterial, StoreError>> + Send;

    /// How many prekeys the device has left ([`StoreError::DeviceNotFound`]).
    fn prekey_counts(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<PrekeyCounts, StoreError>> + Send;

    // ---- mailboxes ----

    /// Stores a send: the body once, an entry per recipient. A repeated idempotency key stores
    /// nothing and returns the first receipt (`duplicate: true`). If any recipient's mailbox
    /// would exceed [`Enqueue::limits`], stores nothing: [`StoreError::MailboxFull`] (which
    /// recipient is not said). An unknown recipient: [`StoreError::DeviceNotFound`].
    fn enqueue(&self, send: Enqueue) -> impl Future<Output = Result<Receipt, StoreError>> + Send;

    /// [`Store::enqueue`] in two steps, so that a connection can have many sends waiting for
    /// durability at once (sharing transactions and flushes) while its writes keep their order.
    ///
    /// Returns once the send is *queued*: it will be applied after every write queued before it
    /// (by any caller) and before every write queued after it. The returned [`Staged`]
    /// resolves to the receipt (or this send's own error) once the send is applied AND
    /// durable; until then nobody may be told it is stored. Engines that do not queue
    /// (PostgreSQL) do the whole enqueue here and return a resolved [`Staged`]; that is the
    /// default.
    fn enqueue_staged(
        &self,
        send: Enqueue,
    ) -> impl Future<Output = Result<Staged<Receipt>, StoreError>> + Send {
        async move {
            let done = self.enqueue(send).await;
            Ok(Box::pin(std::future::ready(done)) as Staged<Receipt>)
        }
    }

    /// Up to `limit` entries of the device's queue with ids greater than `after`, in order.
    fn list(
        &self,
        device: DeviceId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send;

    /// Deletes the device's entries with these ids (unknown ids are ignored) and every body no
    /// entry refers to any more. Returns how many entries were deleted.
    fn ack(
        &self,
        device: DeviceId,
        ids: &[DeliveryId],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Store::ack`] in two steps, like [`Store::enqueue_staged`]: the count of deleted
    /// entries once applied and durable.
    fn ack_staged(
        &self,
        device: DeviceId,
        ids: &[DeliveryId],
    ) -> impl Future<Output = Result<Staged<u64>, StoreError>> + Send {
        async move {
            let done = self.ack(device, ids).await;
            Ok(Box::pin(std::future::ready(done)) as Staged<u64>)
        }
    }

    /// Deletes entries, idempotency records and invites whose expiry is `<= now`.
    fn expire(&self, now: u64) -> impl Future<Output = Result<ExpireCounts, StoreError>> + Send;

    /// Queue totals, for metrics. May scan: call it every few seconds, not per request.
    fn queue_stats(&self) -> impl Future<Output = Result<QueueStats, StoreError>> + Send;

    // ---- invites ----

    /// Records an invite with `uses` uses, valid while `now < expires_at`. The same hash again
    /// replaces the earlier invite.
    fn create_invite(
        &self,
        token: InviteTokenHash,
        uses: u32,
        expires_at: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // ---- operations ----

    /// Totals for `kith-relay stats`. May scan, like [`Store::queue_stats`].
    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;

    /// Returns once everything written before the call is durable.
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Flushes a last time and stops background work; later writes fail with
    /// [`StoreError::Closed`]. Call it on shutdown after in-flight requests have finished.
    fn close(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Resolves if the store has failed for good: it can no longer make writes durable (sled:
    /// a flush failed, e.g. the disk filled up past the reserve or returned an I/O error).
    /// The relay then stops rather than go on answering requests it cannot keep. Never
    /// resolves for engines that recover by themselves (the default: PostgreSQL reconnects).
    fn broken(&self) -> impl Future<Output = StoreError> + Send {
        std::future::pending()
    }

    // ---- several relay nodes ----

    /// Wake-ups from other relay nodes sharing this store: a device whose mailbox another node
    /// changed, or [`Wakeup::Resync`] after notifications may have been missed. `Some` at most
    /// once (the first call takes the receiver); `None` for single-node engines such as sled,
    /// where the relay's own registry sees every change.
    fn take_wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<Wakeup>> {
        None
    }
}

/// The outcome of a queued write ([`Store::enqueue_staged`]), once it is applied and durable.
/// `Err` is the write's own failure, or a failure to make it durable: either way the caller
/// must not report it as stored.
pub type Staged<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A notification from another relay node sharing the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// New mail for this device: push its queue if it is connected here.
    Device(DeviceId),
    /// Notifications may have been lost (the listening connection was re-established): re-read
    /// the queues of every device connected here.
    Resync,
}
