//! # kith-relay
//!
//! The Kith relay: the server an organisation self-hosts so its members' devices can find each
//! other's keys and leave each other sealed messages. It is untrusted for content and kept as
//! blind as practical about who talks to whom (ARCHITECTURE.md, "What the relay may know and
//! keep").
//!
//! ## What exists so far
//!
//! Only the **storage layer**, [`store`]: the [`store::Store`] trait (accounts, devices,
//! prekeys with exactly-once one-time hand-out, mailboxes with durable append, list,
//! delete-on-ack and expiry, invites), its embedded engine [`store::SledStore`] with group
//! commit, and an engine-generic conformance suite (`store::conformance`, built for tests and
//! with the `conformance` feature).
//!
//! ## Not built yet (issue #3 continues)
//!
//! The network relay: TLS and WebSocket server, device authentication, registration and the
//! request handlers, limits, metrics, and the `kith-relay serve` / `invite` / `stats` /
//! `check-config` command line. This crate has no binary yet. The PostgreSQL engine is issue
//! #6.
#![forbid(unsafe_code)]

pub mod store;
