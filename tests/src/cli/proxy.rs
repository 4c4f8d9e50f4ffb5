//! A TLS-terminating proxy in front of a relay that serves plain WebSocket
//! (`listen_plaintext_behind_proxy`), as nginx or a cloud load balancer would be: it holds the
//! certificate, and forwards each connection's bytes to the relay as they are.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::ServerConfig;
use rustls_pki_types::PrivatePkcs8KeyDer;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::COMMAND_TIMEOUT;

/// A TLS proxy on a free loopback port, with a self-signed certificate for `localhost`, that
/// forwards every connection to a relay's plain-WebSocket port. Stops when dropped.
pub struct TlsProxy {
    port: u16,
    /// Connections whose TLS handshake succeeded and that reached the relay.
    forwarded: Arc<AtomicU64>,
    // Dropped first: shutting the runtime down ends the accept loop and every connection.
    runtime: Runtime,
    dir: TempDir,
}

impl TlsProxy {
    /// Starts a proxy forwarding to `127.0.0.1:relay_port`.
    pub fn start(relay_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let acceptor = localhost_acceptor(&dir.path().join("proxy-ca.pem"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let forwarded = Arc::new(AtomicU64::new(0));
        let relay = SocketAddr::from(([127, 0, 0, 1], relay_port));
        runtime.spawn(accept_loop(
            listener,
            acceptor,
            relay,
            Arc::clone(&forwarded),
        ));
        Self {
            port,
            forwarded,
            runtime,
            dir,
        }
    }

    /// The address clients use: `wss://localhost:PORT`, matching the relay's default name
    /// (`localhost`), which devices sign.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}", self.port)
    }

    /// The proxy's certificate (PEM), for `kith init --relay-ca`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("proxy-ca.pem")
    }

    /// How many connections were forwarded to the relay so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for TlsProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsProxy")
            .field("port", &self.port)
            .field("forwarded", &self.forwarded())
            .field("runtime", &self.runtime.handle().runtime_flavor())
            .finish_non_exhaustive()
    }
}

/// A TLS 1.3 acceptor with a fresh self-signed certificate for `localhost`, whose PEM is
/// written to `ca_path`.
fn localhost_acceptor(ca_path: &Path) -> TlsAcceptor {
    let (acceptor, pem) = localhost_tls();
    std::fs::write(ca_path, pem).expect("write the proxy's certificate");
    acceptor
}

/// A TLS 1.3 acceptor with a fresh self-signed certificate for `localhost`, and that
/// certificate's PEM (what clients trust).
pub(crate) fn localhost_tls() -> (TlsAcceptor, String) {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("a localhost TLS configuration");
    (TlsAcceptor::from(Arc::new(config)), cert.pem())
}

/// Accepts connections until the runtime shuts down, each forwarded on a task of its own.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    relay: SocketAddr,
    forwarded: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let forwarded = Arc::clone(&forwarded);
        tokio::spawn(async move {
            // A failed handshake or an unreachable relay just closes the client's connection,
            // as with a real proxy: the client reports it.
            let _ = forward(client, &acceptor, relay, &forwarded).await;
        });
    }
}

/// Terminates TLS on `client`, connects to the relay, and copies bytes both ways until either
/// side closes. `None` when the handshake or the connection to the relay failed.
async fn forward(
    client: TcpStream,
    acceptor: &TlsAcceptor,
    relay: SocketAddr,
    forwarded: &AtomicU64,
) -> Option<()> {
    let mut tls = timeout(COMMAND_TIMEOUT, acceptor.accept(client))
        .await
        .ok()?
        .ok()?;
    let mut upstream = TcpStream::connect(relay).await.ok()?;
    forwarded.fetch_add(1, Ordering::SeqCst);
    tokio::io::copy_bidirectional(&mut tls, &mut upstream)
        .await
        .ok()
        .map(drop)
}
