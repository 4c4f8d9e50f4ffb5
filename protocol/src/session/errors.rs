//! Session errors, one enum per operation.

use crate::agreement::AgreementError;
use crate::ratchet::RatchetError;

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionCreationError {
    /// The local certificate does not certify the local device keys.
    #[error("the local certificate does not match the local device keys")]
    LocalCertificateMismatch,
    /// A peer key is of small order (the key agreement would not depend on our secret).
    #[error("a peer key is non-contributory (small order)")]
    NonContributoryKey,
    /// The peer's ML-KEM prekey is not a valid ML-KEM-768 key.
    #[error("the peer's ML-KEM prekey is invalid")]
    InvalidKemKey,
    /// The prekeys passed to `respond` are not the ones the message names.
    #[error("the prekeys given do not match the ids in the prekey message")]
    PrekeyMismatch,
    /// The message carried by the prekey message did not decrypt.
    #[error("the first message did not decrypt: {0}")]
    Decrypt(#[source] DecryptError),
}

impl From<AgreementError> for SessionCreationError {
    fn from(error: AgreementError) -> Self {
        match error {
            AgreementError::NonContributory => Self::NonContributoryKey,
            AgreementError::InvalidKemKey => Self::InvalidKemKey,
        }
    }
}

/// Why a message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The plaintext is over the limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Plaintext length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// This side accepted the session but has no sending chain (cannot happen for sessions
    /// made by `initiate` or `respond`).
    #[error("the session cannot send yet")]
    NotReady,
    /// The sending chain has reached 2^32 messages.
    #[error("the sending chain is exhausted; start a new session")]
    ChainExhausted,
}

/// Why a message could not be decrypted. The session is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The message is not authentic for this session (wrong key, tampered, reflected, or from
    /// an old chain whose keys are gone). Deliberately does not say which check failed.
    #[error("message authentication failed")]
    Authentication,
    /// This message number was already decrypted (replay), or its skipped key was evicted.
    #[error("message already received or too old")]
    Duplicate,
    /// The message would skip more than `MAX_SKIP` messages in one chain.
    #[error("message is too far ahead of the chain")]
    TooFarAhead,
    /// The sealed sender certificate is not this session's peer.
    #[error("message is from another device than this session's peer")]
    WrongSender,
    /// A prekey message that starts another session (use `Session::respond`).
    #[error("prekey message belongs to another session")]
    OtherSession,
}

impl From<RatchetError> for DecryptError {
    fn from(error: RatchetError) -> Self {
        match error {
            RatchetError::Duplicate => Self::Duplicate,
            RatchetError::TooFarAhead => Self::TooFarAhead,
            RatchetError::Authentication
            | RatchetError::NonContributory
            | RatchetError::NoSendingChain
            | RatchetError::ChainExhausted => Self::Authentication,
        }
    }
}
