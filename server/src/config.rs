//! The relay's configuration: a TOML file, `KITH_RELAY_*` environment overrides, validation.
//!
//! Sources, weakest first: the defaults below, the file (`--config FILE` or
//! `KITH_RELAY_CONFIG`), environment variables `KITH_RELAY_<KEY>` (one per key, e.g.
//! `KITH_RELAY_LISTEN`), and finally the flags of `kith-relay serve`. Unknown keys and unknown
//! `KITH_RELAY_*` variables are errors, so a typo never silently falls back to a default.
//! [`Config::load`] reports every malformed key at once, with its line or variable;
//! [`Config::validate`] then reports every inconsistent value with what to write instead.
//!
//! The complete, commented configuration (`kith-relay check-config --example` prints it):
//!
//! ```toml
#![doc = include_str!("config.example.toml")]
//! ```

mod database;
mod error;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use self::database::{DatabaseUrl, StoreKind, redact_passwords};
pub use self::error::{ConfigError, Origin, Problem};
use crate::relay::{Registration, RelaySettings};
use crate::store::{MailboxLimits, PostgresOptions};

/// The commented example configuration, with every key at its default.
pub const EXAMPLE: &str = include_str!("config.example.toml");

/// Environment variable naming the config file (read by `kith-relay serve`).
pub const CONFIG_ENV: &str = "KITH_RELAY_CONFIG";

/// Prefix of the per-key environment overrides.
pub const ENV_PREFIX: &str = "KITH_RELAY_";

/// `KITH_RELAY_*` variables that are not config keys (read by the command line itself).
const NON_KEY_ENV: &[&str] = &["KITH_RELAY_CONFIG", "KITH_RELAY_ADMIN_TOKEN"];

/// The relay's configuration. See the [module docs](self) for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the sled database, the development certificate and `admin.json`.
    pub data_dir: PathBuf,
    /// Which storage engine.
    pub store: StoreKind,
    /// PostgreSQL connection string; required when `store` is postgres.
    pub database_url: Option<DatabaseUrl>,
    /// Connections in the PostgreSQL pool.
    pub database_pool_size: usize,
    /// PEM file of the CA(s) that vouch for the PostgreSQL server, besides the system's
    /// roots; used with `sslmode=require` in `database_url`.
    pub database_ca: Option<PathBuf>,
    /// Address of the client listener.
    pub listen: SocketAddr,
    /// Address of the admin listener (plain HTTP).
    pub admin_listen: SocketAddr,
    /// Allows a non-loopback `admin_listen`.
    pub admin_allow_non_loopback: bool,
    /// Host name clients know the relay by.
    pub relay_name: String,
    /// Who may register.
    pub registration: Registration,
    /// PEM certificate chain; with `tls_key`, replaces the development certificate.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve plain `ws://` for a TLS-terminating reverse proxy instead of TLS.
    pub listen_plaintext_behind_proxy: bool,
    /// Allows `listen_plaintext_behind_proxy` on a non-loopback `listen` address.
    pub allow_plaintext_non_loopback: bool,
    /// How long an undelivered envelope is kept.
    #[serde(deserialize_with = "duration")]
    pub envelope_ttl: Duration,
    /// How long a retried send is recognised.
    #[serde(deserialize_with = "duration")]
    pub idempotency_window: Duration,
    /// Per-device quota: entries.
    pub mailbox_max_entries: u64,
    /// Per-device quota: bytes.
    pub mailbox_max_bytes: u64,
    /// Sustained sends per second per device.
    pub send_rate_per_second: u32,
    /// Burst of sends per device.
    pub send_burst: u32,
    /// Prekey-bundle fetches one device may make of one account in a burst.
    pub bundle_fetch_burst: u32,
    /// Prekey-bundle fetches per device and account an hour, after the burst.
    pub bundle_fetches_per_hour: u32,
    /// Cap on open connections.
    pub max_connections: usize,
    /// Cap on connections not yet authenticated.
    pub max_unauthenticated: usize,
    /// A connection silent this long is closed.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Time allowed from connecting to authenticating.
    #[serde(deserialize_with = "duration")]
    pub auth_timeout: Duration,
    /// Below this many one-time prekeys a device is told to upload more.
    pub prekey_low_watermark: u32,
    /// Log line format.
    pub log_format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `kith_relay=debug,info`.
    pub log_level: String,
    /// Whether client IP addresses may appear in logs.
    pub log_client_ips: bool,
    /// sled's page cache, in MiB.
    pub sled_cache_mb: u64,
    /// sled: sends are refused (`StorageFull`) while the data directory's disk has less than
    /// this many MiB free, so that the store itself never runs out of space mid-write. 0 keeps
    /// no reserve.
    pub min_free_disk_mb: u64,
    /// sled: a flush (fsync) taking longer than this means the disk is full or failing; the
    /// relay then stops rather than hang.
    #[serde(deserialize_with = "duration")]
    pub flush_timeout: Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        let relay = RelaySettings::default();
        Self {
            data_dir: PathBuf::from("./kith-data"),
            store: StoreKind::Sled,
            database_url: None,
            database_pool_size: 16,
            database_ca: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7444)),
            admin_allow_non_loopback: false,
            relay_name: relay.relay_name,
            registration: relay.registration,
            tls_cert: None,
            tls_key: None,
            listen_plaintext_behind_proxy: false,
            allow_plaintext_non_loopback: false,
            envelope_ttl: relay.envelope_ttl,
            idempotency_window: relay.idempotency_window,
            mailbox_max_entries: relay.mailbox_limits.max_entries,
            mailbox_max_bytes: relay.mailbox_limits.max_bytes,
            send_rate_per_second: relay.send_rate_per_second,
            send_burst: relay.send_burst,
            bundle_fetch_burst: relay.bundle_fetch_burst,
            bundle_fetches_per_hour: relay.bundle_fetches_per_hour,
            max_connections: relay.max_connections,
            max_unauthenticated: relay.max_unauthenticated,
            idle_timeout: relay.idle_timeout,
            auth_timeout: relay.auth_timeout,
            prekey_low_watermark: relay.prekey_low_watermark,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            log_client_ips: relay.log_client_ips,
            sled_cache_mb: 64,
            min_free_disk_mb: 256,
            flush_timeout: Duration::from_secs(30),
        }
    }
}

/// How a key's value is written in an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Bool,
}

/// Every key, with how its environment variable is parsed. Keep in step with [`Config`] (a
/// test checks it against [`EXAMPLE`]).
const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Text),
    ("store", Kind::Text),
    ("sled_cache_mb", Kind::Integer),
    ("min_free_disk_mb", Kind::Integer),
    ("flush_timeout", Kind::Text),
    ("database_url", Kind::Text),
    ("database_pool_size", Kind::Integer),
    ("database_ca", Kind::Text),
    ("listen", Kind::Text),
    ("relay_name", Kind::Text),
    ("listen_plaintext_behind_proxy", Kind::Bool),
    ("allow_plaintext_non_loopback", Kind::Bool),
    ("tls_cert", Kind::Text),
    ("tls_key", Kind::Text),
    ("admin_listen", Kind::Text),
    ("admin_allow_non_loopback", Kind::Bool),
    ("registration", Kind::Text),
    ("envelope_ttl", Kind::Text),
    ("idempotency_window", Kind::Text),
    ("mailbox_max_entries", Kind::Integer),
    ("mailbox_max_bytes", Kind::Integer),
    ("send_rate_per_second", Kind::Integer),
    ("send_burst", Kind::Integer),
    ("bundle_fetch_burst", Kind::Integer),
    ("bundle_fetches_per_hour", Kind::Integer),
    ("max_connections", Kind::Integer),
    ("max_unauthenticated", Kind::Integer),
    ("idle_timeout", Kind::Text),
    ("auth_timeout", Kind::Text),
    ("prekey_low_watermark", Kind::Integer),
    ("log_format", Kind::Text),
    ("log_level", Kind::Text),
    ("log_client_ips", Kind::Bool),
];

/// Names of every key, for error messages.
pub fn key_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|(name, _)| *name)
}

impl Config {
    /// Reads the file (if any), then applies `KITH_RELAY_*` variables from the process
    /// environment. Reports every unknown or malformed key; does not [`validate`](Self::validate).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Loaded {
            config, problems, ..
        } = Self::load_partial(path, std::env::vars())?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// What `kith-relay check-config` does: [`load`](Self::load) and
    /// [`validate`](Self::validate), reporting the problems of both together.
    pub fn check(path: &Path) -> Result<Self, ConfigError> {
        let Loaded {
            config,
            mut problems,
            origins,
        } = Self::load_partial(Some(path), std::env::vars())?;
        for mut problem in config.problems() {
            if let Some(origin) = origins.get(&problem.key) {
                problem.origin = origin.clone();
            }
            problems.push(problem);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Loads from a file and the given environment; a malformed key keeps its default and is
    /// reported. Also returns where each applied key was set. Fails outright only when the
    /// file cannot be read or is not TOML.
    fn load_partial(
        path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = path {
            read_file(path, &mut values)?;
        }
        let mut problems = Vec::new();
        read_env(env, &mut values, &mut problems);
        let mut table = toml::Table::new();
        let mut origins = BTreeMap::new();
        for (key, (value, origin)) in values {
            let Some(kind) = KEYS.iter().find(|(name, _)| *name == key).map(|(_, k)| *k) else {
                problems.push(Problem::unknown_key(&key, origin));
                continue;
            };
            let mut one = toml::Table::new();
            one.insert(key.clone(), value.clone());
            match toml::Value::Table(one).try_into::<Self>() {
                Ok(_) => {
                    table.insert(key.clone(), value);
                    origins.insert(key, origin);
                }
                Err(e) => problems.push(Problem::new(&key, origin, explain(&e, kind))),
            }
        }
        problems.sort_by(|a, b| a.origin.cmp(&b.origin));
        let config = toml::Value::Table(table)
            .try_into::<Self>()
            .map_err(|e| ConfigError::Invalid(vec![Problem::general(e.to_string())]))?;
        Ok(Loaded {
            config,
            problems,
            origins,
        })
    }

    /// Checks that the values make sense together. Returns every problem, each saying what is
    /// wrong and what to write instead.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The settings of the network relay.
    pub fn relay_settings(&self) -> RelaySettings {
        RelaySettings {
            relay_name: self.relay_name.clone(),
            registration: self.registration,
            auth_timeout: self.auth_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_unauthenticated: self.max_unauthenticated,
            envelope_ttl: self.envelope_ttl,
            idempotency_window: self.idempotency_window,
            mailbox_limits: MailboxLimits {
                max_entries: self.mailbox_max_entries,
                max_bytes: self.mailbox_max_bytes,
            },
            send_rate_per_second: self.send_rate_per_second,
            send_burst: self.send_burst,
            bundle_fetch_burst: self.bundle_fetch_burst,
            bundle_fetches_per_hour: self.bundle_fetches_per_hour,
            prekey_low_watermark: self.prekey_low_watermark,
            log_client_ips: self.log_client_ips,
            ..RelaySettings::default()
        }
    }

    /// How to reach PostgreSQL: `None` unless `store` is postgres and `database_url` is set
    /// (which [`validate`](Self::validate) requires).
    pub fn postgres_options(&self) -> Option<PostgresOptions> {
        match (self.store, &self.database_url) {
            (StoreKind::Postgres, Some(url)) => Some(PostgresOptions {
                url: url.expose().to_owned(),
                pool_size: self.database_pool_size,
                ca_file: self.database_ca.clone(),
            }),
            _ => None,
        }
    }
}

/// What [`Config::load_partial`] found.
struct Loaded {
    /// The configuration, with defaults where a value was missing or malformed.
    config: Config,
    /// Unknown and malformed keys.
    problems: Vec<Problem>,
    /// Where each applied key was set.
    origins: BTreeMap<String, Origin>,
}

/// Values read so far, with where each came from.
type Values = BTreeMap<String, (toml::Value, Origin)>;

fn read_file(path: &Path, values: &mut Values) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: BTreeMap<toml::Spanned<String>, toml::Value> =
        toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            // The parser quotes the offending line, which may hold database_url.
            message: redact_passwords(&e.to_string()),
        })?;
    for (key, value) in table {
        let line = text
            .get(..key.span().start)
            .map_or(1, |before| before.matches('\n').count() + 1);
        let origin = Origin::File {
            path: path.to_owned(),
            line,
        };
        values.insert(key.into_inner(), (value, origin));
    }
    Ok(())
}

/// Applies `KITH_RELAY_<KEY>` variables. Each is parsed by the kind of its key: text as is,
/// integers and booleans strictly.
fn read_env(
    env: impl Iterator<Item = (String, String)>,
    values: &mut Values,
    problems: &mut Vec<Problem>,
) {
    for (var, text) in env {
        let Some(suffix) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NON_KEY_ENV.contains(&var.as_str()) {
            continue;
        }
        let key = suffix.to_ascii_lowercase();
        let origin = Origin::Env { var: var.clone() };
        let kind = KEYS.iter().find(|(name, _)| *name == key).map(|(_, k)| *k);
        let value = match kind {
            None => {
                problems.push(Problem::unknown_key(&key, origin));
                continue;
            }
            Some(Kind::Text) => toml::Value::String(text),
            Some(Kind::Integer) => match text.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => {
                    let msg = format!("`{text}` is not a whole number; write digits only");
                    problems.push(Problem::new(&key, origin, msg));
                    continue;
                }
            },
            Some(Kind::Bool) => match text.trim() {
                "true" | "1" => toml::Value::Boolean(true),
                "false" | "0" => toml::Value::Boolean(false),
                _ => {
                    let msg = format!("`{text}` is not a boolean; write true or false");
                    problems.push(Problem::new(&key, origin, msg));
                    continue;
                }
            },
        };
        values.insert(key, (value, origin));
    }
}

/// serde's message for one value, without toml's location decoration (the caller knows the
/// line better: the value was re-parsed out of its file), and what to write for a wrong type.
fn explain(e: &toml::de::Error, kind: Kind) -> String {
    let message = e.message().trim();
    let hint = match kind {
        Kind::Integer => "; write a whole number without quotes, e.g. 100",
        Kind::Bool => "; write true or false without quotes",
        Kind::Text => "; write the value in double quotes",
    };
    if message.starts_with("invalid type") {
        format!("{message}{hint}")
    } else {
        message.to_owned()
    }
}

/// Deserializes a humantime duration such as `"30d"` or `"1h 30m"`.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write a number and a unit, e.g. \"30d\", \"12h\", \"90s\""
        ))
    })
}

#[cfg(test)]
mod tests;
