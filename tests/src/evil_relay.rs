//! A relay that lies on purpose: a man in the middle between real clients and a real relay,
//! speaking the real wire format on both sides, that lets a test drop, hold, reorder, repeat,
//! rewrite and inject frames. The relay is untrusted by design (SPEC.md §1); the tests built on
//! this prove the client does not trust it.
//!
//! The client connects to [`EvilRelay`] with TLS and WebSocket, trusting its certificate; the
//! evil relay opens a plain WebSocket to a real relay of its own on loopback (run as if behind a
//! TLS-terminating proxy, so the client's login carries no TLS channel binding and can be
//! forwarded, which is exactly what the proxy setting allows). Every frame is decoded:
//! requests are recorded and passed on unchanged, and every frame the real relay sends goes
//! through the test's [`Hook`] first, which decides what the client gets instead.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use kith_protocol::BoundedBytes;
use kith_protocol::wire::{ClientFrame, Delivery, DeliveryId, Request, Response, ServerFrame};
use kith_protocol::{DeviceId, PrekeyBundle};
use kith_relay::config::Config;
use kith_relay::relay::Registration;
use kith_relay::service::{self, Running};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::WAIT;

/// Delivery ids the evil relay makes up for what it injects start here; the real relay's ids
/// are far below. Acknowledgements of these never reach the real relay.
const FIRST_FAKE_DELIVERY_ID: DeliveryId = 1 << 62;

/// Most evil relays (each with a real relay and its sled database) running at once in one test
/// process. [`crate::TestRelay`] allows 4 of its own, and sled 0.34 can deadlock from 7
/// databases flushing at once (see `relay.rs`), so together they stay at 6.
const MAX_RUNNING_EVIL_RELAYS: usize = 2;

fn evil_relay_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_RUNNING_EVIL_RELAYS)))
        .clone()
}

/// What the hook is told about a frame from the real relay.
#[derive(Debug)]
pub struct Context<'a> {
    /// The device logged in on this connection, once it sent `Authenticate` or `Register`.
    pub device: Option<DeviceId>,
    /// For a response, the request it answers.
    pub request: Option<Request>,
    fakes: &'a mut Fakes,
}

impl Context<'_> {
    /// A copy of `delivery` under a made-up id (a replay the real relay knows nothing of; the
    /// evil relay answers its acknowledgement).
    pub fn replay(&mut self, delivery: &Delivery) -> Delivery {
        Delivery {
            part: delivery.part.clone(),
            ..self.fakes.delivery(delivery.body.as_slice().to_vec())
        }
    }
}

/// The delivery ids the evil relay made up.
#[derive(Debug)]
struct Fakes {
    next: DeliveryId,
    ids: HashSet<DeliveryId>,
}

impl Fakes {
    /// A delivery of `body` with a made-up id, remembered so its acknowledgement is answered
    /// by the evil relay.
    fn delivery(&mut self, body: Vec<u8>) -> Delivery {
        let delivery_id = self.next;
        self.next += 1;
        self.ids.insert(delivery_id);
        Delivery {
            delivery_id,
            arrived_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            body: BoundedBytes::new(body).expect("a body within the limit"),
            part: None,
        }
    }
}

/// What the client gets in place of a frame.
#[derive(Debug, Clone)]
pub enum Out {
    /// A frame, encoded canonically.
    Frame(ServerFrame),
    /// Bytes as they are (they need not decode).
    Raw(Vec<u8>),
}

/// Decides what the client gets for each frame the real relay sends: nothing (drop), the frame
/// itself, others, or several. Runs with the evil relay's state locked; keep it quick.
pub type Hook = Box<dyn FnMut(&mut Context<'_>, ServerFrame) -> Vec<Out> + Send>;

/// The hook that changes nothing.
pub fn honest() -> Hook {
    Box::new(|_, frame| vec![Out::Frame(frame)])
}

/// What the evil relay keeps between connections.
struct State {
    hook: Hook,
    /// Every request a client sent, with the device logged in at the time.
    requests: Vec<(Option<DeviceId>, Request)>,
    /// Every delivery pushed to a client (after the hook), with the device it went to.
    delivered: Vec<(DeviceId, Delivery)>,
    /// Bodies to push to a device before its next `QueueDrained`.
    injections: HashMap<DeviceId, Vec<Vec<u8>>>,
    fakes: Fakes,
}

/// A lying relay on a free loopback port, in front of a real relay it starts itself. Stops
/// when dropped.
pub struct EvilRelay {
    port: u16,
    certificate_pem: String,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
    relay: Option<Running>,
    _slot: OwnedSemaphorePermit,
    // Dropped last: the relay must be gone before its data directory is deleted.
    _dir: TempDir,
}

impl EvilRelay {
    /// Starts the real relay (open registration) and the evil relay in front of it, honest
    /// until [`EvilRelay::set_hook`] says otherwise.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registration: Registration::Open,
            listen_plaintext_behind_proxy: true,
            ..Config::default()
        };
        let slot = timeout(Duration::from_secs(600), evil_relay_slots().acquire_owned())
            .await
            .expect("waited too long for another test's evil relay to stop")
            .expect("the semaphore is never closed");
        let relay = timeout(WAIT, service::start(config))
            .await
            .expect("relay start timed out")
            .expect("relay starts");
        let (acceptor, certificate_pem) = crate::cli::proxy::localhost_tls();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the evil relay");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(Mutex::new(State {
            hook: honest(),
            requests: Vec::new(),
            delivered: Vec::new(),
            injections: HashMap::new(),
            fakes: Fakes {
                next: FIRST_FAKE_DELIVERY_ID,
                ids: HashSet::new(),
            },
        }));
        let accept = tokio::spawn(accept_loop(
            listener,
            acceptor,
            relay.relay_addr(),
            Arc::clone(&state),
        ));
        Self {
            port,
            certificate_pem,
            state,
            accept,
            relay: Some(relay),
            _slot: slot,
            _dir: dir,
        }
    }

    /// The port clients connect to, as `wss://localhost:PORT`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The evil relay's certificate (PEM), for clients to trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Replaces the hook; frames from now on go through `hook`.
    pub fn set_hook(&self, hook: Hook) {
        self.lock().hook = hook;
    }

    /// Pushes `body` to `device` as a delivery of the evil relay's own making, just before the
    /// real relay's next `QueueDrained` to it (so a client's next receive sees it). Its
    /// acknowledgement is answered by the evil relay.
    pub fn inject(&self, device: DeviceId, body: Vec<u8>) {
        self.lock().injections.entry(device).or_default().push(body);
    }

    /// Every request clients sent so far, with the device logged in when it was sent.
    pub fn requests(&self) -> Vec<(Option<DeviceId>, Request)> {
        self.lock().requests.clone()
    }

    /// The bodies `device` handed over in `Send` requests so far, oldest first.
    pub fn sent_by(&self, device: DeviceId) -> Vec<Vec<u8>> {
        self.requests()
            .into_iter()
            .filter(|(from, _)| *from == Some(device))
            .filter_map(|(_, request)| match request {
                Request::Send(send) => Some(send.body.as_slice().to_vec()),
                _ => None,
            })
            .collect()
    }

    /// The deliveries pushed to `device` so far (after the hook), oldest first, whether or not
    /// its client read them. The real relay pushes a delivery again on every connection until
    /// it is acknowledged, so one envelope may appear several times.
    pub fn delivered_to(&self, device: DeviceId) -> Vec<Delivery> {
        self.lock()
            .delivered
            .iter()
            .filter(|(to, _)| *to == device)
            .map(|(_, delivery)| delivery.clone())
            .collect()
    }

    /// Stops the evil relay and the real relay.
    pub async fn shutdown(mut self) {
        self.accept.abort();
        if let Some(relay) = self.relay.take() {
            timeout(WAIT, relay.shutdown())
                .await
                .expect("relay shutdown timed out")
                .expect("relay shuts down");
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for EvilRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl std::fmt::Debug for EvilRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvilRelay")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The state, even if a hook panicked while holding it (the test fails anyway).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `bundle` with its ML-KEM prekey's signature broken: well-formed, but the signature chain no
/// longer holds (what a relay substituting its own ML-KEM key would have to hand out).
pub fn with_bad_kem_signature(bundle: &PrekeyBundle) -> PrekeyBundle {
    let mut value = serde_json::to_value(bundle).expect("a bundle as JSON");
    let signature = value["kem_prekey"]["signature"]
        .as_array_mut()
        .expect("the ML-KEM prekey's signature");
    let first = signature[0].as_u64().expect("a byte");
    signature[0] = serde_json::Value::from(first ^ 1);
    serde_json::from_value(value).expect("the bundle back")
}

/// The encoded `Bundles` answer to request `request_id`, with the ML-KEM prekey of its last
/// bundle cut off (the frame ends with it): what a relay stripping post-quantum protection
/// would send. It no longer decodes, since the format has no bundle without an ML-KEM prekey.
pub fn without_kem_prekey(request_id: u64, bundles: &[PrekeyBundle]) -> Vec<u8> {
    let last = bundles.last().expect("at least one bundle");
    let value = serde_json::to_value(last).expect("a bundle as JSON");
    let kem = &value["kem_prekey"];
    let id = kem["id"].as_u64().expect("the ML-KEM prekey's id");
    let public: Vec<u8> = kem["public"]
        .as_array()
        .expect("the ML-KEM public key")
        .iter()
        .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("a byte"))
        .collect();
    let frame = ServerFrame::Response {
        request_id,
        response: Response::Bundles {
            bundles: kith_protocol::BoundedVec::new(bundles.to_vec()).expect("few bundles"),
        },
    };
    let mut bytes = frame.to_bytes();
    // KemPrekey = id:varint u32 || kind:u8 || public:[1184] || signature:[64]
    let cut = bytes.len() - (varint_len(id) + 1 + public.len() + 64);
    let public_at = cut + varint_len(id) + 1;
    assert_eq!(
        bytes[public_at..public_at + public.len()],
        public,
        "the frame ends with the ML-KEM prekey"
    );
    bytes.truncate(cut);
    bytes
}

/// Length of `value` as an unsigned LEB128 varint.
fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Accepts connections until aborted, each served on a task of its own.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    relay: SocketAddr,
    state: Arc<Mutex<State>>,
) {
    let mut connections = Vec::new();
    while let Ok((client, _)) = listener.accept().await {
        connections.retain(|c: &AbortOnDrop| !c.0.is_finished());
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        // A failed connection just closes; the client reports it.
        connections.push(AbortOnDrop(tokio::spawn(async move {
            let _ = serve(client, &acceptor, relay, &state).await;
        })));
    }
}

/// Aborts a connection's task when the accept loop ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// WebSocket limits for both sides: frames up to the protocol's limit.
fn websocket_config() -> WebSocketConfig {
    let max = kith_protocol::consts::MAX_FRAME_LEN;
    WebSocketConfig::default()
        .max_message_size(Some(2 * max))
        .max_frame_size(Some(2 * max))
}

/// Terminates the client's TLS and WebSocket, connects to the real relay, and passes frames
/// both ways until either side closes.
async fn serve(
    client: TcpStream,
    acceptor: &TlsAcceptor,
    relay: SocketAddr,
    state: &Mutex<State>,
) -> anyhow::Result<()> {
    let tls = timeout(WAIT, acceptor.accept(client))
        .await
        .context("TLS handshake timed out")??;
    let client_ws = timeout(
        WAIT,
        tokio_tungstenite::accept_async_with_config(tls, Some(websocket_config())),
    )
    .await
    .context("WebSocket handshake timed out")??;
    let upstream = TcpStream::connect(relay).await?;
    let url = format!("ws://localhost:{}/", relay.port());
    let (relay_ws, _) = timeout(
        WAIT,
        tokio_tungstenite::client_async_with_config(url, upstream, Some(websocket_config())),
    )
    .await
    .context("upstream handshake timed out")??;
    let (mut to_client, mut from_client) = client_ws.split();
    let (mut to_relay, mut from_relay) = relay_ws.split();
    let mut connection = Connection::default();
    loop {
        tokio::select! {
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let (up, down) = connection.on_client_frame(&bytes, state);
                    for frame in up {
                        to_relay.send(Message::binary(frame)).await?;
                    }
                    for frame in down {
                        to_client.send(Message::binary(frame)).await?;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            message = from_relay.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    for frame in connection.on_relay_frame(&bytes, state) {
                        to_client.send(Message::binary(frame)).await?;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = timeout(WAIT, to_relay.close()).await;
    let _ = timeout(WAIT, to_client.close()).await;
    Ok(())
}

/// One client connection: who is logged in, and the requests still waiting for a response.
#[derive(Default)]
struct Connection {
    device: Option<DeviceId>,
    pending: HashMap<u64, Request>,
}

impl Connection {
    /// A frame from the client: returns the frames for the real relay and for the client (the
    /// evil relay answers acknowledgements of its own deliveries itself).
    fn on_client_frame(
        &mut self,
        bytes: &[u8],
        state: &Mutex<State>,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let Ok(frame) = ClientFrame::from_bytes(bytes) else {
            return (vec![bytes.to_vec()], Vec::new());
        };
        match &frame.request {
            Request::Authenticate { device_id, .. } => self.device = Some(*device_id),
            Request::Register(register) => {
                self.device = Some(register.certificate.claimed_device_id())
            }
            _ => {}
        }
        let mut state = lock(state);
        state.requests.push((self.device, frame.request.clone()));
        if let Request::Ack { deliveries } = &frame.request {
            let real: Vec<DeliveryId> = deliveries
                .as_slice()
                .iter()
                .copied()
                .filter(|id| !state.fakes.ids.contains(id))
                .collect();
            if real.len() != deliveries.len() {
                if real.is_empty() {
                    let answer = ServerFrame::Response {
                        request_id: frame.request_id,
                        response: Response::Ok,
                    };
                    return (Vec::new(), vec![answer.to_bytes()]);
                }
                let ack = ClientFrame {
                    request_id: frame.request_id,
                    request: Request::Ack {
                        deliveries: kith_protocol::BoundedVec::new(real).expect("fewer acks"),
                    },
                };
                self.pending.insert(frame.request_id, ack.request.clone());
                return (vec![ack.to_bytes()], Vec::new());
            }
        }
        self.pending.insert(frame.request_id, frame.request);
        (vec![bytes.to_vec()], Vec::new())
    }

    /// A frame from the real relay: what the hook makes of it, preceded by the injected
    /// deliveries when it is this device's `QueueDrained`.
    fn on_relay_frame(&mut self, bytes: &[u8], state: &Mutex<State>) -> Vec<Vec<u8>> {
        let Ok(frame) = ServerFrame::from_bytes(bytes) else {
            return vec![bytes.to_vec()];
        };
        let request = match &frame {
            ServerFrame::Response { request_id, .. } => self.pending.remove(request_id),
            _ => None,
        };
        let mut state = lock(state);
        let State {
            hook,
            delivered,
            injections,
            fakes,
            ..
        } = &mut *state;
        let mut out = Vec::new();
        if let (ServerFrame::QueueDrained, Some(device)) = (&frame, self.device) {
            for body in injections.remove(&device).unwrap_or_default() {
                out.push(Out::Frame(ServerFrame::Deliver(fakes.delivery(body))));
            }
        }
        let mut context = Context {
            device: self.device,
            request,
            fakes,
        };
        out.extend(hook(&mut context, frame));
        out.into_iter()
            .map(|out| match out {
                Out::Frame(frame) => {
                    if let (ServerFrame::Deliver(delivery), Some(device)) = (&frame, self.device) {
                        delivered.push((device, delivery.clone()));
                    }
                    frame.to_bytes()
                }
                Out::Raw(bytes) => bytes,
            })
            .collect()
    }
}
