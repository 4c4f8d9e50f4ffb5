//! A real relay on loopback ports with its data in a temporary directory.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kith_relay::config::Config;
use kith_relay::relay::Registration;
use kith_relay::service::{self, Running};
use kith_relay::store::StoreStats;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::WAIT;
use crate::connection::{Connection, tls_config};
use crate::device::TestDevice;

/// Most relays running at once in one test process.
///
/// sled 0.34 runs `flush_async` on its process-global I/O thread pool, which blocks a pool
/// thread until the log write it waits for is done, and that write is queued on the same pool.
/// The pool only grows when more than 7 jobs are queued, so 7 or more databases flushing at
/// once (7+ relays in one process, e.g. `--test-threads=16`) can deadlock every one of them.
/// A real relay has one database and one flusher, so this only limits the tests.
const MAX_RUNNING_RELAYS: usize = 4;

fn relay_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_RUNNING_RELAYS)))
        .clone()
}

/// A running relay whose data directory lives as long as this value.
pub struct TestRelay {
    config: Config,
    running: Option<Running>,
    tls: Arc<rustls::ClientConfig>,
    _slot: OwnedSemaphorePermit,
    // Dropped last: the relay must be gone before its data directory is deleted.
    _dir: TempDir,
}

impl TestRelay {
    /// A relay with open registration and otherwise default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A relay with open registration, then `configure` applied to its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registration: Registration::Open,
            ..Config::default()
        };
        configure(&mut config);
        let slot = tokio::time::timeout(Duration::from_secs(600), relay_slots().acquire_owned())
            .await
            .expect("waited too long for another test's relay to stop")
            .expect("the semaphore is never closed");
        let running = tokio::time::timeout(WAIT, service::start(config.clone()))
            .await
            .expect("relay start timed out")
            .expect("relay starts");
        let pem = running.certificate_pem().expect("the relay terminates TLS");
        let tls = tls_config(&pem).expect("relay certificate");
        Self {
            config,
            running: Some(running),
            tls,
            _slot: slot,
            _dir: dir,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("relay running")
    }

    /// The address devices connect to.
    pub fn addr(&self) -> SocketAddr {
        self.running().relay_addr()
    }

    /// The relay's TLS certificate (PEM), for clients to trust.
    pub fn certificate_pem(&self) -> String {
        self.running()
            .certificate_pem()
            .expect("the relay terminates TLS")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.running().admin_addr()
    }

    /// The TLS client configuration that trusts this relay's certificate.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The relay's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new connection, challenge read.
    pub async fn connect(&self) -> Connection {
        Connection::connect(self.addr(), self.tls.clone())
            .await
            .expect("connect to the relay")
    }

    /// A new connection authenticated as `device`.
    pub async fn login(&self, device: &TestDevice) -> Connection {
        let mut conn = self.connect().await;
        let response = conn.authenticate(device).await.expect("authenticate");
        assert_eq!(
            response,
            kith_protocol::wire::Response::Ok,
            "authenticate {}",
            device.handle
        );
        conn
    }

    /// Registers `device` (open registration) on a new connection and returns it.
    pub async fn register(&self, device: &TestDevice) -> Connection {
        let mut conn = self.connect().await;
        let response = conn.register(device, None).await.expect("register");
        assert_eq!(
            response,
            kith_protocol::wire::Response::Ok,
            "register {}",
            device.handle
        );
        conn
    }

    /// Store totals.
    pub async fn store_stats(&self) -> StoreStats {
        tokio::time::timeout(WAIT, self.running().store_stats())
            .await
            .expect("store stats timed out")
            .expect("store stats")
    }

    /// Connections `(open, authenticated)` as the relay counts them.
    pub fn connection_counts(&self) -> (usize, usize) {
        let stats = self.running().relay_handle().stats();
        (stats.connections, stats.authenticated)
    }

    /// Stops the relay and starts it again on the same data directory (new ports).
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = tokio::time::timeout(WAIT, self.start_again())
            .await
            .expect("relay restart timed out");
        let pem = running.certificate_pem().expect("the relay terminates TLS");
        self.tls = tls_config(&pem).expect("relay certificate");
        self.running = Some(running);
    }

    /// Starts the relay on the existing data directory.
    ///
    /// WORKAROUND (reported to the relay owners): `Running::shutdown` can return while the sled
    /// database is still held open (by the last `Arc<SledStore>` or sled's own background
    /// thread), so an immediate start fails with `ServiceError::Store` ("I/O error: other
    /// error": the database lock). There is no event to wait for, so store errors are retried
    /// for a short while. Remove once shutdown releases the database before it returns.
    async fn start_again(&self) -> Running {
        let mut attempts = 0;
        loop {
            match service::start(self.config.clone()).await {
                Ok(running) => return running,
                Err(e @ kith_relay::service::ServiceError::Store { .. }) if attempts < 100 => {
                    attempts += 1;
                    if attempts == 1 {
                        eprintln!("relay restart: store still locked ({e}); retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("relay restarts: {e:?}"),
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::time::timeout(WAIT, running.shutdown())
                .await
                .expect("relay shutdown timed out")
                .expect("relay shuts down");
        }
    }

    /// Shuts the relay down cleanly.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Creates an invite with `uses` uses through the admin listener.
    pub async fn invite(&self, uses: u32) -> String {
        tokio::time::timeout(WAIT, self.try_invite(uses))
            .await
            .expect("invite timed out")
            .expect("create an invite")
    }

    async fn try_invite(&self, uses: u32) -> anyhow::Result<String> {
        let token = self.admin_token()?;
        let body = serde_json::json!({ "uses": uses, "expires_in_secs": 3600 }).to_string();
        let (status, body) = self
            .admin_request("POST", "/v1/invites", Some(&token), Some(body))
            .await?;
        if status != 200 {
            bail!("admin answered {status}: {body}");
        }
        let value: serde_json::Value = serde_json::from_str(&body)?;
        value["token"]
            .as_str()
            .map(str::to_owned)
            .context("no token in the answer")
    }

    /// The admin bearer token the relay wrote to its data directory.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let path = self.config.data_dir.join("admin.json");
        let text = std::fs::read_to_string(&path).context("read admin.json")?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        value["token"]
            .as_str()
            .map(str::to_owned)
            .context("no token in admin.json")
    }

    /// One HTTP/1.1 request to the admin listener (JSON body, optional bearer token); returns
    /// the status and body.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<(u16, String)> {
        tokio::time::timeout(WAIT, self.admin_request_inner(method, path, token, body))
            .await
            .context("admin request timed out")?
    }

    async fn admin_request_inner(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<(u16, String)> {
        let stream = TcpStream::connect(self.admin_addr()).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.admin_addr().to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        driver.abort();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
