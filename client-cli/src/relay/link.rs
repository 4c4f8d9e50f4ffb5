//! One authenticated WebSocket connection to the relay.
//!
//! [`Link::connect`] opens TCP, TLS and the WebSocket, and reads the relay's challenge. The
//! login signs the TLS channel binding unless the relay sits behind a TLS-terminating proxy
//! ([`TlsTermination`]); a refused login says which setting to check. A reader task owns the
//! receiving half and forwards decoded frames; the link sends requests one at a time with
//! increasing ids, pairs each with its response, and keeps the pushes that arrive meanwhile,
//! in order, for [`Link::next_push`]. Every wait has a deadline.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use kith_protocol::consts::MAX_FRAME_LEN;
use kith_protocol::wire::{
    self, ClientFrame, Delivery, ErrorKind, Register, Request, Response, ServerFrame,
};
use kith_protocol::{DeviceId, DeviceKeyPair};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use super::reader::{CHANNEL_CAPACITY, Incoming, Socket, read_frames};
use super::transport::{self, Secured};
use super::{LinkError, RelayUrl, TlsTermination, Trust, websocket};

/// Longest wait for the challenge after the WebSocket handshake.
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the response to a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a frame to be handed to the network.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a polite close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A frame the relay pushed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A stored message for this device.
    Deliver(Delivery),
    /// Everything queued when the device authenticated has been pushed.
    QueueDrained,
    /// One-time prekeys are running low on the relay.
    PrekeyCountLow {
        /// One-time X25519 prekeys left.
        one_time_prekeys: u32,
        /// One-time ML-KEM prekeys left.
        one_time_kem_prekeys: u32,
    },
}

/// A connection to the relay.
pub(crate) struct Link {
    /// The relay's URL; its host is the name the device signs.
    url: RelayUrl,
    /// The sending half of the WebSocket.
    sink: SplitSink<Socket, Message>,
    /// Frames from the reader task; closed when the connection ends.
    incoming: mpsc::Receiver<Incoming>,
    /// The reader task, aborted on drop.
    reader: JoinHandle<()>,
    /// The challenge nonce of this connection.
    nonce: [u8; 32],
    /// The TLS channel binding of this connection.
    binding: [u8; 32],
    /// Where TLS ends: whether the login signs `binding` (with a proxy in between, `binding`
    /// is the proxy's TLS session, unknown to the relay).
    termination: TlsTermination,
    /// The id of the next request.
    next_request_id: u64,
    /// Pushes received and not yet taken, in arrival order.
    pushes: VecDeque<Push>,
}

impl Link {
    /// Connects to `url` (TCP, TLS trusting per `trust`, WebSocket) and reads the challenge;
    /// the login will be signed as `termination` requires. Fails if the relay announces a name
    /// other than `url`'s host.
    pub(crate) async fn connect(
        url: &RelayUrl,
        trust: &Trust,
        termination: TlsTermination,
    ) -> Result<Self, LinkError> {
        let Secured { stream, binding } = transport::connect(url, trust.client_config()?).await?;
        let (sink, stream) = websocket::handshake(url, stream).await?.split();
        let (tx, incoming) = mpsc::channel(CHANNEL_CAPACITY);
        let mut link = Self {
            url: url.clone(),
            sink,
            incoming,
            reader: tokio::spawn(read_frames(stream, tx)),
            nonce: [0; 32],
            binding,
            termination,
            next_request_id: 1,
            pushes: VecDeque::new(),
        };
        link.nonce = link.read_challenge().await?;
        Ok(link)
    }

    /// This device's answer to the connection's challenge (for `Register`).
    pub(crate) fn sign_challenge(&self, device: &DeviceKeyPair, device_id: DeviceId) -> [u8; 64] {
        let host = self.url.host();
        let binding = self.termination.binds_login().then_some(&self.binding);
        // `RelayUrl` keeps hosts within the relay-name limit, so signing cannot fail; were it
        // to, the relay would refuse the all-zero signature.
        wire::sign_auth(device, host, &self.nonce, binding, &device_id).unwrap_or([0; 64])
    }

    /// Authenticates as an existing device.
    pub(crate) async fn authenticate(
        &mut self,
        device: &DeviceKeyPair,
        device_id: DeviceId,
    ) -> Result<(), LinkError> {
        let signature = self.sign_challenge(device, device_id);
        self.log_in(Request::Authenticate {
            device_id,
            signature,
        })
        .await
    }

    /// Registers a device (the connection is then authenticated as it).
    pub(crate) async fn register(&mut self, register: Register) -> Result<(), LinkError> {
        self.log_in(Request::Register(Box::new(register))).await
    }

    /// Sends the login request. `Unauthorized` becomes [`LinkError::LoginRefused`]: a device
    /// set up for the wrong [`TlsTermination`] is refused exactly like that, and the relay
    /// cannot say so (it does not know which signature the device meant to send).
    async fn log_in(&mut self, request: Request) -> Result<(), LinkError> {
        self.expect_ok(request).await.map_err(|e| match e {
            LinkError::Relay(ErrorKind::Unauthorized) => LinkError::LoginRefused {
                url: self.url.clone(),
                termination: self.termination,
            },
            other => other,
        })
    }

    /// Sends `request` and waits for its response; an error response is returned as
    /// [`LinkError::Relay`].
    pub(crate) async fn request(&mut self, request: Request) -> Result<Response, LinkError> {
        let request_id = self.send(request).await?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let incoming = timeout_at(deadline, self.incoming.recv())
                .await
                .map_err(|_| self.timeout())?;
            match self.file(incoming, Some(request_id))? {
                Some(Response::Error(frame)) => return Err(LinkError::Relay(frame.kind)),
                Some(response) => return Ok(response),
                None => {}
            }
        }
    }

    /// The next push, waiting at most `timeout` (forever when `None`); `Ok(None)` on timeout.
    /// Cancel-safe: a push is never lost when the returned future is dropped.
    pub(crate) async fn next_push(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Push>, LinkError> {
        // An unrepresentable deadline (a huge timeout) means waiting forever.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(push) = self.pushes.pop_front() {
                return Ok(Some(push));
            }
            // The only await point: `recv` is cancel-safe, and a received frame is filed
            // before anything else can be cancelled.
            let incoming = match deadline {
                Some(deadline) => match timeout_at(deadline, self.incoming.recv()).await {
                    Ok(incoming) => incoming,
                    Err(_) => return Ok(None),
                },
                None => self.incoming.recv().await,
            };
            self.file(incoming, None)?;
        }
    }

    /// Closes the connection politely: sends Close and waits, briefly, for the relay's.
    pub(crate) async fn close(mut self) {
        let polite = async {
            if self.sink.close().await.is_ok() {
                while self.incoming.recv().await.is_some() {}
            }
        };
        let _ = timeout(CLOSE_TIMEOUT, polite).await;
    }

    /// Sends `request` and expects [`Response::Ok`].
    async fn expect_ok(&mut self, request: Request) -> Result<(), LinkError> {
        match self.request(request).await? {
            Response::Ok => Ok(()),
            _ => Err(LinkError::Protocol),
        }
    }

    /// Sends `request` with the next request id; returns the id.
    async fn send(&mut self, request: Request) -> Result<u64, LinkError> {
        let request_id = self.next_request_id;
        self.next_request_id = request_id.wrapping_add(1);
        let bytes = ClientFrame {
            request_id,
            request,
        }
        .to_bytes();
        if bytes.len() > MAX_FRAME_LEN {
            return Err(LinkError::TooLarge);
        }
        match timeout(SEND_TIMEOUT, self.sink.send(Message::binary(bytes))).await {
            Ok(Ok(())) => Ok(request_id),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => Err(self.timeout()),
        }
    }

    /// Reads the challenge, checks the announced name against the URL's host, and returns
    /// the nonce.
    async fn read_challenge(&mut self) -> Result<[u8; 32], LinkError> {
        let incoming = timeout(CHALLENGE_TIMEOUT, self.incoming.recv())
            .await
            .map_err(|_| self.timeout())?;
        match incoming {
            Some(Incoming::Frame(ServerFrame::Challenge { nonce, relay_name })) => {
                if !relay_name.as_str().eq_ignore_ascii_case(self.url.host()) {
                    return Err(LinkError::NameMismatch {
                        connected: self.url.clone(),
                        announced: relay_name.as_str().to_owned(),
                    });
                }
                Ok(nonce)
            }
            Some(_) => Err(LinkError::Protocol),
            None => Err(LinkError::Closed),
        }
    }

    /// Files what the reader passed on: a push is buffered, the response to `awaited` is
    /// returned, a late response to an earlier (abandoned) request is dropped. The end of the
    /// connection, an invalid frame, a second challenge or a response to a request never sent
    /// are errors.
    fn file(
        &mut self,
        incoming: Option<Incoming>,
        awaited: Option<u64>,
    ) -> Result<Option<Response>, LinkError> {
        let frame = match incoming {
            None => return Err(LinkError::Closed),
            Some(Incoming::Invalid) => return Err(LinkError::Protocol),
            Some(Incoming::Frame(frame)) => frame,
        };
        let push = match frame {
            ServerFrame::Response {
                request_id,
                response,
            } => {
                return match request_id {
                    id if Some(id) == awaited => Ok(Some(response)),
                    id if id < self.next_request_id => Ok(None),
                    _ => Err(LinkError::Protocol),
                };
            }
            ServerFrame::Challenge { .. } => return Err(LinkError::Protocol),
            ServerFrame::Deliver(delivery) => Push::Deliver(delivery),
            ServerFrame::QueueDrained => Push::QueueDrained,
            ServerFrame::PrekeyCountLow {
                one_time_prekeys,
                one_time_kem_prekeys,
            } => Push::PrekeyCountLow {
                one_time_prekeys,
                one_time_kem_prekeys,
            },
        };
        self.pushes.push_back(push);
        Ok(None)
    }

    /// The timeout error for this relay.
    fn timeout(&self) -> LinkError {
        LinkError::Timeout {
            url: self.url.clone(),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("termination", &self.termination)
            .field("buffered_pushes", &self.pushes.len())
            .finish_non_exhaustive()
    }
}
