//! Why the local store failed. Every message says what happened and what to do.
//!
//! Messages never include keys, passphrases or record contents. sled's own error type stays
//! private: [`sled_error`] maps it to [`StoreError::InUse`], [`StoreError::Io`] or
//! [`StoreError::Corrupt`].

use std::io;

/// The text sled 0.34 puts in the `io::Error` it returns when another open handle holds the
/// exclusive `flock` on `DIR/db` (`Config::try_lock`, kind `Other`, wrapping `EWOULDBLOCK`).
const SLED_LOCK_MESSAGE: &str = "could not acquire lock on";

/// A local store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No store in the directory.
    #[error(
        "There is no local store here yet. Create one with `kith init`, or point --home (or \
         KITH_HOME) at the right directory."
    )]
    NotFound,
    /// `create` on a directory that is not empty.
    #[error(
        "The directory for the local store is not empty, so nothing was created and nothing was \
         changed. Use another home, or remove that directory only if nobody needs what is in it."
    )]
    AlreadyExists,
    /// The passphrase did not unlock the data key (or the header was altered).
    #[error(
        "The passphrase is wrong: the local store could not be unlocked. Try again (check \
         KITH_PASSPHRASE if you set it)."
    )]
    WrongPassphrase,
    /// Another process holds the store open.
    #[error(
        "Another kith process (perhaps `kith chat`) is using this home right now. Close it and \
         try again."
    )]
    InUse,
    /// A record or the header failed its integrity check, or sled found its files damaged.
    #[error(
        "The local store is damaged: a record failed its integrity check. Restore the home \
         directory from a backup."
    )]
    Corrupt,
    /// The store was written by a newer (or unknown) version of Kith.
    #[error(
        "The local store uses format version {found}, which this version of kith does not \
         know. Update kith and try again; nothing was changed."
    )]
    UnsupportedVersion {
        /// The format version found in the header.
        found: u8,
    },
    /// `create` was given Argon2id parameters outside the supported range.
    #[error(
        "The passphrase-hashing settings are outside the supported range (memory 8 KiB to \
         4 GiB and at least 8 KiB per lane, 1 to 100 passes, 1 to 16 lanes). Choose other \
         settings and try again; nothing was created."
    )]
    InvalidKdfParams,
    /// Reading or writing the files failed (including a full disk).
    #[error("{}", io_message(.0))]
    Io(#[source] io::Error),
}

/// The message for an I/O failure: a full disk gets its own advice.
fn io_message(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "The disk is full: free some space and try again; nothing was lost.".to_owned()
        }
        io::ErrorKind::PermissionDenied => format!(
            "The local store could not be read or written: permission denied ({error}). Check \
             that this user owns the home directory, then try again."
        ),
        _ => format!(
            "The local store could not be read or written ({error}). Check that the home \
             directory is accessible and the disk is healthy, then try again."
        ),
    }
}

/// Maps a sled error without exposing sled's types.
pub(super) fn sled_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(e) if is_lock_error(&e) => StoreError::InUse,
        sled::Error::Io(e) => StoreError::Io(e),
        sled::Error::Corruption { .. } | sled::Error::CollectionNotFound(_) => StoreError::Corrupt,
        other => StoreError::Io(io::Error::other(other.to_string())),
    }
}

/// Whether `error` is sled's "another handle holds the lock" error.
fn is_lock_error(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.to_string().contains(SLED_LOCK_MESSAGE)
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}
