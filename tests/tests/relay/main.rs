//! End-to-end tests of the relay: one integration binary, one module per area.
//!
//! Every test starts its own relay on `127.0.0.1:0` with a temporary data directory and talks
//! to it over real TLS and WebSocket. Waits are bounded by timeouts; nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin;
mod auth;
mod concurrency;
mod directory;
mod hostile;
mod limits;
mod mailbox;

use std::time::Duration;

use kith_protocol::wire::{ErrorKind, Response};

/// Wait for something the relay should do promptly.
pub(crate) const WAIT: Duration = kith_tests::WAIT;

/// How long to watch for a close that must happen.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The error kind of an error response.
pub(crate) fn error_kind(response: &Response) -> Option<ErrorKind> {
    match response {
        Response::Error(frame) => Some(frame.kind),
        _ => None,
    }
}

/// Asserts that `response` is an error of `kind`.
#[track_caller]
pub(crate) fn assert_error(response: &Response, kind: ErrorKind) {
    assert_eq!(
        error_kind(response),
        Some(kind),
        "expected {kind:?}, got {response:?}"
    );
}

/// Asserts that `response` is `Accepted` for `id`.
#[track_caller]
pub(crate) fn assert_accepted(response: &Response, id: [u8; 16]) {
    assert_eq!(
        response,
        &Response::Accepted {
            client_message_id: id
        },
        "expected Accepted"
    );
}

/// A client message id made from a number (unique within a test).
pub(crate) fn message_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..].copy_from_slice(b"kithtest");
    id
}
