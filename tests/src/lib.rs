//! End-to-end tests across the Kith crates: a real relay on a loopback port (real TLS, real
//! WebSocket, real sled) driven by a test client built on `kith-protocol`.
//!
//! The client parts, used by the integration tests in `tests/relay/`:
//!
//! - [`TestRelay`]: starts the relay with a temporary data directory, restarts it, creates
//!   invites through the admin listener.
//! - [`TestDevice`]: an account and device with certificate and prekey secrets, from a seed.
//! - [`Connection`]: TLS + WebSocket to the relay, the challenge, request/response pairing and
//!   pushed frames. Every wait has a timeout; nothing sleeps.
//!
//! [`TestDatabase`] gives the tests of relays sharing one PostgreSQL database a fresh database
//! each.
//!
//! The [`cli`] module drives the real `kith` and `kith-relay` executables for the tests in
//! `tests/cli/`.
#![forbid(unsafe_code)]
// Test support: a failed expectation is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bench;
pub mod cli;
pub mod connection;
pub mod database;
pub mod device;
pub mod evil_relay;
pub mod relay;

use std::time::Duration;

pub use connection::{Connection, Push};
pub use database::TestDatabase;
pub use device::{TestDevice, bundle_prekey_ids, rng};
pub use relay::TestRelay;

/// The relay name devices sign for (the relay's default `relay_name`).
pub const RELAY_NAME: &str = "localhost";

/// How long any single wait may take before a test fails. Generous: CI has two cores.
pub const WAIT: Duration = Duration::from_secs(20);
