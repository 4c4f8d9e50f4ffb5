//! The bare forwarder: the ceiling of Kith's own network stack (rustls + tokio-tungstenite on
//! tokio), with no storage and no crypto beyond TLS. It runs as a child process of
//! `kith-bench` so its CPU and RSS are its own, like the relay's.
//!
//! One task per connection selects over the socket and a channel of frames to push, like the
//! relay's connection loop; a shared routing table maps client ids to those channels.
//!
//! ```text
//! client → forwarder   hello  = id:u64                      (answered with WELCOME)
//!                      frame  = destination:u64 || seq:u64 || payload   (answered ACCEPTED)
//!                      ack    = 0:u64 || ids...             (read and dropped)
//! forwarder → client   answer = seq:u64 || ACCEPTED | REJECTED | WELCOME (8 bytes each)
//!                      push   = the frame, as received
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::net::ws_config;

/// The first argument that makes `kith-bench` the forwarder.
pub(super) const CHILD_ARG: &str = "__bare-forwarder";
/// The destination of ack frames (never a client id).
pub(super) const ACK_DESTINATION: u64 = 0;
/// Answer tag: the frame was handed to its destination.
pub(super) const ACCEPTED: &[u8; 8] = b"ACCEPTED";
/// Answer tag: no connection has the frame's destination id.
pub(super) const REJECTED: &[u8; 8] = b"REJECTED";
/// Answer tag: the hello was registered.
pub(super) const WELCOME: &[u8; 8] = b"WELCOME!";
/// Length of an answer frame.
pub(super) const ANSWER_LEN: usize = 16;
/// Length of a frame's header (destination and sequence number).
pub(super) const HEADER_LEN: usize = 16;

/// Incoming messages (or queued pushes) handled before one flush.
const BATCH: usize = 64;

/// Who is connected: client id → the channel its connection task pushes from.
type Routes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>>;

/// The forwarder's WebSocket.
type ServerWs = WebSocketStream<TlsStream<TcpStream>>;

/// Serves on 127.0.0.1 until standard input closes: writes the certificate to `cert_out`,
/// then prints `listening: 127.0.0.1:PORT`.
pub(super) fn main(cert_out: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(serve(cert_out))
}

async fn serve(cert_out: &Path) -> anyhow::Result<()> {
    let (acceptor, pem) = tls_acceptor()?;
    std::fs::write(cert_out, pem).with_context(|| format!("writing {}", cert_out.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening: {}", listener.local_addr()?)?;
    stdout.flush()?;
    let routes = Routes::default();
    tokio::select! {
        () = stdin_closed() => Ok(()),
        result = accept(listener, acceptor, routes) => result,
    }
}

/// Resolves when the parent closes our standard input (or exits). Read on a thread of its
/// own: standard input is a blocking file.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// A TLS 1.3 acceptor with a fresh self-signed certificate for `localhost`, and its PEM.
fn tls_acceptor() -> anyhow::Result<(TlsAcceptor, String)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .context("generating a certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), certified.cert.pem()))
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    routes: Routes,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await.context("accepting")?;
        let acceptor = acceptor.clone();
        let routes = Arc::clone(&routes);
        tokio::spawn(async move {
            if let Err(e) = serve_client(tcp, acceptor, routes).await {
                eprintln!("bare forwarder: a connection failed: {e:#}");
            }
        });
    }
}

/// TLS, WebSocket, the hello, then forwarding until the client leaves.
async fn serve_client(tcp: TcpStream, acceptor: TlsAcceptor, routes: Routes) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let tls = acceptor.accept(tcp).await.context("TLS handshake")?;
    let mut ws = tokio_tungstenite::accept_async_with_config(tls, Some(ws_config()))
        .await
        .context("WebSocket handshake")?;
    let id = match ws.next().await {
        Some(Ok(Message::Binary(hello))) => u64::from_be_bytes(
            hello
                .as_ref()
                .try_into()
                .map_err(|_| anyhow!("a hello of {} bytes, not 8", hello.len()))?,
        ),
        other => bail!("expected a hello, got {other:?}"),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    lock(&routes).insert(id, tx);
    ws.send(Message::Binary(answer(id, WELCOME))).await?;
    let mut connection = Connection { ws, rx, routes };
    let result = connection.forward().await;
    lock(&connection.routes).remove(&id);
    result
}

/// One client's connection task.
struct Connection {
    ws: ServerWs,
    /// Frames other connections routed to this client.
    rx: mpsc::UnboundedReceiver<Bytes>,
    routes: Routes,
}

impl Connection {
    /// Until the client closes: forwards what it sends, pushes what is routed to it.
    async fn forward(&mut self) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                message = self.ws.next() => {
                    let Some(message) = message else { return Ok(()) };
                    if !self.on_message(message?).await? {
                        return Ok(());
                    }
                    for _ in 0..BATCH {
                        match self.ws.next().now_or_never() {
                            Some(Some(message)) => {
                                if !self.on_message(message?).await? {
                                    return Ok(());
                                }
                            }
                            Some(None) => return Ok(()),
                            None => break,
                        }
                    }
                }
                frame = self.rx.recv() => {
                    let Some(frame) = frame else { return Ok(()) };
                    self.ws.feed(Message::Binary(frame)).await?;
                    for _ in 0..BATCH {
                        let Ok(frame) = self.rx.try_recv() else { break };
                        self.ws.feed(Message::Binary(frame)).await?;
                    }
                }
            }
            self.ws.flush().await?;
        }
    }

    /// Routes one message; `false` when the client is leaving.
    async fn on_message(&mut self, message: Message) -> anyhow::Result<bool> {
        let frame = match message {
            Message::Binary(frame) => frame,
            Message::Close(_) => return Ok(false),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(true),
            Message::Text(_) => bail!("a text frame"),
        };
        let Some(header) = frame.get(..HEADER_LEN) else {
            bail!("a frame of {} bytes, shorter than its header", frame.len());
        };
        let destination = read_u64(&header[..8]);
        if destination == ACK_DESTINATION {
            return Ok(true);
        }
        let seq = read_u64(&header[8..]);
        let tag = match lock(&self.routes).get(&destination) {
            Some(tx) if tx.send(frame).is_ok() => ACCEPTED,
            _ => REJECTED,
        };
        self.ws.feed(Message::Binary(answer(seq, tag))).await?;
        Ok(true)
    }
}

/// An answer frame: `seq || tag`.
fn answer(seq: u64, tag: &[u8; 8]) -> Bytes {
    let mut frame = Vec::with_capacity(ANSWER_LEN);
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(tag);
    Bytes::from(frame)
}

/// A big-endian u64 from the first 8 bytes of `bytes` (zero-padded when shorter).
pub(super) fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Bytes>>> {
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}
