//! The device's connection to its relay: `wss://` URLs, how the relay's certificate is trusted,
//! where TLS ends ([`TlsTermination`], which decides the login's channel binding), and
//! [`Link`], one authenticated WebSocket connection with request/response pairing and the
//! relay's pushes buffered in arrival order.
//!
//! Layers, bottom up: [`transport`] (TCP and TLS, the channel binding), [`websocket`] (the
//! handshake and its limits), [`reader`] (the task that owns the receiving half), [`link`].

mod error;
mod link;
mod pin;
mod reader;
mod termination;
mod tls;
mod transport;
mod url;
mod websocket;

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tls_tests;

pub use error::LinkError;
pub(crate) use link::Link;
pub use link::Push;
pub use termination::TlsTermination;
pub use tls::{FingerprintError, Trust, parse_fingerprint};
pub use url::{RelayUrl, UrlError};
