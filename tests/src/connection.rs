//! A device's connection to the relay: TLS (trusting the relay's certificate), WebSocket, the
//! challenge, and request/response pairing with pushed frames buffered in arrival order.
//!
//! Every wait has a deadline; nothing sleeps.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kith_protocol::consts::labels;
use kith_protocol::wire::{
    self, ClientFrame, Delivery, DeliveryId, Recipient, Register, Request, Response, SendRequest,
    ServerFrame,
};
use kith_protocol::{BoundedBytes, BoundedVec, DeviceId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::device::TestDevice;
use crate::{RELAY_NAME, WAIT};

/// The WebSocket path of the relay.
pub const WS_PATH: &str = "/";

/// A frame the relay pushed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A stored message.
    Deliver(Delivery),
    /// The queue at authentication time has been pushed.
    QueueDrained,
    /// One-time prekeys are running low: `(x25519, kem)` left.
    PrekeyCountLow(u32, u32),
}

/// One WebSocket connection to the relay.
///
/// A reader task owns the receiving half, so the WebSocket answers pings and the relay's Close
/// even while a test is not reading; frames wait in a channel until the test asks for them.
pub struct Connection {
    sink: SplitSink<WebSocketStream<TlsStream<TcpStream>>, Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    reader: JoinHandle<()>,
    nonce: [u8; 32],
    announced_name: String,
    binding: [u8; 32],
    next_request_id: u64,
    responses: HashMap<u64, Response>,
    /// Request ids of every response, in the order the responses arrived.
    response_order: Vec<u64>,
    pushes: VecDeque<Push>,
    closed: bool,
}

/// What the reader task passes on.
enum Incoming {
    Frame(ServerFrame),
    /// Something the relay must never send (undecodable or text frames).
    Invalid(String),
    /// The relay closed the connection (Close frame, end of stream or a transport error).
    Closed,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// TLS client configuration trusting exactly the relay's certificate (PEM).
pub fn tls_config(certificate_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certificate_pem.as_bytes()) {
        roots.add(cert.context("relay certificate PEM")?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Connection {
    /// Connects to the relay at `addr` (as host `localhost`), and reads its challenge.
    pub async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        tokio::time::timeout(WAIT, Self::connect_inner(addr, tls))
            .await
            .context("connecting timed out")?
    }

    async fn connect_inner(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(RELAY_NAME)?.to_owned();
        let tls = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let mut binding = [0u8; 32];
        tls.get_ref()
            .1
            .export_keying_material(&mut binding, labels::TLS_EXPORTER, None)
            .context("TLS exporter")?;
        // The client may send frames over the relay's limit (negative tests), and reads frames
        // up to the protocol's limit.
        let config = WebSocketConfig::default()
            .max_message_size(Some(4 * kith_protocol::consts::MAX_FRAME_LEN))
            .max_frame_size(Some(4 * kith_protocol::consts::MAX_FRAME_LEN));
        let url = format!("wss://{RELAY_NAME}:{}{WS_PATH}", addr.port());
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(config))
            .await
            .context("WebSocket handshake")?;
        let (sink, stream) = ws.split();
        let (tx, incoming) = mpsc::unbounded_channel();
        let mut conn = Self {
            sink,
            incoming,
            reader: tokio::spawn(read_frames(stream, tx)),
            nonce: [0; 32],
            announced_name: String::new(),
            binding,
            next_request_id: 1,
            responses: HashMap::new(),
            response_order: Vec::new(),
            pushes: VecDeque::new(),
            closed: false,
        };
        match conn.read_frame().await? {
            ServerFrame::Challenge { nonce, relay_name } => {
                conn.nonce = nonce;
                conn.announced_name = relay_name.as_str().to_owned();
            }
            other => bail!("expected a challenge first, got {other:?}"),
        }
        Ok(conn)
    }

    /// The challenge nonce of this connection.
    pub fn nonce(&self) -> [u8; 32] {
        self.nonce
    }

    /// The relay name announced in the challenge.
    pub fn announced_name(&self) -> &str {
        &self.announced_name
    }

    /// This connection's TLS channel binding.
    pub fn binding(&self) -> [u8; 32] {
        self.binding
    }

    /// `device`'s correct answer to this connection's challenge.
    pub fn sign(&self, device: &TestDevice) -> [u8; 64] {
        wire::sign_auth(
            &device.keys,
            RELAY_NAME,
            &self.nonce,
            Some(&self.binding),
            &device.device_id(),
        )
        .expect("relay name within limit")
    }

    /// Authenticates as `device`.
    pub async fn authenticate(&mut self, device: &TestDevice) -> anyhow::Result<Response> {
        let signature = self.sign(device);
        self.authenticate_with(device.device_id(), signature).await
    }

    /// Sends `Authenticate` with an arbitrary signature.
    pub async fn authenticate_with(
        &mut self,
        device_id: DeviceId,
        signature: [u8; 64],
    ) -> anyhow::Result<Response> {
        self.request(Request::Authenticate {
            device_id,
            signature,
        })
        .await
    }

    /// The `Register` request for `device` on this connection, with every prekey it made.
    pub fn register_request(&self, device: &TestDevice, invite: Option<&str>) -> Register {
        Register {
            handle: device.handle.clone(),
            certificate: device.certificate.certificate().clone(),
            prekeys: device.registration_upload(),
            invite: invite.map(|t| BoundedBytes::new(t.as_bytes().to_vec()).expect("short token")),
            signature: self.sign(device),
        }
    }

    /// Registers `device` (a new account, or a new device of an existing one).
    pub async fn register(
        &mut self,
        device: &TestDevice,
        invite: Option<&str>,
    ) -> anyhow::Result<Response> {
        let register = self.register_request(device, invite);
        self.request(Request::Register(Box::new(register))).await
    }

    /// Sends one message: `body` for every device in `recipients`, without parts.
    pub async fn send(
        &mut self,
        client_message_id: [u8; 16],
        body: Vec<u8>,
        recipients: &[DeviceId],
    ) -> anyhow::Result<Response> {
        let recipients = recipients
            .iter()
            .map(|&device_id| Recipient {
                device_id,
                part: None,
            })
            .collect();
        self.request(Request::Send(SendRequest {
            client_message_id,
            body: BoundedBytes::new(body).context("body over the limit")?,
            recipients: BoundedVec::new(recipients).context("too many recipients")?,
        }))
        .await
    }

    /// Acknowledges deliveries.
    pub async fn ack(&mut self, deliveries: &[DeliveryId]) -> anyhow::Result<Response> {
        let deliveries = BoundedVec::new(deliveries.to_vec()).context("too many acks")?;
        self.request(Request::Ack { deliveries }).await
    }

    /// Sends `request` and waits for its response.
    pub async fn request(&mut self, request: Request) -> anyhow::Result<Response> {
        let id = self.send_request(request).await?;
        self.response(id).await
    }

    /// Sends `request` without waiting; returns its request id.
    pub async fn send_request(&mut self, request: Request) -> anyhow::Result<u64> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let frame = ClientFrame {
            request_id,
            request,
        };
        self.send_raw(Message::binary(frame.to_bytes())).await?;
        Ok(request_id)
    }

    /// Waits for the response to request `request_id`.
    pub async fn response(&mut self, request_id: u64) -> anyhow::Result<Response> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(response) = self.responses.remove(&request_id) {
                return Ok(response);
            }
            self.read_until(deadline).await?;
        }
    }

    /// The request ids of every response so far, in the order they arrived.
    pub fn response_order(&self) -> &[u64] {
        &self.response_order
    }

    /// Sends any WebSocket message (for negative tests).
    pub async fn send_raw(&mut self, message: Message) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, self.sink.send(message))
            .await
            .context("sending timed out")?
            .context("sending")
    }

    /// The next pushed frame of any kind.
    pub async fn next_push(&mut self, timeout: Duration) -> anyhow::Result<Push> {
        self.take_push(timeout, |_| true).await
    }

    /// The next `Deliver`, leaving other pushes buffered.
    pub async fn next_delivery(&mut self, timeout: Duration) -> anyhow::Result<Delivery> {
        match self
            .take_push(timeout, |p| matches!(p, Push::Deliver(_)))
            .await?
        {
            Push::Deliver(delivery) => Ok(delivery),
            other => bail!("unexpected push {other:?}"),
        }
    }

    /// The next `PrekeyCountLow`, leaving other pushes buffered.
    pub async fn next_prekey_count_low(&mut self, timeout: Duration) -> anyhow::Result<(u32, u32)> {
        match self
            .take_push(timeout, |p| matches!(p, Push::PrekeyCountLow(..)))
            .await?
        {
            Push::PrekeyCountLow(x, kem) => Ok((x, kem)),
            other => bail!("unexpected push {other:?}"),
        }
    }

    /// Waits for `QueueDrained`, leaving deliveries buffered.
    pub async fn wait_queue_drained(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.take_push(timeout, |p| matches!(p, Push::QueueDrained))
            .await
            .map(drop)
    }

    /// Waits for `QueueDrained` and returns the deliveries pushed before it, in order.
    pub async fn drain_queue(&mut self, timeout: Duration) -> anyhow::Result<Vec<Delivery>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self
                .pushes
                .iter()
                .position(|p| matches!(p, Push::QueueDrained))
            {
                let mut before: Vec<Push> = self.pushes.drain(..=at).collect();
                before.pop();
                let mut deliveries = Vec::new();
                for push in before {
                    match push {
                        Push::Deliver(delivery) => deliveries.push(delivery),
                        other => self.pushes.push_front(other),
                    }
                }
                return Ok(deliveries);
            }
            self.read_until(deadline).await?;
        }
    }

    /// Deliveries received but not yet taken.
    pub fn buffered_deliveries(&self) -> usize {
        self.pushes
            .iter()
            .filter(|p| matches!(p, Push::Deliver(_)))
            .count()
    }

    /// Whether the relay closes the connection within `timeout`. Frames read meanwhile are
    /// buffered.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            match self.read_until(deadline).await {
                Ok(()) => {}
                Err(_) if self.closed => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether the relay has closed the connection (as far as this client has read).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.sink.close()).await;
    }

    async fn take_push(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Push) -> bool,
    ) -> anyhow::Result<Push> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.pushes.iter().position(&wanted) {
                return Ok(self.pushes.remove(at).expect("position is in range"));
            }
            self.read_until(deadline).await?;
        }
    }

    /// Reads one frame before `deadline` and files it.
    async fn read_until(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let frame = tokio::time::timeout_at(deadline, self.read_frame())
            .await
            .map_err(|_| anyhow!("timed out waiting for the relay"))??;
        match frame {
            ServerFrame::Challenge { .. } => bail!("a second challenge"),
            ServerFrame::Response {
                request_id,
                response,
            } => {
                if self.responses.insert(request_id, response).is_some() {
                    bail!("two responses to request {request_id}");
                }
                self.response_order.push(request_id);
            }
            ServerFrame::Deliver(delivery) => self.pushes.push_back(Push::Deliver(delivery)),
            ServerFrame::QueueDrained => self.pushes.push_back(Push::QueueDrained),
            ServerFrame::PrekeyCountLow {
                one_time_prekeys,
                one_time_kem_prekeys,
            } => self
                .pushes
                .push_back(Push::PrekeyCountLow(one_time_prekeys, one_time_kem_prekeys)),
        }
        Ok(())
    }

    /// The next protocol frame.
    async fn read_frame(&mut self) -> anyhow::Result<ServerFrame> {
        if self.closed {
            bail!("connection closed by the relay");
        }
        match self.incoming.recv().await {
            Some(Incoming::Frame(frame)) => Ok(frame),
            Some(Incoming::Invalid(what)) => bail!("the relay sent {what}"),
            Some(Incoming::Closed) | None => {
                self.closed = true;
                bail!("connection closed by the relay");
            }
        }
    }
}

/// The reader task: decodes frames until the connection ends.
async fn read_frames(
    mut stream: SplitStream<WebSocketStream<TlsStream<TcpStream>>>,
    tx: mpsc::UnboundedSender<Incoming>,
) {
    loop {
        let incoming = match stream.next().await {
            Some(Ok(Message::Binary(bytes))) => match ServerFrame::from_bytes(&bytes) {
                Ok(frame) => Incoming::Frame(frame),
                Err(e) => Incoming::Invalid(format!("an undecodable frame ({e:?})")),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => Incoming::Invalid("a text frame".to_owned()),
            // After a Close, keep polling so tungstenite sends its reply; the stream then ends.
            Some(Ok(Message::Close(_))) => continue,
            None | Some(Err(_)) => {
                let _ = tx.send(Incoming::Closed);
                return;
            }
        };
        if tx.send(incoming).is_err() {
            return;
        }
    }
}
