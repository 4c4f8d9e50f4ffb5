//! # kith-relay
//!
//! The Kith relay: the server an organisation self-hosts so its members' devices can find each
//! other's keys and leave each other sealed messages. It is untrusted for content and kept as
//! blind as practical about who talks to whom (ARCHITECTURE.md, "What the relay may know and
//! keep").
//!
//! ## Layout
//!
//! - [`store`]: the [`store::Store`] trait and its engines (sled; PostgreSQL is issue #6).
//! - [`relay`]: the network relay — TLS, WebSocket, device authentication, requests, delivery.
//! - [`config`]: the TOML configuration with `KITH_RELAY_*` overrides.
//! - [`tls`]: certificates, including the self-signed development certificate.
//! - [`admin`]: the loopback admin listener (`/healthz`, `/metrics`, invites, stats).
//! - [`metrics`]: metric names.
//! - [`backup`]: `kith-relay backup` and `restore` of a sled relay's data.
//! - [`migrate`]: `kith-relay migrate`, copying a stopped relay's sled store into PostgreSQL.
//! - [`service`]: starts and stops everything; `main.rs` only parses arguments and calls it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod backup;
pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod migrate;
pub mod relay;
pub mod service;
pub mod store;
pub mod tls;
