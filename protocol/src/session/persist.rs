//! The persisted session byte form (SPEC.md §6.8).
//!
//! ```text
//! SessionState = version:u8 (= SESSION_STATE_VERSION) || local:PeerIdentity || remote:PeerIdentity
//!                || ratchet:RatchetState || pending:Option<PrekeyInit> || base_key:[32]
//! ```
//! It contains secret keys: store it only encrypted. Only this exact form is accepted back.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{PeerIdentity, Session};
use crate::agreement::PrekeyInit;
use crate::consts::{MAX_SESSION_STATE_LEN, SESSION_STATE_VERSION};
use crate::encoding::{self, DecodeError};
use crate::ratchet::{DoubleRatchet, RatchetState};

#[derive(Serialize, Deserialize)]
struct SessionState {
    local: PeerIdentity,
    remote: PeerIdentity,
    ratchet: RatchetState,
    pending: Option<PrekeyInit>,
    base_key: [u8; 32],
}

impl Session {
    /// The versioned byte form, in a buffer zeroized on drop. Contains secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let state = SessionState {
            local: self.local,
            remote: self.remote,
            ratchet: self.ratchet.to_state(),
            pending: self.pending.clone(),
            base_key: self.base_key,
        };
        encoding::encode_versioned_zeroizing(SESSION_STATE_VERSION, &state)
    }

    /// Restores a session from [`Session::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let state: SessionState =
            encoding::decode_versioned(bytes, SESSION_STATE_VERSION, MAX_SESSION_STATE_LEN)?;
        let ratchet = DoubleRatchet::from_state(&state.ratchet).ok_or(DecodeError::Malformed)?;
        Ok(Self {
            local: state.local,
            remote: state.remote,
            ratchet,
            pending: state.pending,
            base_key: state.base_key,
        })
    }
}
