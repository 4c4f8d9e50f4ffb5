//! [`Link`] against a scripted fake relay (TLS, WebSocket, a challenge, then a script): the
//! challenge and name check, the signed transcript (with and without channel binding), a
//! refused login, request/response pairing, buffered pushes, cancel safety, and what the relay
//! may not send.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kith_protocol::wire::{
    self, ClientFrame, Delivery, ErrorFrame, ErrorKind, Request, Response, ServerFrame,
};
use kith_protocol::{
    BoundedBytes, BoundedString, BoundedVec, DeviceId, DeviceKeyPair, DeviceSigningPublicKey,
};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::testing::{TestCert, WAIT, server_binding, tls_server};
use super::{Link, LinkError, Push, RelayUrl, TlsTermination, Trust};

/// The fake relay's side of the WebSocket.
type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// The nonce of every fake challenge.
const NONCE: [u8; 32] = [5; 32];

/// A fake relay at `wss://host:PORT/` (host resolving to 127.0.0.1) announcing `announced`,
/// then running `script` with the WebSocket and the channel binding. Trusted by fingerprint.
async fn fake_relay<F, Fut>(host: &str, announced: &str, script: F) -> (RelayUrl, Trust)
where
    F: Fn(Ws, [u8; 32]) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cert = TestCert::new(&["127.0.0.1"]);
    let announced = announced.to_owned();
    let script = Arc::new(script);
    let (url, _task) = tls_server(&cert, move |tls| {
        let announced = announced.clone();
        let script = Arc::clone(&script);
        async move {
            let binding = server_binding(&tls);
            let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
            let challenge = ServerFrame::Challenge {
                nonce: NONCE,
                relay_name: BoundedString::new(announced).unwrap(),
            };
            ws.send(Message::binary(challenge.to_bytes()))
                .await
                .unwrap();
            script(ws, binding).await;
        }
    })
    .await;
    let url = RelayUrl::parse(&format!("wss://{host}:{}/", url.port())).unwrap();
    (url, Trust::Fingerprint(cert.fingerprint()))
}

/// The next request the client sent; `None` when it closed.
async fn next_request(ws: &mut Ws) -> Option<ClientFrame> {
    loop {
        match timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Binary(bytes)) => return Some(ClientFrame::from_bytes(&bytes).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Sends `frame` to the client.
async fn push(ws: &mut Ws, frame: ServerFrame) {
    ws.send(Message::binary(frame.to_bytes())).await.unwrap();
}

/// Sends the response to `request_id`.
async fn respond(ws: &mut Ws, request_id: u64, response: Response) {
    push(
        ws,
        ServerFrame::Response {
            request_id,
            response,
        },
    )
    .await;
}

/// A delivery with id `id`.
fn delivery(id: u64) -> Delivery {
    Delivery {
        delivery_id: id,
        arrived_at: 1_700_000_000,
        body: BoundedBytes::new(vec![1, 2, 3]).unwrap(),
        part: None,
    }
}

/// An `Ack` request (small, and any request will do).
fn ack() -> Request {
    Request::Ack {
        deliveries: BoundedVec::new(vec![1]).unwrap(),
    }
}

/// Connects within the test deadline.
async fn connect(url: &RelayUrl, trust: &Trust) -> Result<Link, LinkError> {
    connect_as(url, trust, TlsTermination::Relay).await
}

/// Connects within the test deadline, logging in as `termination` requires.
async fn connect_as(
    url: &RelayUrl,
    trust: &Trust,
    termination: TlsTermination,
) -> Result<Link, LinkError> {
    timeout(WAIT, Link::connect(url, trust, termination))
        .await
        .unwrap()
}

/// A fake relay at `wss://127.0.0.1:PORT/` that checks the `Authenticate` signature over the
/// host, the nonce and, when `binds` (a relay terminating TLS itself), the channel binding; no
/// binding when not (a relay behind a TLS-terminating proxy). Answers `Ok` or `Unauthorized`.
async fn login_checking_relay(key: DeviceSigningPublicKey, binds: bool) -> (RelayUrl, Trust) {
    fake_relay(
        "127.0.0.1",
        "127.0.0.1",
        move |mut ws, binding| async move {
            let frame = next_request(&mut ws).await.unwrap();
            let Request::Authenticate {
                device_id,
                signature,
            } = frame.request
            else {
                panic!("expected Authenticate");
            };
            let binding = binds.then_some(&binding);
            let valid =
                wire::verify_auth(&key, "127.0.0.1", &NONCE, binding, &device_id, &signature);
            let response = if valid {
                Response::Ok
            } else {
                Response::Error(ErrorFrame::new(ErrorKind::Unauthorized, "bad signature"))
            };
            respond(&mut ws, frame.request_id, response).await;
            let _ = next_request(&mut ws).await;
        },
    )
    .await
}

/// Connects to a [`login_checking_relay`] as `termination` and authenticates.
async fn log_in(binds: bool, termination: TlsTermination) -> Result<Link, LinkError> {
    let device = DeviceKeyPair::from_secret_bytes(&[7; 64]);
    let (url, trust) = login_checking_relay(device.signing_public(), binds).await;
    let mut link = connect_as(&url, &trust, termination).await?;
    let device_id = DeviceId::from_bytes([3; 16]);
    timeout(WAIT, link.authenticate(&device, device_id))
        .await
        .unwrap()?;
    Ok(link)
}

#[tokio::test]
async fn authenticate_signs_the_url_host_nonce_and_channel_binding() {
    let link = log_in(true, TlsTermination::Relay).await.unwrap();
    timeout(WAIT, link.close()).await.unwrap();
}

#[tokio::test]
async fn behind_a_proxy_the_login_carries_no_channel_binding() {
    let link = log_in(false, TlsTermination::Proxy).await.unwrap();
    timeout(WAIT, link.close()).await.unwrap();
}

#[tokio::test]
async fn a_login_refused_for_the_wrong_termination_names_the_setting() {
    for (binds, termination, hint) in [
        (
            false,
            TlsTermination::Relay,
            "`kith init --relay-behind-proxy`",
        ),
        (true, TlsTermination::Proxy, "without --relay-behind-proxy"),
    ] {
        let error = log_in(binds, termination).await.err().unwrap();
        let LinkError::LoginRefused {
            termination: refused,
            ..
        } = &error
        else {
            panic!("expected LoginRefused, got {error:?}");
        };
        assert_eq!(*refused, termination);
        assert!(error.to_string().contains(hint), "{error}");
    }
}

#[tokio::test]
async fn the_announced_name_must_match_the_host() {
    let (url, trust) = fake_relay("127.0.0.1", "relay.example", |_ws, _| async {}).await;
    let error = connect(&url, &trust).await.err().unwrap();
    let LinkError::NameMismatch {
        connected,
        announced,
    } = &error
    else {
        panic!("expected NameMismatch, got {error:?}");
    };
    assert_eq!((connected, announced.as_str()), (&url, "relay.example"));
    let expected = format!("connect with wss://relay.example:{}/ instead", url.port());
    assert!(error.to_string().contains(&expected), "{error}");
}

#[tokio::test]
async fn the_name_check_ignores_ascii_case() {
    let (url, trust) = fake_relay("localhost", "LocalHost", |mut ws, _| async move {
        let _ = next_request(&mut ws).await;
    })
    .await;
    connect(&url, &trust).await.unwrap();
}

#[tokio::test]
async fn responses_are_paired_and_pushes_kept_in_order() {
    let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", |mut ws, _| async move {
        let first = next_request(&mut ws).await.unwrap();
        push(&mut ws, ServerFrame::Deliver(delivery(1))).await;
        respond(&mut ws, 0, Response::Ok).await; // a stale response: ignored
        push(&mut ws, ServerFrame::QueueDrained).await;
        respond(
            &mut ws,
            first.request_id,
            Response::Accepted {
                client_message_id: [9; 16],
            },
        )
        .await;
        let second = next_request(&mut ws).await.unwrap();
        assert!(second.request_id > first.request_id);
        push(&mut ws, ServerFrame::Deliver(delivery(2))).await;
        let error = ErrorFrame::new(ErrorKind::HandleTaken, "taken");
        respond(&mut ws, second.request_id, Response::Error(error)).await;
        let _ = next_request(&mut ws).await;
    })
    .await;
    let mut link = connect(&url, &trust).await.unwrap();
    let response = link.request(ack()).await.unwrap();
    assert_eq!(
        response,
        Response::Accepted {
            client_message_id: [9; 16]
        }
    );
    let error = link.request(ack()).await.err().unwrap();
    assert!(
        matches!(error, LinkError::Relay(ErrorKind::HandleTaken)),
        "{error:?}"
    );
    assert_eq!(error.to_string(), ErrorKind::HandleTaken.to_string());
    let expected = [
        Push::Deliver(delivery(1)),
        Push::QueueDrained,
        Push::Deliver(delivery(2)),
    ];
    for want in expected {
        assert_eq!(link.next_push(Some(WAIT)).await.unwrap(), Some(want));
    }
    let nothing = link
        .next_push(Some(Duration::from_millis(20)))
        .await
        .unwrap();
    assert_eq!(nothing, None);
}

#[tokio::test]
async fn next_push_loses_nothing_when_cancelled() {
    const COUNT: u64 = 20;
    let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", |mut ws, _| async move {
        for id in 0..COUNT {
            push(&mut ws, ServerFrame::Deliver(delivery(id))).await;
        }
        let _ = next_request(&mut ws).await;
    })
    .await;
    let expected: Vec<Push> = (0..COUNT).map(|id| Push::Deliver(delivery(id))).collect();
    let mut link = connect(&url, &trust).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < expected.len() && Instant::now() < deadline {
        // Polled once, then dropped unless it finished at once.
        if let Ok(push) = timeout(Duration::ZERO, link.next_push(None)).await {
            seen.push(push.unwrap().unwrap());
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn undecodable_and_text_frames_are_protocol_errors() {
    for bad in [Message::binary(vec![0xFF, 0, 1]), Message::text("hello")] {
        let bad = Arc::new(bad);
        let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", move |mut ws, _| {
            let bad = Message::clone(&bad);
            async move {
                let _ = next_request(&mut ws).await;
                ws.send(bad).await.unwrap();
                let _ = next_request(&mut ws).await;
            }
        })
        .await;
        let mut link = connect(&url, &trust).await.unwrap();
        let error = link.request(ack()).await.err().unwrap();
        assert!(matches!(error, LinkError::Protocol), "{error:?}");
        assert!(error.to_string().contains("does not understand"));
        // The connection is over after that.
        let error = link.next_push(Some(WAIT)).await.err().unwrap();
        assert!(matches!(error, LinkError::Closed), "{error:?}");
    }
}

#[tokio::test]
async fn a_response_to_a_request_never_sent_is_a_protocol_error() {
    let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", |mut ws, _| async move {
        let frame = next_request(&mut ws).await.unwrap();
        respond(&mut ws, frame.request_id + 100, Response::Ok).await;
        let _ = next_request(&mut ws).await;
    })
    .await;
    let mut link = connect(&url, &trust).await.unwrap();
    assert!(matches!(
        link.request(ack()).await,
        Err(LinkError::Protocol)
    ));
}

#[tokio::test]
async fn a_closed_connection_is_reported_as_lost() {
    let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", |mut ws, _| async move {
        ws.close(None).await.unwrap();
        while let Ok(Some(Ok(_))) = timeout(WAIT, ws.next()).await {}
    })
    .await;
    let mut link = connect(&url, &trust).await.unwrap();
    let error = link.next_push(Some(WAIT)).await.err().unwrap();
    assert!(matches!(error, LinkError::Closed), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("connection to the relay was lost")
    );
    assert!(matches!(link.request(ack()).await, Err(LinkError::Closed)));
}

#[tokio::test]
async fn close_sends_a_close_frame() {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let (url, trust) = fake_relay("127.0.0.1", "127.0.0.1", move |mut ws, _| {
        let tx = Arc::clone(&tx);
        async move {
            let closed = loop {
                match timeout(WAIT, ws.next()).await {
                    Ok(Some(Ok(Message::Close(_)))) => break true,
                    Ok(Some(Ok(_))) => {}
                    _ => break false,
                }
            };
            // Reading on lets tungstenite send its reply to the client's Close.
            while let Ok(Some(Ok(_))) = timeout(WAIT, ws.next()).await {}
            let sender = tx.lock().unwrap().take();
            let _ = sender.unwrap().send(closed);
        }
    })
    .await;
    let link = connect(&url, &trust).await.unwrap();
    timeout(WAIT, link.close()).await.unwrap();
    assert!(timeout(WAIT, rx).await.unwrap().unwrap());
}
