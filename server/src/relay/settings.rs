//! What the network relay needs to know, independent of how it was configured.

use std::time::Duration;

use kith_protocol::consts::MAX_FRAME_LEN;

use crate::store::MailboxLimits;

/// Who may register a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who can reach the relay.
    Open,
    /// Only holders of a valid invite token (the default).
    Invite,
}

/// Settings of the network relay. [`crate::config::Config`] turns a config file into these;
/// tests build them directly.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Name of this relay as clients know it (host name); bound into authentication.
    pub relay_name: String,
    /// Who may register.
    pub registration: Registration,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed from TCP accept to a successful `Authenticate`/`Register`.
    pub auth_timeout: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed; the relay
    /// pings at half this interval.
    pub idle_timeout: Duration,
    /// Cap on open connections (authenticated or not).
    pub max_connections: usize,
    /// Cap on connections that have not authenticated yet.
    pub max_unauthenticated: usize,
    /// Largest WebSocket message/frame accepted.
    pub max_frame_len: usize,
    /// How long an envelope waits in a mailbox before it expires.
    pub envelope_ttl: Duration,
    /// How long a client message id is remembered for idempotent retries.
    pub idempotency_window: Duration,
    /// Per-device mailbox quota.
    pub mailbox_limits: MailboxLimits,
    /// Sustained sends per second allowed per device.
    pub send_rate_per_second: u32,
    /// Burst of sends allowed per device above the sustained rate.
    pub send_burst: u32,
    /// Prekey-bundle fetches one device may make of one account in a burst...
    pub bundle_fetch_burst: u32,
    /// ...and refilled at this many an hour: a bound on how fast one client can use up
    /// another's one-time prekeys.
    pub bundle_fetches_per_hour: u32,
    /// Below this many one-time prekeys (either kind) the device gets `PrekeyCountLow`.
    pub prekey_low_watermark: u32,
    /// Whether client IP addresses may appear in logs.
    pub log_client_ips: bool,
    /// How often expired envelopes are swept.
    pub expiry_sweep_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            relay_name: "localhost".to_owned(),
            registration: Registration::Invite,
            tls_handshake_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_unauthenticated: 256,
            max_frame_len: MAX_FRAME_LEN,
            envelope_ttl: Duration::from_secs(30 * 24 * 3600),
            idempotency_window: Duration::from_secs(24 * 3600),
            mailbox_limits: MailboxLimits {
                max_entries: 10_000,
                max_bytes: 256 * 1024 * 1024,
            },
            send_rate_per_second: 20,
            send_burst: 100,
            bundle_fetch_burst: 5,
            bundle_fetches_per_hour: 12,
            prekey_low_watermark: 20,
            log_client_ips: false,
            expiry_sweep_interval: Duration::from_secs(60),
        }
    }
}
