//! Smoke test of the network relay over real TLS, WebSocket and sled on loopback: two devices
//! register, exchange a sealed message live and one offline, a malformed frame closes only its
//! own connection, and shutdown closes with 1001. The full end-to-end suite lives in `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kith_protocol::consts::labels;
use kith_protocol::rand_core::SeedableRng;
use kith_protocol::wire::{
    ClientFrame, Delivery, ErrorKind, Handle, PrekeyUpload, Recipient, Register, Request, Response,
    SendRequest, ServerFrame, sign_auth,
};
use kith_protocol::{
    AccountKeyPair, BoundedBytes, BoundedVec, DeviceId, DeviceKeyPair, KemPrekeyKind,
    KemPrekeySecret, OneTimePrekeySecret, ResponderPrekeys, Session, SessionMessage,
    SignedPrekeySecret, VerifiedCertificate, open, seal,
};
use kith_relay::relay::{Registration, Relay, RelaySettings};
use kith_relay::store::{SledOptions, SledStore, Store};
use rand_chacha::ChaCha20Rng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<TlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// A device with its secrets.
struct Device {
    keys: DeviceKeyPair,
    certificate: VerifiedCertificate,
    signed: SignedPrekeySecret,
    one_time: OneTimePrekeySecret,
    kem: KemPrekeySecret,
    last_resort: KemPrekeySecret,
}

impl Device {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let account = AccountKeyPair::generate(rng);
        let keys = DeviceKeyPair::generate(rng);
        let certificate = account
            .certify_device(DeviceId::random(rng), &keys, 1_700_000_000)
            .verify()
            .unwrap();
        Self {
            signed: SignedPrekeySecret::generate(1, &keys, rng),
            one_time: OneTimePrekeySecret::generate(100, rng),
            kem: KemPrekeySecret::generate(200, KemPrekeyKind::OneTime, &keys, rng),
            last_resort: KemPrekeySecret::generate(1, KemPrekeyKind::LastResort, &keys, rng),
            keys,
            certificate,
        }
    }

    fn id(&self) -> DeviceId {
        self.certificate.device_id()
    }

    fn upload(&self) -> PrekeyUpload {
        PrekeyUpload {
            signed_prekey: Some(self.signed.public().clone()),
            last_resort_kem_prekey: Some(self.last_resort.public().clone()),
            one_time_prekeys: BoundedVec::new(vec![self.one_time.public().clone()]).unwrap(),
            one_time_kem_prekeys: BoundedVec::new(vec![self.kem.public().clone()]).unwrap(),
        }
    }

    fn sign(&self, challenge: &Challenge) -> [u8; 64] {
        sign_auth(
            &self.keys,
            "localhost",
            &challenge.nonce,
            Some(&challenge.binding),
            &self.id(),
        )
        .unwrap()
    }
}

/// The connection's challenge and channel binding.
struct Challenge {
    nonce: [u8; 32],
    binding: [u8; 32],
}

/// A running relay.
struct TestRelay {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_relay() -> TestRelay {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    let settings = RelaySettings {
        registration: Registration::Open,
        ..RelaySettings::default()
    };
    let relay = Relay::new(Arc::clone(&store), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        relay
            .serve(listener, Some(Arc::new(server)), token)
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    TestRelay {
        addr,
        cert,
        shutdown,
        task,
        _dir: dir,
    }
}

async fn connect(relay: &TestRelay) -> (Ws, Challenge) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(relay.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(relay.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let binding = tls
        .get_ref()
        .1
        .export_keying_material([0u8; 32], labels::TLS_EXPORTER, None)
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async_with_config("wss://localhost/", tls, None)
        .await
        .unwrap();
    let ServerFrame::Challenge { nonce, relay_name } = next_frame(&mut ws).await else {
        panic!("expected a challenge first")
    };
    assert_eq!(relay_name.as_str(), "localhost");
    (ws, Challenge { nonce, binding })
}

/// The next Kith frame, skipping pings.
async fn next_frame(ws: &mut Ws) -> ServerFrame {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
            .expect("stream open")
            .expect("read ok");
        match message {
            Message::Binary(bytes) => return ServerFrame::from_bytes(&bytes).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Sends a request and returns its response and whatever was pushed before it.
async fn request(ws: &mut Ws, request_id: u64, request: Request) -> (Response, Vec<ServerFrame>) {
    let frame = ClientFrame {
        request_id,
        request,
    };
    ws.send(Message::binary(frame.to_bytes())).await.unwrap();
    let mut pushed = Vec::new();
    loop {
        match next_frame(ws).await {
            ServerFrame::Response {
                request_id: id,
                response,
            } => {
                assert_eq!(id, request_id);
                return (response, pushed);
            }
            other => pushed.push(other),
        }
    }
}

/// The next delivery pushed, skipping other pushes.
async fn next_delivery(ws: &mut Ws) -> Delivery {
    loop {
        if let ServerFrame::Deliver(delivery) = next_frame(ws).await {
            return delivery;
        }
    }
}

async fn register(relay: &TestRelay, device: &Device, handle: &str) -> Ws {
    let (mut ws, challenge) = connect(relay).await;
    let register = Register {
        handle: Handle::parse(handle).unwrap(),
        certificate: device.certificate.certificate().clone(),
        prekeys: device.upload(),
        invite: None,
        signature: device.sign(&challenge),
    };
    let (response, _) = request(&mut ws, 1, Request::Register(Box::new(register))).await;
    assert_eq!(response, Response::Ok);
    ws
}

async fn authenticate(relay: &TestRelay, device: &Device) -> Ws {
    let (mut ws, challenge) = connect(relay).await;
    let auth = Request::Authenticate {
        device_id: device.id(),
        signature: device.sign(&challenge),
    };
    let (response, _) = request(&mut ws, 1, auth).await;
    assert_eq!(response, Response::Ok);
    ws
}

fn send_request(id: u8, body: Vec<u8>, to: DeviceId) -> Request {
    Request::Send(SendRequest {
        client_message_id: [id; 16],
        body: BoundedBytes::new(body).unwrap(),
        recipients: BoundedVec::new(vec![Recipient {
            device_id: to,
            part: None,
        }])
        .unwrap(),
    })
}

/// Expects a Close frame with `code` (after at most a few other frames).
async fn expect_close(ws: &mut Ws, code: CloseCode) {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, code);
                return;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn two_devices_exchange_sealed_messages() {
    let relay = start_relay().await;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let alice = Device::new(&mut rng);
    let bob = Device::new(&mut rng);
    let mut alice_ws = register(&relay, &alice, "Alice").await;
    let mut bob_ws = register(&relay, &bob, "bob").await;

    // Alice looks Bob up and fetches his bundle.
    let handle = Handle::parse("bob").unwrap();
    let (response, _) = request(&mut alice_ws, 2, Request::Lookup { handle }).await;
    let Response::Account {
        account_key,
        devices,
    } = response
    else {
        panic!("expected an account")
    };
    assert_eq!(devices.len(), 1);
    let fetch = Request::FetchBundles {
        account_key,
        devices: BoundedVec::default(),
    };
    let (Response::Bundles { bundles }, _) = request(&mut alice_ws, 3, fetch).await else {
        panic!("expected bundles")
    };
    let bundle = bundles.as_slice()[0].verify(&account_key).unwrap();
    let mut alice_session =
        Session::initiate(&alice.keys, &alice.certificate, &bundle, &mut rng).unwrap();

    // Live: Bob is connected.
    let message = alice_session.encrypt(b"hello bob").unwrap();
    let sealed = seal(&alice.certificate, &bob.certificate, &message, &mut rng).unwrap();
    let (response, _) = request(&mut alice_ws, 4, send_request(1, sealed, bob.id())).await;
    assert_eq!(
        response,
        Response::Accepted {
            client_message_id: [1; 16]
        }
    );
    let delivery = next_delivery(&mut bob_ws).await;
    let opened = open(&bob.keys, &bob.certificate, delivery.body.as_slice()).unwrap();
    let SessionMessage::Prekey(prekey) = &opened.message else {
        panic!("first message is a prekey message")
    };
    let prekeys = ResponderPrekeys {
        signed_prekey: &bob.signed,
        one_time_prekey: prekey.one_time_prekey_id().map(|_| &bob.one_time),
        kem_prekey: &bob.kem,
    };
    let (mut bob_session, plaintext) = Session::respond(
        &bob.keys,
        &bob.certificate,
        &prekeys,
        &opened.sender,
        prekey,
        &mut rng,
    )
    .unwrap();
    assert_eq!(plaintext, b"hello bob");
    let ack = Request::Ack {
        deliveries: BoundedVec::new(vec![delivery.delivery_id]).unwrap(),
    };
    assert_eq!(request(&mut bob_ws, 2, ack).await.0, Response::Ok);
    bob_ws.close(None).await.unwrap();

    // Offline: Bob gets it when he reconnects.
    let message = alice_session.encrypt(b"while you were away").unwrap();
    let sealed = seal(&alice.certificate, &bob.certificate, &message, &mut rng).unwrap();
    let (response, _) = request(&mut alice_ws, 5, send_request(2, sealed, bob.id())).await;
    assert!(matches!(response, Response::Accepted { .. }));
    let mut bob_ws = authenticate(&relay, &bob).await;
    let delivery = next_delivery(&mut bob_ws).await;
    assert!(matches!(
        next_frame(&mut bob_ws).await,
        ServerFrame::QueueDrained
    ));
    let opened = open(&bob.keys, &bob.certificate, delivery.body.as_slice()).unwrap();
    let plaintext = bob_session
        .decrypt(&opened.sender, &opened.message, &mut rng)
        .unwrap();
    assert_eq!(plaintext, b"while you were away");

    // A malformed frame closes only Alice's connection.
    alice_ws
        .send(Message::binary(vec![1, 0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let ServerFrame::Response { response, .. } = next_frame(&mut alice_ws).await else {
        panic!("expected an error response")
    };
    assert!(matches!(
        response,
        Response::Error(e) if e.kind == ErrorKind::BadRequest
    ));
    expect_close(&mut alice_ws, CloseCode::Policy).await;
    let handle = Handle::parse("alice").unwrap();
    let (response, _) = request(&mut bob_ws, 3, Request::Lookup { handle }).await;
    assert!(matches!(response, Response::Account { .. }));

    // A text frame before authentication is rejected too.
    let (mut ws, _) = connect(&relay).await;
    ws.send(Message::text("hello")).await.unwrap();
    let ServerFrame::Response { response, .. } = next_frame(&mut ws).await else {
        panic!("expected an error response")
    };
    assert!(matches!(response, Response::Error(_)));
    expect_close(&mut ws, CloseCode::Unsupported).await;

    // Shutdown closes with 1001 and `serve` returns.
    relay.shutdown.cancel();
    expect_close(&mut bob_ws, CloseCode::Away).await;
    tokio::time::timeout(WAIT, relay.task)
        .await
        .unwrap()
        .unwrap();
}
