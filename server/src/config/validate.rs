//! Checks that a configuration's values make sense, alone and together.

use std::time::Duration;

use kith_protocol::consts::{MAX_FRAME_LEN, MAX_RELAY_NAME_LEN};

use super::{Config, Problem, StoreKind};

/// Most connections a node's PostgreSQL pool may hold: PostgreSQL's default `max_connections`
/// is 100 for the whole server, shared by every relay node.
const MAX_POOL_SIZE: usize = 1000;

impl Config {
    /// Every problem with the effective values (see [`Config::validate`]).
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.check_network(&mut out);
        self.check_store(&mut out);
        self.check_tls(&mut out);
        self.check_limits(&mut out);
        self.check_times(&mut out);
        self.check_misc(&mut out);
        out
    }

    fn check_network(&self, out: &mut Vec<Problem>) {
        if !self.admin_listen.ip().is_loopback() && !self.admin_allow_non_loopback {
            out.push(Problem::effective(
                "admin_listen",
                format!(
                    "{} is not a loopback address. The admin listener speaks plain HTTP and \
                     creates invites; write \"127.0.0.1:{}\", or also set \
                     admin_allow_non_loopback = true if only you can reach that network",
                    self.admin_listen,
                    self.admin_listen.port()
                ),
            ));
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            out.push(Problem::effective(
                "admin_listen",
                format!(
                    "is the same address as listen ({}); give the admin listener its own port, \
                     e.g. {}",
                    self.listen,
                    std::net::SocketAddr::new(self.admin_listen.ip(), 7444)
                ),
            ));
        }
        let name = &self.relay_name;
        let valid_name = !name.is_empty()
            && name.len() <= MAX_RELAY_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !valid_name {
            out.push(Problem::effective(
                "relay_name",
                format!(
                    "\"{name}\" is not a host name; write the name clients use to reach the \
                     relay (letters, digits, '-' and '.', at most {MAX_RELAY_NAME_LEN} \
                     characters), e.g. \"relay.example.org\""
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            out.push(Problem::effective(
                "data_dir",
                "is empty; write a directory, e.g. \"./kith-data\" or \"/var/lib/kith-relay\"",
            ));
        }
    }

    fn check_store(&self, out: &mut Vec<Problem>) {
        match (self.store, &self.database_url) {
            (StoreKind::Postgres, None) => out.push(Problem::effective(
                "database_url",
                "is not set but store is \"postgres\"; set it, preferably with the environment \
                 variable KITH_RELAY_DATABASE_URL (it holds a password), e.g. \
                 postgres://kith:PASSWORD@db.example.org:5432/kith",
            )),
            (StoreKind::Postgres, Some(url)) => {
                if let Err(e) = url.check() {
                    out.push(Problem::effective(
                        "database_url",
                        format!(
                            "is not a PostgreSQL connection string ({e}); write e.g. \
                             postgres://kith:PASSWORD@db.example.org:5432/kith"
                        ),
                    ));
                }
            }
            (StoreKind::Sled, Some(_)) => out.push(Problem::effective(
                "database_url",
                "is set but store is \"sled\"; write store = \"postgres\" to use the database, \
                 or remove database_url",
            )),
            (StoreKind::Sled, None) => {}
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.database_pool_size) {
            out.push(Problem::effective(
                "database_pool_size",
                format!(
                    "is {}; write a number from 1 to {MAX_POOL_SIZE} (the default is 16; every \
                     node's pool counts against PostgreSQL's max_connections)",
                    self.database_pool_size
                ),
            ));
        }
    }

    fn check_tls(&self, out: &mut Vec<Problem>) {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => out.push(Problem::effective(
                "tls_key",
                "tls_cert is set but tls_key is not; set both (certificate chain and its \
                 private key) or neither (development certificate)",
            )),
            (None, Some(_)) => out.push(Problem::effective(
                "tls_cert",
                "tls_key is set but tls_cert is not; set both (certificate chain and its \
                 private key) or neither (development certificate)",
            )),
            _ => {}
        }
        if self.listen_plaintext_behind_proxy {
            self.check_plaintext(out);
        }
    }

    /// Plain WebSocket is only for a proxy on the same machine (or a private link) that
    /// terminates TLS: anywhere else, devices' logins and sealed envelopes would cross the
    /// network without TLS.
    fn check_plaintext(&self, out: &mut Vec<Problem>) {
        if self.tls_cert.is_some() || self.tls_key.is_some() {
            out.push(Problem::effective(
                "listen_plaintext_behind_proxy",
                "is true but a certificate is configured; remove tls_cert and tls_key (the \
                 proxy holds the certificate), or write listen_plaintext_behind_proxy = false",
            ));
        }
        if !self.listen.ip().is_loopback() && !self.allow_plaintext_non_loopback {
            out.push(Problem::effective(
                "listen_plaintext_behind_proxy",
                format!(
                    "is true but listen ({}) is not a loopback address: clients could reach the \
                     relay without TLS. Write listen = \"127.0.0.1:{}\" and run the \
                     TLS-terminating proxy on this machine, or, if only the proxy can reach \
                     this address (a private network), also set \
                     allow_plaintext_non_loopback = true",
                    self.listen,
                    self.listen.port()
                ),
            ));
        }
    }

    fn check_limits(&self, out: &mut Vec<Problem>) {
        let at_least_one: [(&str, u64); 8] = [
            ("mailbox_max_entries", self.mailbox_max_entries),
            ("send_rate_per_second", u64::from(self.send_rate_per_second)),
            ("send_burst", u64::from(self.send_burst)),
            ("bundle_fetch_burst", u64::from(self.bundle_fetch_burst)),
            (
                "bundle_fetches_per_hour",
                u64::from(self.bundle_fetches_per_hour),
            ),
            (
                "max_connections",
                u64::try_from(self.max_connections).unwrap_or(u64::MAX),
            ),
            (
                "max_unauthenticated",
                u64::try_from(self.max_unauthenticated).unwrap_or(u64::MAX),
            ),
            ("sled_cache_mb", self.sled_cache_mb),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                out.push(Problem::effective(
                    key,
                    "is 0, which would refuse everything; write a positive number (the \
                     example config shows the default)",
                ));
            }
        }
        if self.mailbox_max_bytes < u64::try_from(MAX_FRAME_LEN).unwrap_or(u64::MAX) {
            out.push(Problem::effective(
                "mailbox_max_bytes",
                format!(
                    "is {} bytes, less than one maximum-size envelope ({MAX_FRAME_LEN} bytes); \
                     write at least {MAX_FRAME_LEN} (the default is 268435456, 256 MiB)",
                    self.mailbox_max_bytes
                ),
            ));
        }
        if self.max_unauthenticated > self.max_connections {
            out.push(Problem::effective(
                "max_unauthenticated",
                format!(
                    "is {} but max_connections is {}; write a value no larger than \
                     max_connections",
                    self.max_unauthenticated, self.max_connections
                ),
            ));
        }
    }

    fn check_times(&self, out: &mut Vec<Problem>) {
        let minimums = [
            (
                "envelope_ttl",
                self.envelope_ttl,
                Duration::from_secs(60),
                "\"30d\"",
            ),
            (
                "idle_timeout",
                self.idle_timeout,
                Duration::from_secs(2),
                "\"60s\"",
            ),
            (
                "auth_timeout",
                self.auth_timeout,
                Duration::from_secs(1),
                "\"10s\"",
            ),
            (
                "idempotency_window",
                self.idempotency_window,
                Duration::from_secs(1),
                "\"24h\"",
            ),
            (
                "flush_timeout",
                self.flush_timeout,
                Duration::from_secs(1),
                "\"30s\"",
            ),
        ];
        for (key, value, min, default) in minimums {
            if value < min {
                out.push(Problem::effective(
                    key,
                    format!(
                        "is {}, shorter than the minimum {}; write e.g. {default} (the default)",
                        humantime::format_duration(value),
                        humantime::format_duration(min)
                    ),
                ));
            }
        }
        if self.idempotency_window > self.envelope_ttl {
            out.push(Problem::effective(
                "idempotency_window",
                format!(
                    "is {} but envelope_ttl is {}; a retry cannot be recognised longer than the \
                     envelope is kept: write a value no longer than envelope_ttl",
                    humantime::format_duration(self.idempotency_window),
                    humantime::format_duration(self.envelope_ttl)
                ),
            ));
        }
    }

    fn check_misc(&self, out: &mut Vec<Problem>) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(Problem::effective(
                "log_level",
                format!(
                    "\"{}\" is not a log filter ({e}); write a level (error, warn, info, debug, \
                     trace) or directives such as \"kith_relay=debug,info\"",
                    self.log_level
                ),
            ));
        }
    }
}
