//! The reader task: it owns the receiving half of the WebSocket, so pings are answered and the
//! relay's Close is acknowledged even while nobody is waiting for a frame, and passes decoded
//! frames on through a bounded channel (the relay is slowed down by TCP, not buffered without
//! limit).
//!
//! The channel closing is the end of the connection: the task returns (dropping its sender)
//! when the stream ends, breaks, or sends something invalid.

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use kith_protocol::wire::ServerFrame;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The WebSocket over TLS over TCP.
pub(super) type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Frames that may wait between the reader task and the link.
pub(super) const CHANNEL_CAPACITY: usize = 32;

/// What the reader task passes on.
#[derive(Debug)]
pub(super) enum Incoming {
    /// A decoded frame.
    Frame(ServerFrame),
    /// Something the relay must never send: an undecodable, oversized or text frame. The
    /// connection ends after it.
    Invalid,
}

/// Reads frames until the connection ends or the link goes away.
pub(super) async fn read_frames(mut stream: SplitStream<Socket>, tx: mpsc::Sender<Incoming>) {
    while let Some(message) = stream.next().await {
        let incoming = match message {
            Ok(Message::Binary(bytes)) => match ServerFrame::from_bytes(&bytes) {
                Ok(frame) => Incoming::Frame(frame),
                Err(_) => Incoming::Invalid,
            },
            Ok(Message::Text(_)) | Err(WsError::Capacity(_) | WsError::Utf8(_)) => {
                Incoming::Invalid
            }
            // After a Close, keep polling so tungstenite replies; the stream then ends.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_)) => {
                continue;
            }
            Err(_) => return,
        };
        let invalid = matches!(incoming, Incoming::Invalid);
        if tx.send(incoming).await.is_err() || invalid {
            return;
        }
    }
}
