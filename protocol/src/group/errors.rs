//! One error enum per group operation (SPEC.md §14). `Display` never shows user data.

/// Why a group state could not be created, changed or accepted (SPEC.md §14.2–14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupStateError {
    /// The state is not well formed: duplicate account keys or handles, no admin, more than
    /// `MAX_GROUP_MEMBERS` members, a removed or promoted account that is not a member, or the
    /// epoch counter is exhausted.
    #[error("invalid group state")]
    Invalid,
    /// The signature does not verify under the signer's account key.
    #[error("bad group state signature")]
    BadSignature,
    /// The state belongs to another group.
    #[error("the state belongs to another group")]
    WrongGroup,
    /// The signer may not make this change: it is not an admin of the current state, and the
    /// change is not the signer leaving.
    #[error("the signer is not an admin of the group")]
    NotAdmin,
    /// The account in question (the signer, or the receiver of an invitation) is not a member.
    #[error("not a member of the group")]
    NotMember,
    /// The state is not a genesis state: its epoch is not 0 or its previous hash is not zero.
    #[error("not a genesis state")]
    NotGenesis,
    /// The state's epoch is not after the current one (an old state replayed, or the current
    /// state delivered again).
    #[error("replayed group state (epoch {found}, current epoch {current})")]
    Replay {
        /// The current epoch.
        current: u64,
        /// The epoch of the rejected state.
        found: u64,
    },
    /// The state skips epochs: changes were missed and must be fetched first.
    #[error("group state epoch {found} does not follow the current epoch {current}")]
    WrongEpoch {
        /// The current epoch.
        current: u64,
        /// The epoch of the rejected state.
        found: u64,
    },
    /// A validly signed state that contradicts the history: the same epoch as the current
    /// state with another content, or the next epoch with another previous hash.
    #[error("group state fork at epoch {epoch}")]
    Fork {
        /// The epoch of the rejected state.
        epoch: u64,
    },
}

/// Why a group message could not be encrypted (SPEC.md §14.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupEncryptError {
    /// The plaintext is longer than `MAX_PLAINTEXT_LEN`.
    #[error("plaintext of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Plaintext length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The sender key has sent 2^32 − 1 messages; generate a new one.
    #[error("the sender key chain is exhausted")]
    ChainExhausted,
}

/// Why a group message could not be decrypted (SPEC.md §14.6). On every error the peer
/// sender key is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupDecryptError {
    /// The message is for another group, epoch, sender or sender key: look up another
    /// [`crate::PeerSenderKey`] (or wait for the sender's distribution).
    #[error("the message is not for this sender key")]
    WrongSenderKey,
    /// The signature or the AEAD rejected the message.
    #[error("group message authentication failed")]
    Authentication,
    /// The message's key was already used (a replay), evicted, or precedes the distribution.
    #[error("duplicate or expired group message")]
    Duplicate,
    /// The message would skip more than `MAX_GROUP_SKIP` keys (or past the end of the chain).
    #[error("group message too far ahead")]
    TooFarAhead,
}

/// Why a group message could not be sealed in a group envelope (SPEC.md §14.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupSealError {
    /// The message's group id or epoch is not the state's.
    #[error("the message does not belong to this group state")]
    WrongGroupState,
    /// The envelope would exceed the relay's body limit.
    #[error("envelope of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Envelope length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a group envelope could not be opened with a group state (SPEC.md §14.7).
/// Authentication failures are one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupOpenError {
    /// Too short, too long, or not a group envelope.
    #[error("malformed group envelope")]
    Malformed,
    /// Another group envelope version.
    #[error("unsupported group envelope version {found}")]
    UnsupportedVersion {
        /// Version found.
        found: u8,
    },
    /// Not sealed under this group state (another group or epoch), or tampered with.
    #[error("group envelope authentication failed")]
    Authentication,
}
