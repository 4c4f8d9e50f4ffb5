//! The relay under test: the real `kith-relay serve` as a child process on loopback, with
//! benchmark settings (open registration, no send rate limit, room for the largest scenario).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use super::stats;
use crate::cli::process::LineReader;
use crate::connection::tls_config;

/// How long a relay may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which storage engine the relay uses.
#[derive(Debug, Clone)]
pub(super) enum StoreSpec {
    /// sled in the relay's data directory (the default engine).
    Sled,
    /// PostgreSQL at this URL (the database must exist and be empty or Kith's).
    Postgres(String),
}

/// What relay to start.
#[derive(Debug, Clone)]
pub(super) struct RelaySpec {
    /// The storage engine.
    pub(super) store: StoreSpec,
    /// `max_connections` (authenticated connections).
    pub(super) max_connections: u32,
    /// Copy `tls/` from this data directory before starting (several nodes, one certificate).
    pub(super) tls_from: Option<PathBuf>,
}

impl RelaySpec {
    /// One sled relay with room for `max_connections`.
    pub(super) fn sled(max_connections: u32) -> Self {
        Self {
            store: StoreSpec::Sled,
            max_connections,
            tls_from: None,
        }
    }
}

/// A running `kith-relay serve`. Killed (and its data deleted) on drop.
pub(super) struct BenchRelay {
    child: Child,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    dir: TempDir,
}

impl BenchRelay {
    /// Starts a relay and waits for its banner.
    pub(super) fn start(relay_bin: &std::path::Path, spec: &RelaySpec) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temporary directory for the relay")?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        if let Some(from) = &spec.tls_from {
            crate::cli::copy_tree(&from.join("tls"), &data.join("tls"));
        }
        let store = match &spec.store {
            StoreSpec::Sled => "sled",
            StoreSpec::Postgres(_) => "postgres",
        };
        let config = format!(
            r#"data_dir = "{data}"
store = "{store}"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
registration = "open"
mailbox_max_entries = 1000000
mailbox_max_bytes = 4294967296
send_rate_per_second = 100000000
send_burst = 100000000
max_connections = {max}
max_unauthenticated = {max_unauthenticated}
idle_timeout = "600s"
auth_timeout = "60s"
log_level = "warn"
"#,
            data = data.display(),
            max = spec.max_connections,
            // The relay insists on max_unauthenticated <= max_connections.
            max_unauthenticated = spec.max_connections.min(4096),
        );
        let config_path = dir.path().join("relay.toml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("relay.log"))?;
        let mut command = Command::new(relay_bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        crate::cli::relay::clear_kith_env(&mut command);
        if let StoreSpec::Postgres(url) = &spec.store {
            command.env("KITH_RELAY_DATABASE_URL", url);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", relay_bin.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut banner = LineReader::new(stdout);
        let deadline = Instant::now() + START_TIMEOUT;
        let Some(listening) = banner.line_until(deadline, |l| l.contains("listening:")) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default();
            bail!(
                "kith-relay printed no banner within {START_TIMEOUT:?}; stdout: {:?}; log:\n{log}",
                banner.seen()
            );
        };
        let port: u16 = listening
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in the banner line {listening:?}"))?;
        let pem = std::fs::read_to_string(data.join("tls").join("cert.pem"))
            .context("the relay's development certificate")?;
        let tls = tls_config(&pem)?;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls,
            dir,
        })
    }

    /// The client listener.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A TLS client configuration trusting this relay's certificate.
    pub(super) fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }

    /// The relay's data directory.
    pub(super) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The relay's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The relay's resident set size now.
    pub(super) fn rss_bytes(&self) -> anyhow::Result<u64> {
        stats::rss_bytes(self.pid())
    }

    /// The relay's log (standard error) so far.
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// Stops the relay with SIGTERM and waits up to 30 s for it to exit.
    pub(super) fn stop(mut self) -> anyhow::Result<()> {
        crate::cli::process::signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("kith-relay exited with {status}; log:\n{}", self.log());
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("kith-relay did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BenchRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
