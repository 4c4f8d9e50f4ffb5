//! The records the client keeps in its local store, and where each lives.
//!
//! Every record is a postcard encoding behind a format byte ([`RECORD_VERSION`]); the store
//! encrypts it. Records holding secrets zeroize on drop.
//!
//! | table      | group                      | item              | record                 |
//! |------------|----------------------------|-------------------|------------------------|
//! | `Account`  | `b"account"`               | empty             | [`AccountRecord`]      |
//! | `Account`  | `b"relay-login"`           | empty             | [`RelayLoginRecord`]   |
//! | `Account`  | `b"prekey-rotation"`       | empty             | [`RotationRecord`]     |
//! | `Prekeys`  | a [`PrekeySlot`] tag       | prekey id (u32 BE)| the secret bytes       |
//! | `Sessions` | remote device id           | empty             | [`SessionSetRecord`]   |
//! | `BaseKeys` | a base key `EK_A`          | empty             | `[1]`                  |
//! | `Contacts` | handle                     | empty             | [`ContactRecord`]      |
//! | `History`  | handle, or `group:` ‖ id   | seq (u64 BE)      | [`HistoryRecord`]      |
//! | `Groups`   | group id                   | empty             | [`GroupRecord`]        |
//! | `PeerSenderKeys` | group id ‖ account ‖ device | epoch (u64 BE) | `PeerSenderKey` bytes |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::store::StoreError;

/// The format byte in front of every record.
pub(super) const RECORD_VERSION: u8 = 1;

/// The group of the one account record.
pub(super) const ACCOUNT_GROUP: &[u8] = b"account";

/// The group of the relay login record.
pub(super) const RELAY_LOGIN_GROUP: &[u8] = b"relay-login";

/// The group of the prekey rotation record.
pub(super) const ROTATION_GROUP: &[u8] = b"prekey-rotation";

/// Which kind of prekey secret a `Prekeys` group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrekeySlot {
    /// The signed X25519 prekey.
    Signed,
    /// One-time X25519 prekeys.
    OneTime,
    /// The last-resort ML-KEM prekey.
    LastResortKem,
    /// One-time ML-KEM prekeys.
    OneTimeKem,
}

impl PrekeySlot {
    /// The group bytes of this slot.
    pub(super) fn group(self) -> &'static [u8] {
        match self {
            Self::Signed => b"signed",
            Self::OneTime => b"one-time",
            Self::LastResortKem => b"kem-last-resort",
            Self::OneTimeKem => b"kem-one-time",
        }
    }
}

/// This account and device. Holds the secret keys.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(super) struct AccountRecord {
    /// The registered handle (normalised).
    pub(super) handle: String,
    /// The relay's URL.
    pub(super) relay: String,
    /// How the relay's certificate is trusted (`Trust::to_bytes`).
    pub(super) trust: Vec<u8>,
    /// The account key's secret.
    pub(super) account_secret: [u8; 32],
    /// This device's secret keys (identity ‖ signing).
    pub(super) device_secret: Vec<u8>,
    /// This device's certificate (encoded).
    pub(super) certificate: Vec<u8>,
    /// The id of the current signed prekey.
    pub(super) signed_prekey_id: u32,
    /// The id of the last-resort ML-KEM prekey.
    pub(super) last_resort_kem_id: u32,
    /// The next one-time X25519 prekey id.
    pub(super) next_one_time_id: u32,
    /// The next one-time ML-KEM prekey id.
    pub(super) next_one_time_kem_id: u32,
    /// Whether the relay accepted the registration.
    pub(super) registered: bool,
}

/// How this device logs in to its relay (`kith init --relay-behind-proxy`).
///
/// A record of its own next to [`AccountRecord`] rather than a field in it: records are
/// postcard, which is not self-describing, so a field added to the account record would make
/// every existing home's record unreadable. Homes created before this record existed have
/// none, and keep binding their logins to TLS as they always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RelayLoginRecord {
    /// Whether a TLS-terminating proxy sits in front of the relay, so the login carries no
    /// TLS channel binding (SPEC.md §9.2).
    pub(super) behind_proxy: bool,
}

/// Where the rotation of the signed prekey and the last-resort ML-KEM prekey stands
/// (SPEC.md §3.5). Holds ids and times, no secrets: those stay in their [`PrekeySlot`]s.
///
/// A record of its own next to [`AccountRecord`] (which keeps the ids of the current pair) for
/// the same reason as [`RelayLoginRecord`]: homes created before rotation existed have none,
/// and their pair counts as made current when the record is first missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RotationRecord {
    /// When the current pair became current (seconds since the Unix epoch).
    pub(super) current_since: u64,
    /// A new pair whose secrets are stored but whose publication the relay has not confirmed
    /// yet; published again until it does, then made current.
    pub(super) pending: Option<LongTermIds>,
    /// Replaced pairs whose secrets are kept so that prekey messages built on them still
    /// decrypt, oldest first.
    pub(super) retired: Vec<RetiredPrekeys>,
}

/// The ids of one signed prekey and one last-resort ML-KEM prekey, made current together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LongTermIds {
    /// The signed X25519 prekey's id.
    pub(super) signed: u32,
    /// The last-resort ML-KEM prekey's id.
    pub(super) last_resort_kem: u32,
}

/// A replaced pair, and when it was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RetiredPrekeys {
    /// Its ids.
    pub(super) ids: LongTermIds,
    /// When the relay confirmed its successor (seconds since the Unix epoch).
    pub(super) retired_at: u64,
}

/// The sessions with one remote device, the active one first.
#[derive(Serialize, Deserialize, Default, Zeroize, ZeroizeOnDrop)]
pub(super) struct SessionSetRecord {
    /// `Session::to_bytes` of each session, active first.
    pub(super) sessions: Vec<Vec<u8>>,
}

/// A contact: the account key pinned for a handle (trust on first use).
#[derive(Debug, Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(super) struct ContactRecord {
    /// The handle (normalised).
    pub(super) handle: String,
    /// The pinned account key.
    pub(super) account_key: [u8; 32],
    /// Whether the user confirmed the safety number for `account_key`.
    pub(super) verified: bool,
    /// A different account key the relay or a message presented, awaiting confirmation.
    pub(super) pending_key: Option<[u8; 32]>,
    /// The contact's device certificates (encoded) as last seen.
    pub(super) devices: Vec<Vec<u8>>,
    /// The next history sequence number of the conversation.
    pub(super) next_seq: u64,
    /// When the last message of the conversation was stored.
    pub(super) last_message_at: Option<u64>,
}

/// One message of a conversation.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(super) struct HistoryRecord {
    /// The sender's message id.
    pub(super) id: [u8; 16],
    /// The author's handle.
    pub(super) from: String,
    /// Whether this account wrote it.
    pub(super) outgoing: bool,
    /// The text.
    pub(super) text: String,
    /// The sender's clock at sending.
    pub(super) sent_at: u64,
    /// When this device stored it.
    pub(super) received_at: u64,
}

/// A circle this account is (or was) in.
#[derive(Serialize, Deserialize, Default, Zeroize, ZeroizeOnDrop)]
pub(super) struct GroupRecord {
    /// The current verified state (`VerifiedGroupState::to_bytes`; holds the envelope secret).
    pub(super) state: Vec<u8>,
    /// The state before, to open envelopes sent just before a change.
    pub(super) previous: Option<Vec<u8>>,
    /// This device's sender key for the current epoch (`OwnSenderKey::to_bytes`).
    pub(super) own_key: Option<Vec<u8>>,
    /// Devices (account key ‖ device id) that hold `own_key` already.
    pub(super) distributed: Vec<Vec<u8>>,
    /// The next history sequence number of the circle.
    pub(super) next_seq: u64,
    /// When the last message of the circle was stored.
    pub(super) last_message_at: Option<u64>,
    /// Whether this account left the circle (history kept, nothing sent or received).
    pub(super) left: bool,
}

/// Encodes a record behind its format byte, in a zeroizing buffer.
pub(super) fn encode<T: Serialize>(record: &T) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut out = Zeroizing::new(vec![RECORD_VERSION]);
    let body = Zeroizing::new(postcard::to_allocvec(record).map_err(|_| StoreError::Corrupt)?);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record written by [`encode`].
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|_| StoreError::Corrupt)
        }
        Some((&found, _)) => Err(StoreError::UnsupportedVersion { found }),
        None => Err(StoreError::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_other_versions() {
        let record = HistoryRecord {
            id: [7; 16],
            from: "alice".into(),
            outgoing: false,
            text: "hello".into(),
            sent_at: 1,
            received_at: 2,
        };
        let bytes = encode(&record).unwrap();
        let back: HistoryRecord = decode(&bytes).unwrap();
        assert_eq!(back.text, "hello");
        let mut other = bytes.to_vec();
        other[0] = 9;
        assert!(matches!(
            decode::<HistoryRecord>(&other),
            Err(StoreError::UnsupportedVersion { found: 9 })
        ));
        assert!(matches!(
            decode::<HistoryRecord>(&[]),
            Err(StoreError::Corrupt)
        ));
    }
}
