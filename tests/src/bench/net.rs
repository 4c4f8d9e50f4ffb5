//! Load-client connections: TLS + WebSocket on loopback, and the few relay requests the
//! benchmark setup needs (register, authenticate, fetch a bundle).
//!
//! Unlike [`crate::Connection`], a [`Link`] has no reader task and no buffering: the timed
//! phases drive the raw WebSocket themselves, so that reading, timestamping and batching are
//! under the benchmark's control and cost as little client CPU as possible (the client shares
//! the two cores with the process under test).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use kith_protocol::consts::{MAX_FRAME_LEN, labels};
use kith_protocol::wire::{self, ClientFrame, Request, Response, ServerFrame};
use kith_protocol::{BoundedVec, DeviceId};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::device::TestDevice;
use crate::{RELAY_NAME, WAIT};

/// A client WebSocket over TLS.
pub(super) type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Read and write buffer size of a load client: enough for a window of frames per write,
/// small enough that a thousand pairs cost little memory in the benchmark process.
const CLIENT_BUFFER: usize = 64 * 1024;

/// One load-client connection, with the request ids it has used so far.
pub(super) struct Link {
    /// The WebSocket.
    pub(super) ws: Ws,
    /// The TLS channel binding (signed in the authentication transcript).
    binding: [u8; 32],
    /// The relay's challenge nonce (zero for the bare forwarder, which has none).
    nonce: [u8; 32],
    /// The next request id this connection will use.
    next_request_id: u64,
}

impl Link {
    /// TCP + TLS + WebSocket to `addr` (as host `localhost`), without reading anything.
    pub(super) async fn open(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Self> {
        tokio::time::timeout(WAIT, open_ws(addr, tls))
            .await
            .with_context(|| format!("connecting to {addr} timed out after {WAIT:?}"))?
            .map(|(ws, binding)| Self {
                ws,
                binding,
                nonce: [0; 32],
                next_request_id: 1,
            })
    }

    /// Connects to the relay at `addr` and reads its challenge.
    pub(super) async fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Self> {
        let mut link = Self::open(addr, tls).await?;
        match link.next_frame().await? {
            ServerFrame::Challenge { nonce, .. } => link.nonce = nonce,
            other => bail!("the relay's first frame is not a challenge but {other:?}"),
        }
        Ok(link)
    }

    /// Registers `device` (open registration), which also authenticates this connection,
    /// and waits until the relay has pushed the (empty) queue.
    pub(super) async fn register(&mut self, device: &TestDevice) -> anyhow::Result<()> {
        let register = wire::Register {
            handle: device.handle.clone(),
            certificate: device.certificate.certificate().clone(),
            prekeys: device.registration_upload(),
            invite: None,
            signature: self.sign(device)?,
        };
        let response = self.request(Request::Register(Box::new(register))).await?;
        expect_ok(&response).with_context(|| format!("registering {}", device.handle))?;
        self.wait_queue_drained().await
    }

    /// Authenticates as `device`. The relay starts pushing the device's queue right after.
    pub(super) async fn authenticate(&mut self, device: &TestDevice) -> anyhow::Result<()> {
        let request = Request::Authenticate {
            device_id: device.device_id(),
            signature: self.sign(device)?,
        };
        let response = self.request(request).await?;
        expect_ok(&response).with_context(|| format!("authenticating {}", device.handle))
    }

    /// Fetches the prekey bundle of one device of `account` through the relay, the way the
    /// client library does before its first message.
    pub(super) async fn fetch_bundle(
        &mut self,
        account: kith_protocol::AccountPublicKey,
        device: DeviceId,
    ) -> anyhow::Result<kith_protocol::PrekeyBundle> {
        let request = Request::FetchBundles {
            account_key: account,
            devices: BoundedVec::new(vec![device]).context("one device is within the limit")?,
        };
        match self.request(request).await? {
            Response::Bundles { bundles } => bundles
                .into_vec()
                .into_iter()
                .next()
                .with_context(|| format!("the relay has no prekey bundle for device {device}")),
            other => bail!("FetchBundles answered {other:?}"),
        }
    }

    /// Reserves `count` consecutive request ids (for frames encoded ahead of time) and returns
    /// the first.
    pub(super) fn reserve_request_ids(&mut self, count: usize) -> u64 {
        let first = self.next_request_id;
        self.next_request_id += count as u64;
        first
    }

    /// Sends `request` and waits for its response. Pushes other than deliveries (the queue
    /// marker, prekey notices) are skipped; a delivery during setup is an error.
    async fn request(&mut self, request: Request) -> anyhow::Result<Response> {
        let request_id = self.reserve_request_ids(1);
        let frame = ClientFrame {
            request_id,
            request,
        };
        self.send(Message::binary(frame.to_bytes())).await?;
        loop {
            match self.next_frame().await? {
                ServerFrame::Response {
                    request_id: id,
                    response,
                } if id == request_id => return Ok(response),
                ServerFrame::Response { request_id: id, .. } => {
                    bail!("a response to request {id}, which is not outstanding")
                }
                ServerFrame::Deliver(_) => bail!("a delivery arrived during setup"),
                ServerFrame::Challenge { .. } => bail!("a second challenge"),
                ServerFrame::QueueDrained | ServerFrame::PrekeyCountLow { .. } => {}
            }
        }
    }

    /// Waits for `QueueDrained`; a delivery before it is an error (setup queues are empty).
    pub(super) async fn wait_queue_drained(&mut self) -> anyhow::Result<()> {
        loop {
            match self.next_frame().await? {
                ServerFrame::QueueDrained => return Ok(()),
                ServerFrame::PrekeyCountLow { .. } => {}
                other => bail!("expected the queue marker, got {other:?}"),
            }
        }
    }

    /// Sends one message and flushes it.
    pub(super) async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, self.ws.send(message))
            .await
            .context("sending timed out")?
            .context("sending")
    }

    /// The next binary message, within [`WAIT`].
    pub(super) async fn next_binary(&mut self) -> anyhow::Result<Bytes> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| anyhow!("nothing arrived within {WAIT:?}"))?;
            match message {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => bail!("a text frame"),
                Some(Ok(Message::Close(_))) | None => bail!("the connection was closed"),
                Some(Err(e)) => return Err(e).context("reading"),
            }
        }
    }

    /// The next relay frame, decoded.
    async fn next_frame(&mut self) -> anyhow::Result<ServerFrame> {
        let bytes = self.next_binary().await?;
        ServerFrame::from_bytes(&bytes).map_err(|e| anyhow!("an undecodable frame: {e:?}"))
    }

    /// Closes the connection politely (the device goes offline).
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.ws.close(None)).await;
    }

    /// `device`'s answer to this connection's challenge.
    fn sign(&self, device: &TestDevice) -> anyhow::Result<[u8; 64]> {
        wire::sign_auth(
            &device.keys,
            RELAY_NAME,
            &self.nonce,
            Some(&self.binding),
            &device.device_id(),
        )
        .map_err(|e| anyhow!("signing the challenge: {e:?}"))
    }
}

/// `Ok` or an error naming the response.
fn expect_ok(response: &Response) -> anyhow::Result<()> {
    match response {
        Response::Ok => Ok(()),
        other => bail!("the relay answered {other:?}"),
    }
}

/// TCP (no Nagle) + TLS 1.3 + WebSocket; returns the socket and the TLS channel binding.
async fn open_ws(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<(Ws, [u8; 32])> {
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
    let url = format!("wss://{RELAY_NAME}:{}/", addr.port());
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(ws_config()))
        .await
        .context("WebSocket handshake")?;
    Ok((ws, binding))
}

/// The WebSocket settings of load clients (client and forwarder alike).
pub(super) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(CLIENT_BUFFER)
        .write_buffer_size(CLIENT_BUFFER)
        .max_message_size(Some(MAX_FRAME_LEN))
        .max_frame_size(Some(MAX_FRAME_LEN))
}
