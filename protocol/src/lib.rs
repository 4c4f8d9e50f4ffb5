//! # kith-protocol
//!
//! The Kith end-to-end encryption protocol: identities and device certificates, PQXDH-style
//! hybrid key agreement (X25519 + ML-KEM-768), the Double Ratchet with ChaCha20-Poly1305,
//! sealed-sender envelopes, safety numbers, and the client ↔ relay wire format.
//!
//! The normative description is `SPEC.md` next to this crate; item docs cite its sections.
//!
//! This crate is pure: no I/O, no async, no clock, no global randomness. Callers pass a
//! cryptographically secure RNG (`rand_core::CryptoRng`) and the current time where needed.
//!
//! ## Public interface
//!
//! - Keys: [`AccountKeyPair`], [`DeviceKeyPair`], [`DeviceCertificate`] →
//!   [`VerifiedCertificate`], prekeys ([`SignedPrekeySecret`], [`OneTimePrekeySecret`],
//!   [`KemPrekeySecret`]) and [`PrekeyBundle`] → [`VerifiedBundle`].
//! - Sessions: [`Session::initiate`], [`Session::respond`], [`Session::encrypt`],
//!   [`Session::decrypt`], persisted with [`Session::to_bytes`] / [`Session::from_bytes`].
//! - Sealed sender: [`seal`] and [`open`].
//! - Safety numbers: [`SafetyNumber`].
//! - Message content, the plaintext inside a session: [`Content`] with its [`Body`],
//!   [`Content::to_bytes`] / [`Content::from_bytes`].
//! - Groups (SPEC.md §14): [`GroupState::genesis`] → [`SignedGroupState`] →
//!   [`VerifiedGroupState`] ([`SignedGroupState::verify_genesis`],
//!   [`SignedGroupState::accept_invitation`], [`VerifiedGroupState::verify_successor`]),
//!   changed with [`VerifiedGroupState::successor`] and a [`GroupChange`]; sender keys
//!   [`OwnSenderKey`] → [`SenderKeyDistribution`] → [`PeerSenderKey`] encrypting and
//!   decrypting [`GroupMessage`]s; group envelopes [`seal_group`] and [`open_group`].
//! - The relay protocol: the [`wire`] module.
//! - Every constant: [`consts`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aead;
mod agreement;
pub mod consts;
mod content;
mod dh;
mod encoding;
mod group;
mod kdf;
mod kem;
mod keys;
mod padding;
mod ratchet;
mod sealed;
mod session;
#[cfg(test)]
mod vectors;

pub use agreement::ResponderPrekeys;
pub use content::{Body, Content};
pub use dh::NonContributoryKey;
pub use encoding::{BoundedBytes, BoundedString, BoundedVec, DecodeError};
pub use group::{
    GroupChange, GroupDecryptError, GroupEncryptError, GroupId, GroupMessage, GroupOpenError,
    GroupSealError, GroupState, GroupStateError, Member, OwnSenderKey, PeerSenderKey,
    SenderKeyDistribution, SignedGroupState, VerifiedGroupState, open_group, seal_group,
};
pub use keys::{
    AccountKeyPair, AccountPublicKey, BundleError, CertificateError, DeviceCertificate, DeviceId,
    DeviceKeyPair, DeviceSigningPublicKey, IdentityPublicKey, KemPrekey, KemPrekeyKind,
    KemPrekeySecret, KemPublicKey, OneTimePrekey, OneTimePrekeySecret, PrekeyBundle, PrekeyId,
    SignedPrekey, SignedPrekeySecret, VerifiedBundle, VerifiedCertificate,
};
pub use rand_core;
mod safety;
pub mod wire;

pub use safety::{SafetyNumber, SafetyNumberError};
pub use sealed::{OpenError, OpenedEnvelope, SealError, open, seal};
pub use session::{
    DecryptError, EncryptError, PeerIdentity, PrekeyMessage, RatchetMessage, Session,
    SessionCreationError, SessionMessage,
};
