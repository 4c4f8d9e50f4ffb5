//! The accept loop and the connection caps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::observe::{self, kind};
use super::{Shared, handshake};
use crate::store::Store;

/// Pause after a failed `accept` (for example out of file descriptors), so the loop does not
/// spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Owns the listening socket and admits connections.
///
/// Two caps, each a semaphore: `max_connections` on all open connections and
/// `max_unauthenticated` on connections that have not authenticated yet (a connection gives
/// back its unauthenticated permit once it authenticates). A connection over either cap is
/// dropped at once, before TLS, and counted as a `connection_cap` error: refusing quickly is
/// kinder to clients than leaving them in the kernel's backlog. Each admitted connection runs
/// in its own task, tracked so that shutdown can wait for it.
pub(super) struct Listener<S> {
    shared: Arc<Shared<S>>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    connections: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    tracker: TaskTracker,
}

/// The cap permits a connection holds.
#[derive(Debug)]
pub(super) struct Permits {
    /// Held for the whole connection.
    pub(super) _connection: OwnedSemaphorePermit,
    /// Held until the connection authenticates.
    pub(super) unauthenticated: Option<OwnedSemaphorePermit>,
}

impl<S: Store> Listener<S> {
    /// A listener for `listener`, spawning connection tasks on `tracker`.
    pub(super) fn new(
        shared: Arc<Shared<S>>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        tracker: TaskTracker,
    ) -> Self {
        // `Semaphore::new` panics above MAX_PERMITS; no real cap is that large.
        let cap = |n: usize| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
        let connections = cap(shared.settings.max_connections);
        let unauthenticated = cap(shared.settings.max_unauthenticated);
        Self {
            shared,
            listener,
            tls: tls.map(TlsAcceptor::from),
            connections,
            unauthenticated,
            tracker,
        }
    }

    /// Accepts connections until `shutdown` is cancelled.
    pub(super) async fn run(self, shutdown: &CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => self.admit(tcp, peer, shutdown),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    /// Starts a connection task, or drops the connection when a cap is reached.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr, shutdown: &CancellationToken) {
        let accepted_at = Instant::now();
        let Some(permits) = self.permits() else {
            observe::count_error(kind::CONNECTION_CAP);
            if self.shared.settings.log_client_ips {
                tracing::debug!(%peer, "connection refused: connection cap reached");
            } else {
                tracing::debug!("connection refused: connection cap reached");
            }
            return;
        };
        // Small frames, latency matters: best effort.
        let _ = tcp.set_nodelay(true);
        let accepted = handshake::Accepted {
            tcp,
            peer,
            accepted_at,
            permits,
        };
        self.tracker.spawn(handshake::run(
            Arc::clone(&self.shared),
            accepted,
            self.tls.clone(),
            shutdown.clone(),
        ));
    }

    /// Both permits, or `None` when either cap is reached.
    fn permits(&self) -> Option<Permits> {
        let connection = Arc::clone(&self.connections).try_acquire_owned().ok()?;
        let unauthenticated = Arc::clone(&self.unauthenticated).try_acquire_owned().ok()?;
        Some(Permits {
            _connection: connection,
            unauthenticated: Some(unauthenticated),
        })
    }
}
