//! Frames the relay sends to a device (SPEC.md §9.5).

use serde::{Deserialize, Serialize};

use super::{DeliveryId, ErrorFrame, WIRE_VERSION};
use crate::consts::{
    MAX_BODY_LEN, MAX_DEVICES_PER_ACCOUNT, MAX_FRAME_LEN, MAX_PART_LEN, MAX_RELAY_NAME_LEN,
};
use crate::encoding::{self, BoundedBytes, BoundedString, BoundedVec, DecodeError};
use crate::keys::{AccountPublicKey, DeviceCertificate, PrekeyBundle};

/// A frame from the relay. Append-only: never reorder or remove a variant.
///
/// ```text
/// ServerFrame = version:u8 (= WIRE_VERSION) || tag:varint u32 || fields
///   0 Challenge      || nonce:[32] || relay_name:varint len (≤ 253) || UTF-8 bytes
///   1 Response       || request_id:varint u64 || response:Response
///   2 Deliver        || Delivery
///   3 QueueDrained
///   4 PrekeyCountLow || one_time_prekeys:varint u32 || one_time_kem_prekeys:varint u32
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The first frame on every connection: the device signs `nonce` to authenticate.
    Challenge {
        /// Fresh random bytes, never reused.
        nonce: [u8; 32],
        /// The relay's name, for display and diagnostics. The device signs the name it
        /// meant to connect to, not this one.
        relay_name: BoundedString<MAX_RELAY_NAME_LEN>,
    },
    /// The one response to the request with `request_id`.
    Response {
        /// The id of the request answered.
        request_id: u64,
        /// The outcome.
        response: Response,
    },
    /// A stored message for this device, pushed by the relay.
    Deliver(Delivery),
    /// Everything queued when the device authenticated has been pushed.
    QueueDrained,
    /// The device is running out of one-time prekeys and should publish more.
    PrekeyCountLow {
        /// One-time X25519 prekeys left on the relay.
        one_time_prekeys: u32,
        /// One-time ML-KEM prekeys left on the relay.
        one_time_kem_prekeys: u32,
    },
}

impl ServerFrame {
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

/// The outcome of a request. Append-only: never reorder or remove a variant.
///
/// ```text
/// Response = tag:varint u32 || fields
///   0 Ok
///   1 Account  || account_key:[32] || devices:varint n (≤ 16) || n × DeviceCertificate
///   2 Bundles  || bundles:varint n (≤ 16) || n × PrekeyBundle
///   3 Accepted || client_message_id:[16]
///   4 Error    || ErrorFrame
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Success without data: authenticated, registered, published or acknowledged.
    Ok,
    /// A directory entry: the account key behind a handle and its device certificates. The
    /// device verifies each certificate against `account_key` before use.
    Account {
        /// The account's public key.
        account_key: AccountPublicKey,
        /// The certificates of the account's devices.
        devices: BoundedVec<DeviceCertificate, MAX_DEVICES_PER_ACCOUNT>,
    },
    /// Prekey bundles, one per device asked for and known; verify each before use.
    Bundles {
        /// The bundles.
        bundles: BoundedVec<PrekeyBundle, MAX_DEVICES_PER_ACCOUNT>,
    },
    /// The message with this id is stored for every recipient.
    Accepted {
        /// The sender's id for the message, echoed.
        client_message_id: [u8; 16],
    },
    /// The request failed.
    Error(ErrorFrame),
}

/// A stored message pushed to its recipient device.
///
/// ```text
/// Delivery = delivery_id:varint u64 || arrived_at:varint u64
///            || body:varint len (≤ 196608) || bytes
///            || part:(0x00 | 0x01 || varint len (≤ 16384) || bytes)
/// ```
///
/// A delivery stays in the mailbox until the device acknowledges `delivery_id`, so it may be
/// pushed again after a reconnect; devices deduplicate by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The mailbox entry, to acknowledge with `Request::Ack`.
    pub delivery_id: DeliveryId,
    /// When the relay stored the message, in seconds since the Unix epoch (relay clock).
    pub arrived_at: u64,
    /// The shared body of the send.
    pub body: BoundedBytes<MAX_BODY_LEN>,
    /// The part addressed to this device, if any.
    pub part: Option<BoundedBytes<MAX_PART_LEN>>,
}
