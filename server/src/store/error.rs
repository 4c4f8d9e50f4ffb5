//! The one error type of the storage layer.

/// Why a store operation failed.
///
/// `Display` never includes user data: no handles, keys, device ids or message bytes. The
/// variants that a client may be told about (`HandleTaken`, `MailboxFull`, …) carry no fields,
/// so that for example a full mailbox does not say *whose* mailbox was full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The handle belongs to another account.
    #[error("handle is taken")]
    HandleTaken,
    /// An account with this account key exists already.
    #[error("account exists already")]
    AccountExists,
    /// No account with this key.
    #[error("account not found")]
    AccountNotFound,
    /// A device with this id exists already.
    #[error("device exists already")]
    DeviceExists,
    /// No device with this id (for a send: at least one recipient is unknown).
    #[error("device not found")]
    DeviceNotFound,
    /// The account has [`MAX_DEVICES_PER_ACCOUNT`](kith_protocol::consts::MAX_DEVICES_PER_ACCOUNT)
    /// devices already.
    #[error("too many devices on this account")]
    TooManyDevices,
    /// A one-time prekey id is already stored for this device (or repeats within the upload).
    #[error("duplicate prekey id")]
    DuplicatePrekey,
    /// The device has no signed prekey or no last-resort KEM prekey, so no bundle can be made.
    #[error("device has not published its prekeys")]
    PrekeysMissing,
    /// A recipient's mailbox is at its quota; nothing was stored for any recipient.
    #[error("mailbox full")]
    MailboxFull,
    /// The disk (sled: the data directory's file system is below its free-space reserve;
    /// PostgreSQL: the server reported `disk_full`) has no room for more; nothing was written.
    /// Deletions (acknowledgements, expiry) still work.
    #[error("storage full")]
    StorageFull,
    /// The invite is unknown, expired or used up.
    #[error("invite invalid")]
    InviteInvalid,
    /// Stored bytes could not be decoded: names the record kind, never its contents.
    #[error("corrupt stored {0}")]
    Corrupt(&'static str),
    /// The data directory is locked by another process.
    #[error("data directory is in use by another kith-relay process")]
    InUse,
    /// The store was closed; no further writes are accepted.
    #[error("store is closed")]
    Closed,
    /// The database cannot be reached (refused, timed out, authentication failed, connection
    /// lost). Describes the failure, never the connection URL or its password.
    #[error("the database is unreachable: {0}")]
    DatabaseUnreachable(String),
    /// The database has a migration applied that this binary does not know: it was upgraded by
    /// a newer kith-relay. Refused, so an old relay never writes into a newer schema.
    #[error(
        "the database schema is newer than this kith-relay (schema version {found}, this \
         relay knows up to {known}); upgrade the relay"
    )]
    SchemaTooNew {
        /// The newest migration version applied in the database.
        found: u32,
        /// The newest migration version this binary knows.
        known: u32,
    },
    /// The storage engine failed (I/O, flush, engine bug). Describes the failure, no user data.
    #[error("storage backend: {0}")]
    Backend(String),
}
