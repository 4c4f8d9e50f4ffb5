//! The ratchet header (SPEC.md §6.5).

use serde::{Deserialize, Serialize};

/// Byte length of [`Header::to_ad_bytes`].
pub(crate) const HEADER_AD_LEN: usize = 40;

/// Sent in clear (inside the sealed envelope) with every ratchet message and authenticated as
/// associated data.
///
/// ```text
/// wire (postcard):  ratchet_key:[32] || previous_chain_length:varint u32 || message_number:varint u32
/// in the AD:        ratchet_key:[32] || previous_chain_length:u32 BE     || message_number:u32 BE
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// `DHs` public key of the sender.
    pub(crate) ratchet_key: [u8; 32],
    /// `PN`: number of messages in the sender's previous sending chain.
    pub(crate) previous_chain_length: u32,
    /// `N`: this message's number in the current sending chain.
    pub(crate) message_number: u32,
}

impl Header {
    /// The fixed-length form bound into the AEAD associated data.
    pub(crate) fn to_ad_bytes(self) -> [u8; HEADER_AD_LEN] {
        let mut out = [0u8; HEADER_AD_LEN];
        out[..32].copy_from_slice(&self.ratchet_key);
        out[32..36].copy_from_slice(&self.previous_chain_length.to_be_bytes());
        out[36..].copy_from_slice(&self.message_number.to_be_bytes());
        out
    }
}
