//! Every protocol constant, with the reason for its value (SPEC.md §1, "Constants").
//!
//! An independent implementation must use exactly these values; changing any of them is a
//! protocol version change.

/// Protocol version carried in certificates, prekey messages, sealed envelopes and wire frames.
pub const PROTOCOL_VERSION: u8 = 1;

/// Maximum number of message keys skipped *in one chain* by a single incoming message
/// (Double Ratchet `MAX_SKIP`). Bounds the work an attacker can force with a large message
/// number, while tolerating realistic loss and reordering.
pub const MAX_SKIP: u32 = 1000;

/// Maximum number of skipped message keys stored per session across all chains. When full,
/// the oldest key is evicted (and that message can no longer be decrypted). Bounds memory and
/// the size of a persisted session.
pub const MAX_SKIPPED_KEYS: usize = 2000;

/// Maximum plaintext accepted by [`crate::Session::encrypt`]: 64 KiB. Larger content
/// (attachments) is out of scope for protocol v1.
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024;

/// Maximum size of one encoded wire frame, and the relay's default WebSocket message limit:
/// 256 KiB. A send frame carries one shared body plus small per-recipient parts, all of which
/// must fit.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Maximum size of an envelope body (the opaque blob the relay stores): 192 KiB, leaving room
/// in a frame for the recipient list.
pub const MAX_BODY_LEN: usize = 192 * 1024;

/// Maximum size of a per-recipient part of a send (e.g. a sealed sender-key distribution).
pub const MAX_PART_LEN: usize = 16 * 1024;

/// Maximum number of recipient devices in one send (a circle of ~100 people with a few
/// devices each).
pub const MAX_RECIPIENTS: usize = 512;

/// Maximum number of one-time prekeys (of each kind) uploaded in one request.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 100;

/// Maximum number of devices per account (and so of bundles in one fetch response).
pub const MAX_DEVICES_PER_ACCOUNT: usize = 16;

/// Maximum number of mailbox entries acknowledged or delivered in one frame.
pub const MAX_ACKS_PER_FRAME: usize = 256;

/// Handle length bounds, in bytes (handles are ASCII `a-z0-9._-`).
pub const HANDLE_MIN_LEN: usize = 3;
/// See [`HANDLE_MIN_LEN`].
pub const HANDLE_MAX_LEN: usize = 32;

/// Maximum length of an invite token, in bytes.
pub const MAX_INVITE_TOKEN_LEN: usize = 64;

/// Maximum length of the relay name used in the authentication transcript.
pub const MAX_RELAY_NAME_LEN: usize = 253;

/// Maximum length of the human-readable detail in an error frame. The detail never contains
/// user data; it is a short hint for operators and developers.
pub const MAX_ERROR_DETAIL_LEN: usize = 256;

/// Padding bucket sizes for sealed content, in bytes, in increasing order (SPEC.md §7.3).
/// Content longer than the largest bucket is padded to a multiple of [`PADDING_LARGE_STEP`].
pub const PADDING_BUCKETS: [usize; 8] = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

/// Step for padding content larger than the largest entry of [`PADDING_BUCKETS`].
pub const PADDING_LARGE_STEP: usize = 32768;

/// Number of SHA-512 iterations for a safety-number fingerprint (as in Signal's
/// `NumericFingerprint`): makes a targeted second-preimage search expensive.
pub const SAFETY_NUMBER_ITERATIONS: u32 = 5200;

/// Version of the safety number and its scannable form.
pub const SAFETY_NUMBER_VERSION: u8 = 1;

/// Version of the persisted session byte form ([`crate::Session::to_bytes`]).
pub const SESSION_STATE_VERSION: u8 = 1;

/// Maximum size of a persisted session: bounded because the skipped-key store is bounded.
pub const MAX_SESSION_STATE_LEN: usize = 512 * 1024;

/// Version byte of the message content ([`crate::Content`], SPEC.md §13): the plaintext that
/// clients encrypt with [`crate::Session::encrypt`]. Versioned on its own, like the persisted
/// session, so the content format can change without a new ratchet or wire version.
pub const CONTENT_VERSION: u8 = 1;

/// Maximum length of the text of a message, in bytes of UTF-8: 32 KiB. The largest content
/// (text, two handles and fixed fields, about 32.9 KB) stays well below [`MAX_PLAINTEXT_LEN`],
/// and inside a prekey message with the sender certificate its sealed envelope (64 KiB padded)
/// stays well below [`MAX_BODY_LEN`], so any text that fits this limit can always be sent in
/// one envelope, even as the first message of a session.
pub const MAX_TEXT_LEN: usize = 32 * 1024;

/// Maximum number of members of a group (SPEC.md §14.1). Circles are 3 to 50 people; 64
/// leaves headroom while keeping a signed group state (≈ 4.4 KB) small enough for one 1:1
/// message and bounding the fan-out of a group send (64 members × a few devices ≤
/// [`MAX_RECIPIENTS`]).
pub const MAX_GROUP_MEMBERS: usize = 64;

/// Maximum length of a group's name, in bytes of UTF-8: a short label, shown in lists.
pub const MAX_GROUP_NAME_LEN: usize = 64;

/// Maximum number of message keys a single group message may skip in one sender-key chain
/// (SPEC.md §14.5): the group analogue of [`MAX_SKIP`], with the same reason.
pub const MAX_GROUP_SKIP: u32 = 1000;

/// Maximum number of skipped message keys stored per peer sender key; the oldest is evicted
/// first. Bounds memory and the size of a persisted [`crate::PeerSenderKey`].
pub const MAX_GROUP_SKIPPED_KEYS: usize = 2000;

/// First byte of a group envelope (SPEC.md §14.7). Distinct from the sealed-sender envelope's
/// first byte ([`PROTOCOL_VERSION`]), so a receiver knows which kind of body it holds without
/// trying to open it both ways.
pub const GROUP_ENVELOPE_VERSION: u8 = 0x11;

/// Version byte of an encoded group state (SPEC.md §14.1); it is part of the signed bytes.
pub const GROUP_STATE_VERSION: u8 = 1;

/// Version byte of a group message (SPEC.md §14.6); part of the header bound as associated
/// data and covered by the signature.
pub const GROUP_MESSAGE_VERSION: u8 = 1;

/// Version byte of the persisted sender keys ([`crate::OwnSenderKey::to_bytes`],
/// [`crate::PeerSenderKey::to_bytes`]), versioned on their own like the persisted session.
pub const SENDER_KEY_STATE_VERSION: u8 = 1;

/// Domain-separation labels. Every signature and every KDF in Kith starts from one of these
/// ASCII strings (SPEC.md §1.2), so that no signed or derived value can be confused with
/// another.
pub mod labels {
    /// Prefix of the bytes an account key signs to certify a device.
    pub const DEVICE_CERTIFICATE: &[u8] = b"Kith-v1 device certificate";
    /// Prefix of the bytes a device signing key signs for a signed X25519 prekey.
    pub const SIGNED_PREKEY: &[u8] = b"Kith-v1 signed prekey";
    /// Prefix of the bytes a device signing key signs for an ML-KEM-768 prekey.
    pub const KEM_PREKEY: &[u8] = b"Kith-v1 kem prekey";
    /// HKDF info for the PQXDH shared secret.
    pub const PQXDH_INFO: &[u8] = b"Kith-v1 PQXDH X25519 ML-KEM-768 SHA-256";
    /// HKDF info for the Double Ratchet root KDF.
    pub const RATCHET_ROOT_INFO: &[u8] = b"Kith-v1 ratchet root";
    /// HKDF info for expanding a message key into AEAD key and nonce.
    pub const MESSAGE_KEYS_INFO: &[u8] = b"Kith-v1 message keys";
    /// HKDF info for the sealed-sender envelope key.
    pub const SEALED_SENDER_INFO: &[u8] = b"Kith-v1 sealed sender";
    /// Prefix of the sealed-sender associated data.
    pub const SEALED_SENDER_AD: &[u8] = b"Kith-v1 sealed";
    /// Prefix of the bytes a device signs to authenticate to a relay.
    pub const RELAY_AUTH: &[u8] = b"Kith-v1 relay auth";
    /// TLS exporter label (RFC 8446 §7.5, RFC 5705) for the 32-byte channel binding that a
    /// device includes in its relay authentication when it speaks TLS to the relay directly.
    pub const TLS_EXPORTER: &[u8] = b"EXPORTER-Kith-v1 channel binding";
    /// Prefix of the safety-number fingerprint hash input.
    pub const SAFETY_NUMBER: &[u8] = b"Kith-v1 safety number";
    /// Prefix of the bytes an account key signs for a group state (SPEC.md §14.2).
    pub const GROUP_STATE: &[u8] = b"Kith-v1 group state";
    /// Prefix of the SHA-256 input that hashes a signed group state into the next state's
    /// `previous_hash` (SPEC.md §14.2).
    pub const GROUP_STATE_HASH: &[u8] = b"Kith-v1 group state hash";
    /// HKDF info for expanding a sender-key message seed into AEAD key and nonce (§14.5).
    pub const GROUP_MESSAGE_KEYS_INFO: &[u8] = b"Kith-v1 group message keys";
    /// Prefix of the bytes a sender key's signing key signs for a group message (§14.6).
    pub const GROUP_MESSAGE: &[u8] = b"Kith-v1 group message";
    /// HKDF info prefix of the group envelope key, followed by group id and epoch (§14.7).
    pub const GROUP_ENVELOPE_INFO: &[u8] = b"Kith-v1 group envelope";
}
