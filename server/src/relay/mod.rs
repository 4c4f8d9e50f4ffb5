//! The network relay: TLS, WebSocket, authentication, requests, live delivery. Being written.

mod settings;

pub use settings::{Registration, RelaySettings};
