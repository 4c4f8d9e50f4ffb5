//! Session message formats (SPEC.md §6.9).

use serde::{Deserialize, Serialize};

use crate::agreement::PrekeyInit;
use crate::consts::{MAX_PLAINTEXT_LEN, PROTOCOL_VERSION};
use crate::encoding::{self, BoundedBytes, DecodeError};
use crate::keys::PrekeyId;
use crate::ratchet::Header;

/// Largest ratchet ciphertext: the largest plaintext plus the 16-byte Poly1305 tag.
const MAX_CIPHERTEXT_LEN: usize = MAX_PLAINTEXT_LEN + 16;

/// Largest encoded session message: a prekey message around the largest ciphertext.
pub(crate) const MAX_SESSION_MESSAGE_LEN: usize = MAX_CIPHERTEXT_LEN + 2048;

/// One Double Ratchet message.
///
/// ```text
/// RatchetMessage = ratchet_key:[32] || previous_chain_length:varint u32
///                  || message_number:varint u32 || ciphertext:varint len || bytes
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatchetMessage {
    pub(crate) header: Header,
    pub(crate) ciphertext: BoundedBytes<MAX_CIPHERTEXT_LEN>,
}

impl RatchetMessage {
    pub(crate) fn new(header: Header, ciphertext: Vec<u8>) -> Self {
        // Ciphertexts come from plaintexts capped at MAX_PLAINTEXT_LEN, so this never truncates;
        // an empty body would simply fail authentication.
        let ciphertext = BoundedBytes::new(ciphertext).unwrap_or_default();
        Self { header, ciphertext }
    }

    /// The sender's message number in its current chain.
    pub fn message_number(&self) -> u32 {
        self.header.message_number
    }
}

/// A ratchet message with the key-agreement data the responder needs to set up the session.
///
/// ```text
/// PrekeyMessage = PrekeyInit (SPEC.md §5.4) || RatchetMessage
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyMessage {
    pub(crate) init: PrekeyInit,
    pub(crate) message: RatchetMessage,
}

impl PrekeyMessage {
    /// Id of the recipient's signed prekey used.
    pub fn signed_prekey_id(&self) -> PrekeyId {
        self.init.signed_prekey_id
    }

    /// Id of the recipient's one-time X25519 prekey used, if any.
    pub fn one_time_prekey_id(&self) -> Option<PrekeyId> {
        self.init.one_time_prekey_id
    }

    /// Id of the recipient's ML-KEM prekey used (one-time or last resort).
    pub fn kem_prekey_id(&self) -> PrekeyId {
        self.init.kem_prekey_id
    }

    /// The initiator's ephemeral key `EK_A`, which identifies the session.
    pub fn base_key(&self) -> &[u8; 32] {
        &self.init.ephemeral_key
    }
}

/// What a session sends: a prekey message until the initiator has heard back, then plain
/// ratchet messages.
///
/// ```text
/// SessionMessage = version:u8 (= 1) || tag:varint (0 Prekey, 1 Ratchet) || body
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionMessage {
    /// Carries the key agreement (tag 0).
    Prekey(Box<PrekeyMessage>),
    /// A message of an established session (tag 1).
    Ratchet(RatchetMessage),
}

impl SessionMessage {
    /// Canonical encoding, with the version byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode_versioned(PROTOCOL_VERSION, self)
    }

    /// Decodes a canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode_versioned(bytes, PROTOCOL_VERSION, MAX_SESSION_MESSAGE_LEN)
    }
}
