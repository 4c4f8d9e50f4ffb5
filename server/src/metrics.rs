//! Metric names, their descriptions, and the Prometheus recorder behind `/metrics`.
//!
//! Every metric the relay records is named by a constant here. [`install`] sets the process's
//! global `metrics` recorder once (later calls, e.g. several relays in one test process, share
//! it) and registers the descriptions; the admin listener renders it as Prometheus text.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Gauge: open client connections.
pub const CONNECTIONS: &str = "kith_connections";
/// Gauge: client connections that have authenticated.
pub const CONNECTIONS_AUTHENTICATED: &str = "kith_connections_authenticated";
/// Gauge: mailbox entries queued, all devices together.
pub const QUEUE_ENTRIES: &str = "kith_queue_entries";
/// Gauge: bytes queued (bodies once, plus per-recipient parts).
pub const QUEUE_BYTES: &str = "kith_queue_bytes";
/// Counter: sends stored and answered "accepted" (retried duplicates excluded).
pub const ENVELOPES_ACCEPTED: &str = "kith_envelopes_accepted_total";
/// Counter: envelopes pushed to a connected device.
pub const ENVELOPES_DELIVERED: &str = "kith_envelopes_delivered_total";
/// Counter: mailbox entries deleted unread because their TTL passed.
pub const ENVELOPES_EXPIRED: &str = "kith_envelopes_expired_total";
/// Counter: errors answered or connections closed, by `kind`.
pub const ERRORS: &str = "kith_errors_total";
/// Counter: requests handled, by `request`.
pub const REQUESTS: &str = "kith_requests_total";
/// Histogram: duration of each group-commit flush of the store, in seconds.
pub const FLUSH_SECONDS: &str = "kith_flush_seconds";
/// Histogram: mailbox writes (sends and acks) applied together in one store transaction.
pub const WRITE_BATCH_OPS: &str = "kith_write_batch_ops";

/// Buckets for [`FLUSH_SECONDS`]: 0.5 ms to 2.5 s (an fsync on a healthy disk takes about a
/// millisecond; a congested one, hundreds).
const FLUSH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets for [`WRITE_BATCH_OPS`]: 1 to 256 (the writer's largest batch).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process) and
/// returns the handle that renders it. If another recorder was installed first (by an
/// embedding program), the handle renders nothing and a warning is logged.
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(install_once).clone()
}

fn install_once() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(FLUSH_SECONDS.to_owned()), FLUSH_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(WRITE_BATCH_OPS.to_owned()), BATCH_BUCKETS)
        })
        // Only an empty bucket list is refused; fall back to a summary rather than fail.
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let handle = builder.install_recorder().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
        PrometheusBuilder::new().build_recorder().handle()
    });
    describe();
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open client connections.");
    describe_gauge!(
        CONNECTIONS_AUTHENTICATED,
        "Client connections that have authenticated."
    );
    describe_gauge!(
        QUEUE_ENTRIES,
        "Mailbox entries queued, all devices together."
    );
    describe_gauge!(
        QUEUE_BYTES,
        "Bytes queued: bodies once, plus per-recipient parts."
    );
    describe_counter!(
        ENVELOPES_ACCEPTED,
        "Sends stored and acknowledged as accepted."
    );
    describe_counter!(
        ENVELOPES_DELIVERED,
        "Envelopes pushed to a connected device."
    );
    describe_counter!(
        ENVELOPES_EXPIRED,
        "Mailbox entries deleted unread after their TTL."
    );
    describe_counter!(ERRORS, "Errors answered or connections closed, by kind.");
    describe_counter!(REQUESTS, "Requests handled, by request type.");
    describe_histogram!(
        FLUSH_SECONDS,
        metrics::Unit::Seconds,
        "Duration of each group-commit flush of the store."
    );
    describe_histogram!(
        WRITE_BATCH_OPS,
        "Mailbox writes (sends and acks) applied together in one store transaction (sled)."
    );
}
