//! Metrics (names exported by the admin listener) and the periodic expiry sweep.
//!
//! Metric names are fixed: operators' dashboards use them. Labels never carry user data.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use kith_protocol::wire::{ErrorFrame, ErrorKind, Response};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{Counters, Shared, clock};
use crate::store::{Store, StoreError};

/// Gauge: open connections.
const CONNECTIONS: &str = "kith_connections";
/// Gauge: authenticated connections.
const CONNECTIONS_AUTHENTICATED: &str = "kith_connections_authenticated";
/// Gauge: queued mailbox entries.
const QUEUE_ENTRIES: &str = "kith_queue_entries";
/// Gauge: queued bytes.
const QUEUE_BYTES: &str = "kith_queue_bytes";
/// Counter: sends accepted (one per accepted, non-duplicate send).
const ENVELOPES_ACCEPTED: &str = "kith_envelopes_accepted_total";
/// Counter: deliveries pushed to devices.
const ENVELOPES_DELIVERED: &str = "kith_envelopes_delivered_total";
/// Counter: mailbox entries expired unread.
const ENVELOPES_EXPIRED: &str = "kith_envelopes_expired_total";
/// Counter: errors, labelled `kind`.
const ERRORS: &str = "kith_errors_total";
/// Counter: requests, labelled `request`.
const REQUESTS: &str = "kith_requests_total";

/// Error kinds that are not wire [`ErrorKind`]s.
pub(super) mod kind {
    /// An undecodable, non-binary or oversized frame.
    pub(in crate::relay) const MALFORMED_FRAME: &str = "malformed_frame";
    /// A failed WebSocket upgrade (not an HTTP upgrade request, bad headers).
    pub(in crate::relay) const WS_HANDSHAKE: &str = "ws_handshake";
    /// A failed or timed-out TLS handshake.
    pub(in crate::relay) const TLS_HANDSHAKE: &str = "tls_handshake";
    /// No successful authentication within the time allowed.
    pub(in crate::relay) const AUTH_TIMEOUT: &str = "auth_timeout";
    /// A connection refused because a connection cap was reached.
    pub(in crate::relay) const CONNECTION_CAP: &str = "connection_cap";
}

/// Counts one error of `kind` (a snake_case name).
pub(super) fn count_error(kind: &'static str) {
    metrics::counter!(ERRORS, "kind" => kind).increment(1);
}

/// Counts one request of type `request`.
pub(super) fn count_request(request: &'static str) {
    metrics::counter!(REQUESTS, "request" => request).increment(1);
}

/// Counts one accepted send.
pub(super) fn count_accepted() {
    metrics::counter!(ENVELOPES_ACCEPTED).increment(1);
}

/// Counts `n` pushed deliveries.
pub(super) fn count_delivered(n: u64) {
    metrics::counter!(ENVELOPES_DELIVERED).increment(n);
}

/// The snake_case metric name of a wire error kind.
pub(super) fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::NotFound => "not_found",
        ErrorKind::MailboxFull => "mailbox_full",
        ErrorKind::RateLimited { .. } => "rate_limited",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::VersionUnsupported => "version_unsupported",
        ErrorKind::HandleTaken => "handle_taken",
        ErrorKind::InviteInvalid => "invite_invalid",
        ErrorKind::Internal => "internal",
        ErrorKind::StorageFull => "storage_full",
        _ => "other",
    }
}

/// An error response, counted. `detail` is a fixed operator hint, never user data.
pub(super) fn error(kind: ErrorKind, detail: &str) -> Response {
    count_error(kind_name(kind));
    Response::Error(ErrorFrame::new(kind, detail))
}

/// The response to a store failure that has no better mapping: logged by kind (the store's
/// errors carry no user data), answered `Internal`. A full disk is answered `StorageFull`
/// and not logged per request (the store logs when it fills up and when space returns).
pub(super) fn store_failure(operation: &'static str, e: &StoreError) -> Response {
    if matches!(e, StoreError::StorageFull) {
        return error(ErrorKind::StorageFull, "storage full");
    }
    tracing::warn!(operation, error = %e, "store operation failed");
    error(ErrorKind::Internal, "storage failure")
}

/// Counts a connection as open while alive (the `kith_connections` gauge and the handle).
#[derive(Debug)]
pub(super) struct ConnectionGauge {
    counters: Arc<Counters>,
}

impl ConnectionGauge {
    /// Counts one more open connection.
    pub(super) fn open(counters: &Arc<Counters>) -> Self {
        let n = counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(CONNECTIONS).set(n as f64);
        Self {
            counters: Arc::clone(counters),
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        let n = self
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(CONNECTIONS).set(n as f64);
    }
}

/// Counts a connection as authenticated while alive.
#[derive(Debug)]
pub(super) struct AuthenticatedGauge {
    counters: Arc<Counters>,
}

impl AuthenticatedGauge {
    /// Counts one more authenticated connection.
    pub(super) fn open(counters: &Arc<Counters>) -> Self {
        let n = counters.authenticated.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(CONNECTIONS_AUTHENTICATED).set(n as f64);
        Self {
            counters: Arc::clone(counters),
        }
    }
}

impl Drop for AuthenticatedGauge {
    fn drop(&mut self) {
        let n = self
            .counters
            .authenticated
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(CONNECTIONS_AUTHENTICATED).set(n as f64);
    }
}

/// Every `expiry_sweep_interval` (and once at start): deletes expired entries, updates the
/// queue gauges and forgets idle rate-limit buckets. Returns on shutdown, never in the middle
/// of a store call.
pub(super) async fn sweep<S: Store>(shared: Arc<Shared<S>>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.settings.expiry_sweep_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        sweep_once(&shared).await;
    }
}

/// One sweep.
async fn sweep_once<S: Store>(shared: &Shared<S>) {
    match shared.store.expire(clock::now()).await {
        Ok(counts) => {
            metrics::counter!(ENVELOPES_EXPIRED).increment(counts.entries);
            if counts.entries > 0 {
                tracing::debug!(entries = counts.entries, "expired mailbox entries");
            }
        }
        Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
    }
    match shared.store.queue_stats().await {
        Ok(stats) => {
            metrics::gauge!(QUEUE_ENTRIES).set(stats.entries as f64);
            metrics::gauge!(QUEUE_BYTES).set(stats.bytes as f64);
        }
        Err(e) => tracing::warn!(error = %e, "queue statistics failed"),
    }
    shared.limiter.forget_idle();
    shared.bundle_limiter.forget_idle();
}
