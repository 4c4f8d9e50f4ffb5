//! Groups ("circles", SPEC.md §14): member-held, admin-signed group states, sender keys
//! distributed over the 1:1 sessions, and group envelopes the relay cannot attribute.
//!
//! The layout follows vodozemac's `megolm/`: one spec object per file.
//!
//! - [`GroupState`] → [`SignedGroupState`] → [`VerifiedGroupState`] (`state.rs`, `verify.rs`),
//!   changed with [`GroupChange`] (`change.rs`);
//! - the sender-key chain and message keys (`chain.rs`, `message_key.rs`);
//! - [`OwnSenderKey`] and its [`SenderKeyDistribution`] (`sender_key.rs`), [`PeerSenderKey`]
//!   (`peer.rs`), [`GroupMessage`] (`message.rs`);
//! - [`seal_group`] and [`open_group`] (`envelope.rs`).

mod chain;
mod change;
mod envelope;
mod errors;
mod id;
mod message;
mod message_key;
mod peer;
mod secret;
mod sender_key;
mod state;
#[cfg(test)]
mod tests;
mod verify;

pub use change::GroupChange;
pub use envelope::{open_group, seal_group};
pub use errors::{
    GroupDecryptError, GroupEncryptError, GroupOpenError, GroupSealError, GroupStateError,
};
pub use id::GroupId;
pub use message::GroupMessage;
pub use peer::PeerSenderKey;
pub use sender_key::{OwnSenderKey, SenderKeyDistribution};
pub use state::{GroupState, Member, SignedGroupState};
pub use verify::VerifiedGroupState;
