//! The WebSocket client handshake over the relay's TLS stream, with explicit limits.

use std::time::Duration;

use kith_protocol::consts::MAX_FRAME_LEN;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::reader::Socket;
use super::{LinkError, RelayUrl};

/// Longest wait for the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// WebSocket read buffer (tungstenite allocates it up front; its default is 128 KiB).
const READ_BUFFER_SIZE: usize = 8 * 1024;
/// WebSocket write buffer target.
const WRITE_BUFFER_SIZE: usize = 8 * 1024;
/// Most bytes that may wait to be written (tungstenite's default is unlimited); room for
/// several frames of the largest size.
const MAX_WRITE_BUFFER_SIZE: usize = 1024 * 1024;

/// The WebSocket limits: small buffers, and messages and frames no larger than a Kith frame.
pub(super) fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(MAX_WRITE_BUFFER_SIZE.max(2 * MAX_FRAME_LEN))
        .max_message_size(Some(MAX_FRAME_LEN))
        .max_frame_size(Some(MAX_FRAME_LEN))
}

/// The client handshake to `url` over `stream`.
pub(super) async fn handshake(
    url: &RelayUrl,
    stream: TlsStream<TcpStream>,
) -> Result<Socket, LinkError> {
    let handshake =
        tokio_tungstenite::client_async_with_config(url.to_string(), stream, Some(config()));
    match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(handshake_error(url, &e)),
        Err(_) => Err(LinkError::Timeout { url: url.clone() }),
    }
}

/// The error for a failed handshake: the connection broke, or the server is not a relay.
fn handshake_error(url: &RelayUrl, error: &WsError) -> LinkError {
    let detail = match error {
        WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed => {
            return LinkError::Closed;
        }
        WsError::Http(response) => format!("HTTP status {}", response.status()),
        _ => "it answered, but not as a WebSocket server".to_owned(),
    };
    LinkError::NotARelay {
        url: url.clone(),
        detail,
    }
}
