//! # kith — the Kith reference client
//!
//! Everything a device does, as a library: the account and this device's keys, sessions with
//! every contact device, sealed sending and receiving, an encrypted local store, and the link to
//! the relay. The `kith` binary is a thin command line over it; tests and the benchmark driver
//! use it directly.
//!
//! All encryption happens here, on the device: the relay sees recipient device ids and opaque
//! sealed envelopes, never plaintext, never who sent an envelope.
//!
//! ## Public interface
//!
//! - [`Client`]: [`Client::init`], [`Client::open`], [`Client::send_text`],
//!   [`Client::receive`] (or [`Client::next_push`] + [`Client::process`] for interactive use),
//!   [`Client::history`], [`Client::contacts`], [`Client::verification`], [`Client::confirm`].
//! - Where and how: [`Home`], [`Passphrase`], [`KdfParams`], [`RelayUrl`], [`Trust`],
//!   [`TlsTermination`] (a relay behind a TLS-terminating proxy: [`Client::init_with_termination`]).
//! - [`Error`], written for the person at the keyboard.
#![forbid(unsafe_code)]

mod client;
mod error;
mod home;
mod relay;
mod store;

pub use client::{
    Client, Contact, Event, GroupInfo, GroupMember, GroupSent, InitOptions, Message, Sent,
    Verification,
};
pub use error::Error;
pub use home::Home;
pub use relay::{
    FingerprintError, LinkError, Push, RelayUrl, TlsTermination, Trust, UrlError, parse_fingerprint,
};
pub use store::{KdfParams, Passphrase, StoreError};
