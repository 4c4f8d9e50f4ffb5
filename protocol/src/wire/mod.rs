//! Client ↔ relay wire format (SPEC.md §9).
//!
//! Each WebSocket binary message carries exactly one frame:
//!
//! ```text
//! frame = version:u8 (= WIRE_VERSION) || postcard(ClientFrame | ServerFrame)
//! ```
//!
//! encoded canonically (SPEC.md §2): postcard varints must be minimal, nothing may follow the
//! frame, every variable-length field has a limit from [`crate::consts`] that is enforced while
//! decoding, and no frame may exceed [`MAX_FRAME_LEN`](crate::consts::MAX_FRAME_LEN). Decoding
//! never panics; the relay answers a malformed frame with an error frame or closes the
//! connection.
//!
//! A device sends [`ClientFrame`]s, each a [`Request`] with an id; the relay answers each with
//! exactly one [`ServerFrame::Response`] and pushes [`ServerFrame::Deliver`] on its own. The
//! first frame of every connection is a [`ServerFrame::Challenge`], answered by
//! [`Request::Authenticate`] or [`Request::Register`] signed as in [`auth_transcript`].
//!
//! # Compatibility
//!
//! Enums are encoded by variant index, so every enum in this module is **append only**: never
//! reorder, remove or change the fields of a variant, only add new ones at the end. Any other
//! change is a new [`WIRE_VERSION`].

mod auth;
mod client;
mod error;
mod handle;
mod server;
mod upload;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use auth::{AuthError, auth_transcript, sign_auth, verify_auth};
pub use client::{ClientFrame, DeliveryId, Recipient, Register, Request, SendRequest};
pub use error::{ErrorFrame, ErrorKind};
pub use handle::{Handle, HandleError};
pub use server::{Delivery, Response, ServerFrame};
pub use upload::{PrekeyUpload, PrekeyUploadError};

/// Version byte that starts every wire frame.
pub const WIRE_VERSION: u8 = crate::consts::PROTOCOL_VERSION;
