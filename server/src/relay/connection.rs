//! One authenticated client connection: the frame loop, and the frame I/O the authentication
//! phase shares.
//!
//! The loop handles one thing at a time — an incoming frame, a wake-up, a ping tick, a
//! finished flush or shutdown. A request is decoded whole and handled, its store write applied,
//! before the next event is looked at, so a device's writes happen in the order it sent them.
//! Only the wait for durability overlaps: a `Send` or `Ack` whose write is applied but not yet
//! flushed waits in `in_flight` (at most [`MAX_IN_FLIGHT`]) while the loop reads the next
//! request, so a device that pipelines its sends shares one group-commit flush among them
//! instead of paying one flush each. Responses leave in request order, each only once its
//! write is durable. Shutdown finishes what is in flight, then closes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use kith_protocol::DecodeError;
use kith_protocol::wire::{ClientFrame, ErrorKind, Response, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::auth::Session;
use super::delivery::Pusher;
use super::handlers::{self, Handled};
use super::observe::{self, AuthenticatedGauge, kind};
use super::registry::Wake;
use super::{Shared, clock};
use crate::store::Store;

/// How long a closing connection waits for the peer's Close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Most requests of one connection waiting for their flush; beyond it the connection stops
/// reading until one finishes (back-pressure on a device that pipelines without limit).
const MAX_IN_FLIGHT: usize = 128;

/// A request whose response waits for its write to be durable: `(request id, response)`.
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Response)> + Send>>;

/// The connection is gone (or must be dropped): nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gone;

/// What arrived from the device, classified.
#[derive(Debug)]
pub(super) enum Incoming {
    /// A whole, decoded request frame.
    Frame(Box<ClientFrame>),
    /// A ping or pong (already answered by tungstenite).
    Control,
    /// A frame that is not a valid request: answer with this error and close.
    Malformed(ErrorKind, &'static str, CloseCode),
    /// The peer sent Close: flush tungstenite's reply and end.
    PeerClosed,
    /// The stream ended or failed.
    Ended,
}

/// What the frame loop reacts to.
enum Event {
    /// The relay is shutting down.
    Shutdown,
    /// A newer connection of the same device took over.
    Replaced,
    /// Something arrived from the device.
    Message(Option<Result<Message, WsError>>),
    /// The registry woke this connection.
    Wake(Wake),
    /// Time to ping (or to give up on a silent peer).
    Tick,
    /// The oldest request in flight is durable: its response.
    Done(u64, Response),
}

/// The WebSocket of one client and what it needs to serve it.
pub(super) struct Connection<S, T> {
    /// Relay-wide state.
    pub(super) shared: Arc<Shared<S>>,
    /// The socket.
    ws: WebSocketStream<T>,
    /// When the device last sent anything (for the idle timeout).
    last_seen: Instant,
    /// Requests whose writes are applied, waiting for durability, in request order.
    in_flight: FuturesOrdered<InFlight>,
}

impl<S: Store, T: AsyncRead + AsyncWrite + Unpin> Connection<S, T> {
    /// A connection over an upgraded WebSocket.
    pub(super) fn new(shared: Arc<Shared<S>>, ws: WebSocketStream<T>) -> Self {
        Self {
            shared,
            ws,
            last_seen: Instant::now(),
            in_flight: FuturesOrdered::new(),
        }
    }

    /// The authenticated phase: registers the device, pushes its queue, then loops until the
    /// connection ends.
    pub(super) async fn serve(&mut self, session: &Session, shutdown: &CancellationToken) {
        let registered = self.shared.registry.register(session.device);
        let _gauge = AuthenticatedGauge::open(&self.shared.counters);
        let mut pusher = Pusher::new(session.device);
        // Transient futures are boxed: an idle connection's task then holds only the loop's own
        // state, not room for the largest request it might handle (SPEC/BENCHMARKS: idle RSS).
        if Box::pin(pusher.push_initial(self)).await.is_err() {
            return;
        }
        let half = (self.shared.settings.idle_timeout / 2).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(clock::deadline(Instant::now(), half), half);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let event = if shutdown.is_cancelled() {
                Event::Shutdown
            } else {
                let room = self.in_flight.len() < MAX_IN_FLIGHT;
                let waiting = !self.in_flight.is_empty();
                tokio::select! {
                    () = shutdown.cancelled() => Event::Shutdown,
                    () = registered.replaced() => Event::Replaced,
                    Some((request_id, response)) = self.in_flight.next(), if waiting => {
                        Event::Done(request_id, response)
                    }
                    message = self.ws.next(), if room => Event::Message(message),
                    wake = registered.woken() => Event::Wake(wake),
                    _ = ticker.tick() => Event::Tick,
                }
            };
            if Box::pin(self.on_event(event, session, &mut pusher))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Reacts to one event; `Err` ends the connection.
    async fn on_event(
        &mut self,
        event: Event,
        session: &Session,
        pusher: &mut Pusher,
    ) -> Result<(), Gone> {
        match event {
            Event::Shutdown => {
                self.finish_in_flight().await?;
                self.close(CloseCode::Away, "relay shutting down").await;
                Err(Gone)
            }
            Event::Replaced => {
                tracing::debug!("connection replaced by a newer one");
                self.finish_in_flight().await?;
                self.close(CloseCode::Normal, "replaced by a newer connection")
                    .await;
                Err(Gone)
            }
            Event::Done(request_id, response) => self.answer_done(request_id, response).await,
            Event::Message(message) => {
                let incoming = self.classify(message);
                self.on_incoming(incoming, session).await
            }
            Event::Wake(wake) => pusher.on_wake(self, wake).await,
            Event::Tick => self.on_tick().await,
        }
    }

    /// Handles what the device sent.
    async fn on_incoming(&mut self, incoming: Incoming, session: &Session) -> Result<(), Gone> {
        match incoming {
            Incoming::Frame(frame) => {
                let ClientFrame {
                    request_id,
                    request,
                } = *frame;
                match handlers::handle(&self.shared, session, request).await {
                    // Nothing waits: answer now. Otherwise queue behind the waiting ones, so
                    // responses keep request order.
                    Handled::Now(response) if self.in_flight.is_empty() => {
                        self.respond(request_id, response).await
                    }
                    Handled::Now(response) => {
                        self.in_flight
                            .push_back(Box::pin(std::future::ready((request_id, response))));
                        Ok(())
                    }
                    Handled::Durable(pending) => {
                        self.in_flight
                            .push_back(Box::pin(pending.map(move |r| (request_id, r))));
                        Ok(())
                    }
                }
            }
            Incoming::Control => Ok(()),
            Incoming::Malformed(kind, detail, code) => {
                self.reject(kind, detail, code).await;
                Err(Gone)
            }
            Incoming::PeerClosed => {
                self.finish_peer_close().await;
                Err(Gone)
            }
            Incoming::Ended => Err(Gone),
        }
    }

    /// Sends the response of a request that became durable, and those of every later one that
    /// is durable too (one flush of the socket for all of them: a group commit finishes many
    /// at once).
    async fn answer_done(&mut self, request_id: u64, response: Response) -> Result<(), Gone> {
        self.feed(&ServerFrame::Response {
            request_id,
            response,
        })
        .await?;
        while let Some(Some((request_id, response))) = self.in_flight.next().now_or_never() {
            self.feed(&ServerFrame::Response {
                request_id,
                response,
            })
            .await?;
        }
        self.flush().await
    }

    /// Waits for every request in flight and answers it (before a close).
    async fn finish_in_flight(&mut self) -> Result<(), Gone> {
        while let Some((request_id, response)) = self.in_flight.next().await {
            self.feed(&ServerFrame::Response {
                request_id,
                response,
            })
            .await?;
        }
        self.flush().await
    }

    /// Pings, or closes a connection that has been silent for `idle_timeout`.
    async fn on_tick(&mut self) -> Result<(), Gone> {
        if self.last_seen.elapsed() >= self.shared.settings.idle_timeout {
            tracing::debug!("closing idle connection");
            self.close(CloseCode::Normal, "idle timeout").await;
            return Err(Gone);
        }
        self.send_message(Message::Ping(Default::default())).await
    }

    /// The next request frame (skipping pings and pongs), for the authentication phase.
    pub(super) async fn next_request(&mut self) -> Incoming {
        loop {
            let message = self.ws.next().await;
            match self.classify(message) {
                Incoming::Control => {}
                other => return other,
            }
        }
    }

    /// Classifies a read result: decodes binary frames whole, rejects everything else.
    fn classify(&mut self, message: Option<Result<Message, WsError>>) -> Incoming {
        let message = match message {
            None => return Incoming::Ended,
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(_))) => {
                return malformed(ErrorKind::TooLarge, "frame too large", CloseCode::Size);
            }
            Some(Err(WsError::Protocol(e))) => {
                observe::count_error(kind::MALFORMED_FRAME);
                tracing::debug!(error = %e, "WebSocket protocol error");
                return Incoming::Ended;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                return Incoming::Ended;
            }
        };
        self.last_seen = Instant::now();
        match message {
            Message::Binary(bytes) => decode(&bytes),
            Message::Text(_) => malformed(
                ErrorKind::BadRequest,
                "text frames are not part of the protocol",
                CloseCode::Unsupported,
            ),
            Message::Close(_) => Incoming::PeerClosed,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Incoming::Control,
        }
    }

    /// Sends one frame and flushes it.
    pub(super) async fn send(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        self.send_message(Message::binary(frame.to_bytes())).await
    }

    /// Queues one frame without flushing (for batches; call [`Connection::flush`] after).
    pub(super) async fn feed(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        let limit = self.shared.settings.idle_timeout;
        match timeout(limit, self.ws.feed(Message::binary(frame.to_bytes()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    /// Flushes queued frames.
    pub(super) async fn flush(&mut self) -> Result<(), Gone> {
        let limit = self.shared.settings.idle_timeout;
        match timeout(limit, self.ws.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    /// Sends the one response to request `request_id`.
    pub(super) async fn respond(
        &mut self,
        request_id: u64,
        response: Response,
    ) -> Result<(), Gone> {
        self.send(&ServerFrame::Response {
            request_id,
            response,
        })
        .await
    }

    /// Answers a frame that has no usable request id with an error (request id 0), then
    /// closes with `code`.
    pub(super) async fn reject(&mut self, kind: ErrorKind, detail: &'static str, code: CloseCode) {
        // Best effort: the peer may be gone already.
        let _ = self.respond(0, observe::error(kind, detail)).await;
        self.close(code, detail).await;
    }

    /// Sends a Close frame and waits briefly for the peer's reply, so the Close is not lost
    /// to a reset.
    pub(super) async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if timeout(CLOSE_GRACE, self.ws.close(Some(frame)))
            .await
            .is_err()
        {
            return;
        }
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// After the peer's Close: lets tungstenite send its reply.
    async fn finish_peer_close(&mut self) {
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Sends one message and flushes it, within `idle_timeout` (a peer that does not read
    /// for that long is dropped).
    async fn send_message(&mut self, message: Message) -> Result<(), Gone> {
        let limit = self.shared.settings.idle_timeout;
        match timeout(limit, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "connection write failed");
                Err(Gone)
            }
            Err(_) => {
                tracing::debug!("connection write timed out");
                Err(Gone)
            }
        }
    }
}

/// Decodes a binary frame whole; any failure is malformed.
fn decode(bytes: &[u8]) -> Incoming {
    match ClientFrame::from_bytes(bytes) {
        Ok(frame) => Incoming::Frame(Box::new(frame)),
        Err(DecodeError::UnsupportedVersion { .. }) => malformed(
            ErrorKind::VersionUnsupported,
            "unsupported wire version",
            CloseCode::Policy,
        ),
        Err(DecodeError::TooLarge { .. }) => {
            malformed(ErrorKind::TooLarge, "frame too large", CloseCode::Size)
        }
        Err(_) => malformed(
            ErrorKind::BadRequest,
            "undecodable frame",
            CloseCode::Policy,
        ),
    }
}

/// A malformed frame, counted.
fn malformed(kind: ErrorKind, detail: &'static str, code: CloseCode) -> Incoming {
    observe::count_error(kind::MALFORMED_FRAME);
    Incoming::Malformed(kind, detail, code)
}
