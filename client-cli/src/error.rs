//! The client's errors, written for the person at the keyboard: what happened and what to do.

use std::path::PathBuf;

use kith_protocol::wire::{ErrorKind, Handle, HandleError};

use crate::relay::{LinkError, UrlError};
use crate::store::StoreError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `init` on a home that already holds an account.
    #[error(
        "{} already holds a Kith account; nothing was changed. Use another --home, or remove \
         that directory only if you are sure nobody needs the account in it.",
        path.display()
    )]
    HomeExists {
        /// The home directory.
        path: PathBuf,
    },
    /// No account in the home.
    #[error(
        "There is no Kith account in {}. Create one with `kith init --relay wss://HOST:PORT \
         --handle NAME`, or point --home (or KITH_HOME) at the right directory.",
        path.display()
    )]
    NoAccount {
        /// The home directory.
        path: PathBuf,
    },
    /// `init` did not finish (the relay never confirmed the registration).
    #[error(
        "The account in {} was never registered with the relay (kith init did not finish). \
         Remove that directory and run `kith init` again.",
        path.display()
    )]
    NotRegistered {
        /// The home directory.
        path: PathBuf,
    },
    /// The local store failed (wrong passphrase, in use, damaged, disk full, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Talking to the relay failed (unreachable, untrusted certificate, error answers, …).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A relay address that is not `wss://HOST:PORT`.
    #[error("That relay address is not valid: {0}.")]
    Url(#[from] UrlError),
    /// A handle that is not valid.
    #[error("That handle is not valid: {0}.")]
    InvalidHandle(#[from] HandleError),
    /// Nobody has this handle on the relay.
    #[error("Nobody called @{} is registered on this relay. Check the spelling.", handle.as_str())]
    UnknownHandle {
        /// The handle looked up.
        handle: Handle,
    },
    /// The contact's account key differs from the one this device knows.
    #[error(
        "@{h}'s safety number has changed: their account key is not the one this device knew. \
         This happens when they reinstall Kith, but it is also what an impostor would look like, \
         so nothing was sent. Compare the new safety number with them in person or on a call \
         (`kith verify {h}`), then accept it with `kith verify {h} --confirm`.",
        h = handle.as_str()
    )]
    KeyChanged {
        /// The contact.
        handle: Handle,
    },
    /// The contact has no device that can receive messages.
    #[error("@{} has no device that can receive messages yet.", handle.as_str())]
    NoDevices {
        /// The contact.
        handle: Handle,
    },
    /// The message is too long.
    #[error("The message is too long ({len} bytes; at most {max}). Split it into shorter ones.")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The recipient is this account.
    #[error("You cannot send a message to yourself. Give the handle of the person to write to.")]
    SelfSend,
    /// Nothing to send.
    #[error("The message is empty; nothing was sent.")]
    EmptyMessage,
    /// A session could not encrypt (its sending chain ran out) or seal.
    #[error(
        "This device could not encrypt for one of the recipient's devices; nothing was sent. \
         Try again; if it persists, report it."
    )]
    SessionBroken,
    /// No circle of that name (or id prefix).
    #[error("You are not in a circle called \"{group}\". `kith group list` shows your circles.")]
    UnknownGroup {
        /// What the user typed.
        group: String,
    },
    /// Several circles match.
    #[error(
        "More than one circle is called \"{group}\". Use the circle's id instead (`kith group \
         list` shows it)."
    )]
    AmbiguousGroup {
        /// What the user typed.
        group: String,
    },
    /// The change needs an admin.
    #[error(
        "Only an admin of \"{group}\" can add or remove members. Ask one of its admins \
         (`kith group members {group}` shows them)."
    )]
    NotGroupAdmin {
        /// The circle.
        group: String,
    },
    /// A circle change that the protocol refuses (e.g. the last admin leaving, a member twice).
    #[error("That change to \"{group}\" is not possible: {reason}.")]
    GroupChangeRefused {
        /// The circle.
        group: String,
        /// Why.
        reason: String,
    },
    /// More recipient devices than one send may carry.
    #[error(
        "This message would go to {count} devices, more than the relay takes at once ({max}). \
         Make the circle smaller."
    )]
    TooManyRecipients {
        /// Devices.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The relay answered with keys or certificates that do not verify.
    #[error(
        "The relay sent keys for @{} that do not verify, so nothing was sent. Try again later; \
         if it persists, tell the relay's operator.",
        handle.as_str()
    )]
    BadKeys {
        /// The contact whose keys failed.
        handle: Handle,
    },
    /// The relay answered something that does not fit the request.
    #[error("The relay answered unexpectedly ({what}). Try again; if it persists, update Kith.")]
    UnexpectedResponse {
        /// What was expected.
        what: &'static str,
    },
    /// Registration was refused.
    #[error(
        "The relay refused the registration: {0} Nothing was kept; fix that and run `kith init` again."
    )]
    Registration(ErrorKind),
}
