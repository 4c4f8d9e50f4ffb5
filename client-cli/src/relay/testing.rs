//! Test helpers: self-signed certificates and a local TLS server on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::RelayUrl;

/// The longest any test waits for anything.
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate and its key.
pub(super) struct TestCert {
    /// The certificate (DER).
    pub(super) der: CertificateDer<'static>,
    /// The certificate (PEM).
    pub(super) pem: String,
    /// Its private key (PKCS#8 DER).
    key: Vec<u8>,
}

impl TestCert {
    /// A self-signed certificate for `names` (DNS names or IP addresses), with a common name
    /// unique in this process (so that two test certificates never share an issuer name).
    pub(super) fn new(names: &[&str]) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("kith test relay {serial}"),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            key: key.serialize_der(),
        }
    }

    /// The SHA-256 of the DER encoding.
    pub(super) fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.der.as_ref()).into()
    }

    /// A TLS 1.3 acceptor presenting this certificate.
    fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivatePkcs8KeyDer::from(self.key.clone());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key.into())
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A local server: accepts TCP connections on `127.0.0.1:0`, runs the TLS handshake with
/// `cert`, and hands each established stream to `serve`. Returns the server's URL (host
/// `127.0.0.1`) and the accept task.
pub(super) async fn tls_server<F, Fut>(cert: &TestCert, serve: F) -> (RelayUrl, JoinHandle<()>)
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = cert.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = RelayUrl::parse(&format!("wss://127.0.0.1:{port}/")).unwrap();
    let serve = Arc::new(serve);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let serve = Arc::clone(&serve);
            tokio::spawn(async move {
                if let Ok(Ok(tls)) = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await {
                    serve(tls).await;
                }
            });
        }
    });
    (url, task)
}

/// The TLS exporter value the server side of `tls` computes.
pub(super) fn server_binding(tls: &TlsStream<TcpStream>) -> [u8; 32] {
    tls.get_ref()
        .1
        .export_keying_material([0u8; 32], kith_protocol::consts::labels::TLS_EXPORTER, None)
        .unwrap()
}
