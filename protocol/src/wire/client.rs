//! Frames a device sends to the relay (SPEC.md §9.3).

use serde::{Deserialize, Serialize};

use super::{Handle, PrekeyUpload, WIRE_VERSION};
use crate::consts::{
    MAX_ACKS_PER_FRAME, MAX_BODY_LEN, MAX_DEVICES_PER_ACCOUNT, MAX_FRAME_LEN, MAX_INVITE_TOKEN_LEN,
    MAX_PART_LEN, MAX_RECIPIENTS,
};
use crate::encoding::{self, BoundedBytes, BoundedVec, DecodeError};
use crate::keys::{AccountPublicKey, DeviceCertificate, DeviceId};

/// Identifies one mailbox entry. Opaque to the device: the relay assigns it when it stores a
/// message for that device, and the device echoes it in [`Request::Ack`].
pub type DeliveryId = u64;

/// One request from a device, tagged with an id the relay echoes in its single response.
///
/// ```text
/// ClientFrame = version:u8 (= WIRE_VERSION) || request_id:varint u64 || request:Request
/// ```
///
/// The encoded frame must not exceed [`MAX_FRAME_LEN`]: the relay rejects larger frames. A
/// [`Request::Send`] with many large parts can exceed it even though each field is in bounds,
/// so senders check `to_bytes().len()` and split recipients over several sends if needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the device, unique among its requests in flight on this connection.
    pub request_id: u64,
    /// The request.
    pub request: Request,
}

impl ClientFrame {
    /// The versioned canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode_versioned(WIRE_VERSION, self)
    }

    /// Decodes a frame, rejecting other versions, frames over [`MAX_FRAME_LEN`], fields over
    /// their limits and non-canonical encodings.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode_versioned(bytes, WIRE_VERSION, MAX_FRAME_LEN)
    }
}

/// What a device asks of the relay. Append-only: never reorder or remove a variant.
///
/// ```text
/// Request = tag:varint u32 || fields
///   0 Authenticate   || device_id:[16] || signature:[64]
///   1 Register       || Register
///   2 PublishPrekeys || PrekeyUpload
///   3 Lookup         || handle:Handle
///   4 FetchBundles   || account_key:[32] || devices:varint n (≤ 16) || n × [16]
///   5 Send           || SendRequest
///   6 Ack            || deliveries:varint n (≤ 256) || n × varint u64
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Answers the connection's challenge as an existing device: `signature` is
    /// [`sign_auth`](super::sign_auth) over the challenge. Answered with [`Response::Ok`](super::Response).
    Authenticate {
        /// The device's id; the relay looks up its certified signing key.
        device_id: DeviceId,
        /// The device's signature over [`auth_transcript`](super::auth_transcript).
        #[serde(with = "crate::encoding::array")]
        signature: [u8; 64],
    },
    /// Registers a new account or adds a device to an existing one, and authenticates the
    /// connection as that device. Boxed because it is much larger than the other requests
    /// (the encoding is that of the `Register` itself).
    Register(Box<Register>),
    /// Publishes prekeys for the authenticated device.
    PublishPrekeys(PrekeyUpload),
    /// Looks up a handle in the directory; answered with `Response::Account`.
    Lookup {
        /// The handle to look up.
        handle: Handle,
    },
    /// Fetches prekey bundles; answered with `Response::Bundles`. Each one-time prekey handed out
    /// is consumed.
    FetchBundles {
        /// The account whose devices are wanted.
        account_key: AccountPublicKey,
        /// The devices wanted; empty means every device of the account.
        devices: BoundedVec<DeviceId, MAX_DEVICES_PER_ACCOUNT>,
    },
    /// Stores one message for several devices; answered with `Response::Accepted`.
    Send(SendRequest),
    /// Acknowledges deliveries, which the relay then deletes; answered with `Response::Ok`.
    Ack {
        /// The acknowledged mailbox entries.
        deliveries: BoundedVec<DeliveryId, MAX_ACKS_PER_FRAME>,
    },
}

/// Registration of a device, under a new or existing account.
///
/// ```text
/// Register = handle:Handle || certificate:DeviceCertificate || prekeys:PrekeyUpload
///            || invite:(0x00 | 0x01 || varint len (≤ 64) || bytes) || signature:[64]
/// ```
///
/// A handle not yet taken creates an account with the certificate's account key. A taken
/// handle adds the device when the account key equals the certificate's; otherwise the relay
/// answers `HandleTaken`. `signature` is the new device's answer to the challenge, over the same
/// transcript as [`Request::Authenticate`], under the certificate's signing key. `prekeys` must
/// satisfy [`PrekeyUpload::is_complete_for_registration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The account's handle.
    pub handle: Handle,
    /// The account key's certificate for this device.
    pub certificate: DeviceCertificate,
    /// The device's initial prekeys.
    pub prekeys: PrekeyUpload,
    /// An invite token, when the relay requires one.
    pub invite: Option<BoundedBytes<MAX_INVITE_TOKEN_LEN>>,
    /// The device's signature over [`auth_transcript`](super::auth_transcript).
    #[serde(with = "crate::encoding::array")]
    pub signature: [u8; 64],
}

/// One message for several devices: a shared body stored once, plus an optional small part
/// per recipient.
///
/// ```text
/// SendRequest = client_message_id:[16] || body:varint len (≤ 196608) || bytes
///               || recipients:varint n (≤ 512) || n × Recipient
/// ```
///
/// Resending the same `client_message_id` (for example after a lost response) is idempotent:
/// the relay stores the message once and answers `Accepted` again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// Random id chosen by the sender, making retries idempotent.
    pub client_message_id: [u8; 16],
    /// The opaque shared body (for example a sealed group message).
    pub body: BoundedBytes<MAX_BODY_LEN>,
    /// The recipient devices.
    pub recipients: BoundedVec<Recipient, MAX_RECIPIENTS>,
}

/// One recipient device of a [`SendRequest`].
///
/// ```text
/// Recipient = device_id:[16] || part:(0x00 | 0x01 || varint len (≤ 16384) || bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The recipient device's mailbox.
    pub device_id: DeviceId,
    /// Content for this device only (for example a sealed sender-key distribution).
    pub part: Option<BoundedBytes<MAX_PART_LEN>>,
}
