//! The Double Ratchet (SPEC.md §6), after Signal's specification: HKDF-SHA256 root KDF,
//! HMAC-SHA256 chain KDF, ChaCha20-Poly1305 per message.

mod chain_key;
mod double_ratchet;
mod header;
mod message_key;
mod ratchet_key;
mod root_key;
mod skipped;

pub(crate) use double_ratchet::{DoubleRatchet, RatchetState};
pub(crate) use header::Header;
pub(crate) use root_key::RootKey;

/// Why a ratchet message could not be decrypted. Kept internal; the session maps it to
/// [`crate::DecryptError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RatchetError {
    /// Authentication failed (wrong key, tampered header or ciphertext).
    Authentication,
    /// The message number was already used in this chain (replay), or its key was evicted.
    Duplicate,
    /// The message would skip more than `MAX_SKIP` keys in one chain.
    TooFarAhead,
    /// The sender's ratchet key is of small order.
    NonContributory,
    /// This side has not received a message yet and so has no sending chain.
    NoSendingChain,
    /// The chain has reached `u32::MAX` messages.
    ChainExhausted,
}
