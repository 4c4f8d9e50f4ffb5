//! From TCP accept to an authenticated WebSocket: the TLS handshake (with the channel
//! binding), the WebSocket upgrade with small buffers and the wire limits, and the
//! authentication phase, all within `auth_timeout` of the accept. Then hands over to the
//! [`Connection`] frame loop.

use std::net::SocketAddr;
use std::sync::Arc;

use kith_protocol::consts::labels;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use super::auth;
use super::connection::Connection;
use super::listener::Permits;
use super::observe::{self, ConnectionGauge, kind};
use super::{Shared, clock};
use crate::store::Store;

/// WebSocket read buffer per connection: allocated up front, so it sets the idle cost (an idle
/// device's requests are a few hundred bytes); it grows while larger frames arrive.
pub(super) const READ_BUFFER_SIZE: usize = 1024;
/// WebSocket write buffer target per connection.
pub(super) const WRITE_BUFFER_SIZE: usize = 4 * 1024;
/// Most bytes that may wait in a connection's write buffer.
pub(super) const MAX_WRITE_BUFFER_SIZE: usize = 1024 * 1024;

/// A TCP connection the listener admitted.
#[derive(Debug)]
pub(super) struct Accepted {
    /// The socket.
    pub(super) tcp: TcpStream,
    /// The peer's address (logged only with `log_client_ips`).
    pub(super) peer: SocketAddr,
    /// When it was accepted: the authentication deadline counts from here.
    pub(super) accepted_at: Instant,
    /// Its cap permits.
    pub(super) permits: Permits,
}

/// Runs one admitted connection to its end.
pub(super) async fn run<S: Store>(
    shared: Arc<Shared<S>>,
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let _gauge = ConnectionGauge::open(&shared.counters);
    if shared.settings.log_client_ips {
        tracing::debug!(peer = %accepted.peer, "connection accepted");
    } else {
        tracing::debug!("connection accepted");
    }
    let deadline = clock::deadline(accepted.accepted_at, shared.settings.auth_timeout);
    let Accepted { tcp, permits, .. } = accepted;
    match tls {
        None => start(shared, tcp, None, deadline, permits, &shutdown).await,
        Some(acceptor) => {
            // Boxed, like the other one-off stages: the connection's task keeps, for its whole
            // life, room for the largest future it awaits inline.
            let handshake =
                Box::pin(tls_handshake(&shared, acceptor, tcp, deadline, &shutdown)).await;
            if let Some((stream, binding)) = handshake {
                start(shared, stream, Some(binding), deadline, permits, &shutdown).await;
            }
        }
    }
    tracing::debug!("connection closed");
}

/// The TLS handshake (bounded by `tls_handshake_timeout` and the auth deadline) and the
/// connection's channel binding (SPEC.md §9.2).
async fn tls_handshake<S>(
    shared: &Shared<S>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, [u8; 32])> {
    let limit = deadline.min(clock::deadline(
        Instant::now(),
        shared.settings.tls_handshake_timeout,
    ));
    let result = tokio::select! {
        () = shutdown.cancelled() => return None,
        result = timeout_at(limit, acceptor.accept(tcp)) => result,
    };
    let stream = match result {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            observe::count_error(kind::TLS_HANDSHAKE);
            tracing::debug!(error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            observe::count_error(kind::TLS_HANDSHAKE);
            tracing::debug!("TLS handshake timed out");
            return None;
        }
    };
    let binding = stream
        .get_ref()
        .1
        .export_keying_material([0u8; 32], labels::TLS_EXPORTER, None);
    match binding {
        Ok(binding) => Some((stream, binding)),
        Err(e) => {
            observe::count_error(kind::TLS_HANDSHAKE);
            tracing::warn!(error = %e, "TLS exporter failed");
            None
        }
    }
}

/// The WebSocket configuration: small buffers so an idle connection costs little, and the
/// message and frame limits at `max_frame_len`.
pub(super) fn websocket_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(MAX_WRITE_BUFFER_SIZE.max(max_frame_len.saturating_mul(2)))
        .max_message_size(Some(max_frame_len))
        .max_frame_size(Some(max_frame_len))
}

/// WebSocket handshake, authentication, then the frame loop.
async fn start<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared<S>>,
    stream: T,
    binding: Option<[u8; 32]>,
    deadline: Instant,
    mut permits: Permits,
    shutdown: &CancellationToken,
) {
    let config = websocket_config(shared.settings.max_frame_len);
    let handshake = tokio::select! {
        () = shutdown.cancelled() => return,
        result = timeout_at(deadline, Box::pin(tokio_tungstenite::accept_async_with_config(stream, Some(config)))) => result,
    };
    let ws = match handshake {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            observe::count_error(kind::WS_HANDSHAKE);
            tracing::debug!(error = %e, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            observe::count_error(kind::AUTH_TIMEOUT);
            tracing::debug!("WebSocket handshake timed out");
            return;
        }
    };
    let mut conn = Connection::new(shared, ws);
    let Some(session) = Box::pin(auth::authenticate(
        &mut conn,
        binding.as_ref(),
        deadline,
        shutdown,
    ))
    .await
    else {
        return;
    };
    permits.unauthenticated = None;
    conn.serve(&session, shutdown).await;
}
