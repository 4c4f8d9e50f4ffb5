//! The TLS layer against a local rustls server: which certificates each [`Trust`] accepts,
//! the channel binding, and how failures are reported.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::testing::{TestCert, WAIT, server_binding, tls_server};
use super::transport::{self, Secured};
use super::{LinkError, RelayUrl, Trust};

/// Connects to `url` over TCP and TLS trusting `trust`, within the test deadline.
async fn connect(url: &RelayUrl, trust: &Trust) -> Result<Secured, LinkError> {
    let config = trust.client_config()?;
    timeout(WAIT, transport::connect(url, config))
        .await
        .map_err(|_| LinkError::Timeout { url: url.clone() })?
}

/// A server presenting `cert` that writes its channel binding and waits for the client to
/// close.
async fn binding_server(cert: &TestCert) -> RelayUrl {
    let (url, _task) = tls_server(cert, |mut tls| async move {
        let binding = server_binding(&tls);
        let _ = tls.write_all(&binding).await;
        let _ = tls.flush().await;
        let _ = timeout(WAIT, tls.read(&mut [0; 1])).await;
    })
    .await;
    url
}

/// Asserts that connecting succeeds and both ends compute the same channel binding.
async fn assert_accepted(url: &RelayUrl, trust: &Trust) {
    let Secured {
        mut stream,
        binding,
    } = connect(url, trust).await.unwrap();
    let mut from_server = [0u8; 32];
    timeout(WAIT, stream.read_exact(&mut from_server))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding, from_server);
    assert_ne!(binding, [0; 32]);
}

/// Asserts that connecting fails as `NotTrusted` with `expected` as the detail.
async fn assert_not_trusted(url: &RelayUrl, trust: &Trust, expected: &str) {
    match connect(url, trust).await {
        Err(LinkError::NotTrusted { url: u, detail }) => {
            assert_eq!(&u, url);
            assert_eq!(detail, expected);
        }
        other => panic!("expected NotTrusted, got {:?}", other.map(|_| ())),
    }
}

/// The handshake agrees on the hybrid X25519 + ML-KEM-768 group (SECURITY.md: TLS is
/// post-quantum against recorded traffic), whatever the trust mode.
#[tokio::test]
async fn tls_key_exchange_is_the_post_quantum_hybrid() {
    let cert = TestCert::new(&["127.0.0.1"]);
    let url = binding_server(&cert).await;
    for trust in [
        Trust::Certificate(cert.pem.clone()),
        Trust::Fingerprint(cert.fingerprint()),
    ] {
        let Secured { stream, .. } = connect(&url, &trust).await.unwrap();
        let group = stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name());
        assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768));
    }
}

#[tokio::test]
async fn certificate_trust_accepts_the_self_signed_relay_certificate() {
    let cert = TestCert::new(&["127.0.0.1", "localhost"]);
    let url = binding_server(&cert).await;
    assert_accepted(&url, &Trust::Certificate(cert.pem.clone())).await;
}

#[tokio::test]
async fn certificate_trust_accepts_a_pem_with_several_certificates() {
    let cert = TestCert::new(&["127.0.0.1"]);
    let other = TestCert::new(&["other.example"]);
    let url = binding_server(&cert).await;
    let pem = format!("{}{}", other.pem, cert.pem);
    assert_accepted(&url, &Trust::Certificate(pem)).await;
}

#[tokio::test]
async fn certificate_trust_refuses_another_certificate() {
    let cert = TestCert::new(&["127.0.0.1"]);
    let other = TestCert::new(&["127.0.0.1"]);
    let url = binding_server(&cert).await;
    assert_not_trusted(&url, &Trust::Certificate(other.pem), "unknown issuer").await;
}

#[tokio::test]
async fn certificate_trust_checks_the_name() {
    let cert = TestCert::new(&["relay.example"]);
    let url = binding_server(&cert).await;
    assert_not_trusted(&url, &Trust::Certificate(cert.pem.clone()), "name mismatch").await;
}

#[tokio::test]
async fn fingerprint_trust_accepts_the_pinned_certificate_whatever_its_name() {
    let cert = TestCert::new(&["relay.example"]);
    let url = binding_server(&cert).await;
    assert_accepted(&url, &Trust::Fingerprint(cert.fingerprint())).await;
}

#[tokio::test]
async fn fingerprint_trust_refuses_any_other_certificate() {
    let cert = TestCert::new(&["127.0.0.1"]);
    let url = binding_server(&cert).await;
    let mut wrong = cert.fingerprint();
    wrong[31] ^= 1;
    let expected = "fingerprint does not match";
    assert_not_trusted(&url, &Trust::Fingerprint(wrong), expected).await;
    let other = TestCert::new(&["127.0.0.1"]);
    assert_not_trusted(&url, &Trust::Fingerprint(other.fingerprint()), expected).await;
}

#[tokio::test]
async fn not_trusted_message_says_what_to_do() {
    let cert = TestCert::new(&["127.0.0.1"]);
    let url = binding_server(&cert).await;
    let error = connect(&url, &Trust::Fingerprint([0; 32]))
        .await
        .err()
        .unwrap();
    let text = error.to_string();
    assert!(text.contains(&url.to_string()), "{text}");
    assert!(text.contains("fingerprint does not match"), "{text}");
    assert!(text.contains("--relay-fingerprint"), "{text}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = RelayUrl::parse(&format!("wss://127.0.0.1:{port}")).unwrap();
    let error = connect(&url, &Trust::Fingerprint([0; 32]))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, LinkError::Unreachable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("Could not reach the relay at wss://127.0.0.1:")
    );
}

#[tokio::test]
async fn a_server_without_tls_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            let _ = timeout(WAIT, tcp.read(&mut [0; 1024])).await;
        }
    });
    let url = RelayUrl::parse(&format!("wss://127.0.0.1:{port}")).unwrap();
    let error = connect(&url, &Trust::Fingerprint([0; 32]))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, LinkError::Tls { .. }), "{error:?}");
}
