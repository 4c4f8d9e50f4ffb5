//! The identity of one end of a session, and the associated data built from it.

use serde::{Deserialize, Serialize};

use crate::consts::PROTOCOL_VERSION;
use crate::keys::{AccountPublicKey, DeviceId, IdentityPublicKey, VerifiedCertificate};

/// Who one end of a session is: account key, device id and X25519 identity key, taken from a
/// verified certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    account_key: AccountPublicKey,
    device_id: DeviceId,
    identity_key: IdentityPublicKey,
}

impl From<&VerifiedCertificate> for PeerIdentity {
    fn from(certificate: &VerifiedCertificate) -> Self {
        Self {
            account_key: *certificate.account_key(),
            device_id: certificate.device_id(),
            identity_key: *certificate.identity_key(),
        }
    }
}

impl PeerIdentity {
    /// The account key.
    pub fn account_key(&self) -> &AccountPublicKey {
        &self.account_key
    }

    /// The device id.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The X25519 identity key.
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.identity_key
    }

    /// `version:u8 || sender (account 32 || device 16 || identity 32) || recipient (same)`:
    /// the prefix of every ratchet message's AD (SPEC.md §6.5). The order encodes the
    /// direction, so a message reflected back to its sender does not authenticate.
    pub(crate) fn associated_data_to(&self, recipient: &PeerIdentity) -> Vec<u8> {
        let mut ad = Vec::with_capacity(1 + 2 * 80);
        ad.push(PROTOCOL_VERSION);
        for end in [self, recipient] {
            ad.extend_from_slice(end.account_key.as_bytes());
            ad.extend_from_slice(end.device_id.as_bytes());
            ad.extend_from_slice(end.identity_key.as_bytes());
        }
        ad
    }
}
