//! The network relay: TLS, WebSocket, device authentication, requests, live delivery.
//!
//! ## Shape
//!
//! - [`Relay::serve`] runs a [`listener::Listener`] (the accept loop and the connection caps)
//!   and an expiry sweeper ([`observe::sweep`]) until its shutdown token is cancelled, then waits for every
//!   connection task to finish (bounded by [`DRAIN_TIMEOUT`]).
//! - Each accepted TCP connection runs in its own task ([`handshake`]): TLS handshake,
//!   WebSocket handshake, the signed challenge ([`auth`]), then one loop ([`connection`]) that
//!   multiplexes
//!   incoming frames ([`handlers`]), wake-ups from the [`registry`] (queue pushes by
//!   [`delivery`]), pings and shutdown.
//! - With a store shared by several relay nodes ([`Store::take_wakeups`] is `Some`), a
//!   `wakeups` task turns the other nodes' wake-ups into registry wake-ups here.
//! - [`RelayHandle`] gives the admin listener live connection counts.
//!
//! ## Privacy (ARCHITECTURE.md, "What the relay may know and keep")
//!
//! Nothing here logs envelope bodies or parts, a sender together with a recipient, or client
//! IP addresses (unless [`RelaySettings::log_client_ips`]). Connection lifecycle is logged at
//! `debug`, failures by kind only.

mod auth;
mod clock;
mod connection;
mod delivery;
mod handlers;
mod handshake;
mod limits;
mod listener;
mod observe;
mod registry;
mod settings;
mod wakeups;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kith_protocol::consts::MAX_RELAY_NAME_LEN;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::{Registration, RelaySettings};

use self::limits::{BundleLimiter, SendLimiter};
use self::listener::Listener;
use self::registry::Registry;
use crate::store::Store;

/// How long [`Relay::serve`] waits for connection tasks to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The network relay over a [`Store`]. Build it with [`Relay::new`], keep a [`RelayHandle`]
/// for statistics, then run it with [`Relay::serve`].
pub struct Relay<S: Store> {
    shared: Arc<Shared<S>>,
}

/// What every connection task of one relay shares.
struct Shared<S> {
    /// The storage engine.
    store: Arc<S>,
    /// The relay's settings.
    settings: RelaySettings,
    /// Which device is connected where.
    registry: Arc<Registry>,
    /// Per-device send rate limits.
    limiter: SendLimiter,
    /// Per requester and target limits on prekey-bundle fetches.
    bundle_limiter: BundleLimiter,
    /// Live connection counts.
    counters: Arc<Counters>,
}

/// Live connection counts, shared with [`RelayHandle`].
#[derive(Debug, Default)]
struct Counters {
    /// Open connections (authenticated or not).
    connections: AtomicUsize,
    /// Open connections that have authenticated.
    authenticated: AtomicUsize,
}

/// A cheap, cloneable view of a running relay, for the admin listener and `stats`.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    counters: Arc<Counters>,
}

/// Live statistics of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RelayStats {
    /// Open connections (authenticated or not).
    pub connections: usize,
    /// Open connections that have authenticated as a device.
    pub authenticated: usize,
}

/// Why [`Relay::serve`] could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A setting is out of range; names the setting.
    #[error("invalid relay setting: {0}")]
    InvalidSettings(&'static str),
    /// The listening socket failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

impl<S: Store> Relay<S> {
    /// A relay serving `store` with `settings`. Nothing runs until [`Relay::serve`].
    pub fn new(store: Arc<S>, settings: RelaySettings) -> Self {
        let limiter = SendLimiter::new(settings.send_rate_per_second, settings.send_burst);
        let bundle_limiter = BundleLimiter::new(
            settings.bundle_fetches_per_hour,
            settings.bundle_fetch_burst,
        );
        Self {
            shared: Arc::new(Shared {
                store,
                settings,
                registry: Arc::new(Registry::default()),
                limiter,
                bundle_limiter,
                counters: Arc::new(Counters::default()),
            }),
        }
    }

    /// A handle for live statistics; stays valid after the relay stops.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            counters: Arc::clone(&self.shared.counters),
        }
    }

    /// Serves connections from `listener` until `shutdown` is cancelled, then drains: stops
    /// accepting, lets each connection finish the request it is handling and close with 1001,
    /// and waits for all connection tasks (at most [`DRAIN_TIMEOUT`]).
    ///
    /// `tls = None` serves plain `ws://`, for a relay behind a TLS-terminating proxy only
    /// (authentication then has no channel binding). The caller installs the rustls
    /// `CryptoProvider` and builds the `ServerConfig`. The store is not closed here: the
    /// caller closes it after `serve` returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: CancellationToken,
    ) -> Result<(), RelayError> {
        validate(&self.shared.settings)?;
        tracing::info!(
            address = %listener.local_addr()?,
            tls = tls.is_some(),
            "relay listening"
        );
        let tracker = TaskTracker::new();
        tracker.spawn(observe::sweep(Arc::clone(&self.shared), shutdown.clone()));
        if let Some(wakeups) = self.shared.store.take_wakeups() {
            tracker.spawn(wakeups::forward(
                Arc::clone(&self.shared.registry),
                wakeups,
                shutdown.clone(),
            ));
        }
        Listener::new(Arc::clone(&self.shared), listener, tls, tracker.clone())
            .run(&shutdown)
            .await;
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = tracker.len(),
                "connections still open after the drain timeout"
            );
        }
        tracing::debug!("relay stopped");
        Ok(())
    }
}

impl RelayHandle {
    /// Current connection counts.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            authenticated: self.counters.authenticated.load(Ordering::Relaxed),
        }
    }
}

/// Checks the settings `serve` cannot work without.
fn validate(settings: &RelaySettings) -> Result<(), RelayError> {
    let checks = [
        (
            settings.relay_name.len() <= MAX_RELAY_NAME_LEN,
            "relay_name is too long",
        ),
        (!settings.relay_name.is_empty(), "relay_name is empty"),
        (settings.max_connections > 0, "max_connections is 0"),
        (settings.max_unauthenticated > 0, "max_unauthenticated is 0"),
        (
            settings.max_frame_len >= 1024,
            "max_frame_len is below 1 KiB",
        ),
        (!settings.idle_timeout.is_zero(), "idle_timeout is 0"),
        (!settings.auth_timeout.is_zero(), "auth_timeout is 0"),
        (
            !settings.expiry_sweep_interval.is_zero(),
            "expiry_sweep_interval is 0",
        ),
    ];
    match checks.into_iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(RelayError::InvalidSettings(what)),
        None => Ok(()),
    }
}
