//! TCP and TLS to the relay, with deadlines, the TLS channel binding (SPEC.md §9.2), and TLS
//! failures turned into errors that say whether the certificate was not trusted.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use kith_protocol::consts::labels;
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::pin::FingerprintMismatch;
use super::{LinkError, RelayUrl};

/// Longest wait for the TCP connection (name resolution included).
const TCP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the TLS handshake.
const TLS_TIMEOUT: Duration = Duration::from_secs(15);

/// A TLS connection to the relay and its channel binding.
pub(super) struct Secured {
    /// The TLS stream.
    pub(super) stream: TlsStream<TcpStream>,
    /// The connection's TLS exporter value, signed into the authentication transcript.
    pub(super) binding: [u8; 32],
}

/// Connects to `url`'s host and port over TCP, then TLS with `config`, and exports the
/// channel binding.
pub(super) async fn connect(
    url: &RelayUrl,
    config: Arc<ClientConfig>,
) -> Result<Secured, LinkError> {
    let tcp = connect_tcp(url).await?;
    let name = ServerName::try_from(url.host().to_owned()).map_err(|_| LinkError::Tls {
        url: url.clone(),
        detail: "the host is not a valid TLS server name".to_owned(),
    })?;
    let stream = match timeout(TLS_TIMEOUT, TlsConnector::from(config).connect(name, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(classify(url, &e)),
        Err(_) => return Err(LinkError::Timeout { url: url.clone() }),
    };
    let binding = stream
        .get_ref()
        .1
        .export_keying_material([0u8; 32], labels::TLS_EXPORTER, None)
        .map_err(|e| tls_error(url, &e))?;
    Ok(Secured { stream, binding })
}

/// The TCP connection, with `TCP_NODELAY` (frames are small and latency matters).
async fn connect_tcp(url: &RelayUrl) -> Result<TcpStream, LinkError> {
    let unreachable = |source| LinkError::Unreachable {
        url: url.clone(),
        source,
    };
    let tcp = match timeout(TCP_TIMEOUT, TcpStream::connect((url.host(), url.port()))).await {
        Ok(result) => result.map_err(unreachable)?,
        Err(_) => return Err(LinkError::Timeout { url: url.clone() }),
    };
    tcp.set_nodelay(true).map_err(unreachable)?;
    Ok(tcp)
}

/// The error for a failed TLS handshake. tokio-rustls reports rustls errors as an
/// `io::Error` of kind `InvalidData` wrapping the `rustls::Error`; anything else is the
/// transport failing mid-handshake.
fn classify(url: &RelayUrl, error: &io::Error) -> LinkError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_error(url, tls),
        None => LinkError::Tls {
            url: url.clone(),
            detail: format!(
                "the connection broke during the handshake: {}",
                error.kind()
            ),
        },
    }
}

/// The error for a rustls error.
fn tls_error(url: &RelayUrl, error: &rustls::Error) -> LinkError {
    let url = url.clone();
    match error {
        rustls::Error::InvalidCertificate(cert) => LinkError::NotTrusted {
            url,
            detail: certificate_detail(cert).to_owned(),
        },
        rustls::Error::InvalidMessage(_) => LinkError::Tls {
            url,
            detail: "the server did not answer with TLS".to_owned(),
        },
        rustls::Error::AlertReceived(alert) => LinkError::Tls {
            url,
            detail: format!("the relay refused the handshake: {alert:?}"),
        },
        rustls::Error::PeerIncompatible(_) => LinkError::Tls {
            url,
            detail: "the relay does not support TLS 1.3".to_owned(),
        },
        other => LinkError::Tls {
            url,
            detail: other.to_string(),
        },
    }
}

/// A short, fixed description of why a certificate was refused.
fn certificate_detail(error: &CertificateError) -> &'static str {
    match error {
        CertificateError::UnknownIssuer => "unknown issuer",
        CertificateError::BadSignature => "bad signature",
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "name mismatch"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet"
        }
        CertificateError::Revoked => "revoked",
        CertificateError::BadEncoding => "malformed certificate",
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not a server certificate"
        }
        CertificateError::Other(other)
            if other.0.downcast_ref::<FingerprintMismatch>().is_some() =>
        {
            "fingerprint does not match"
        }
        _ => "rejected certificate",
    }
}
