//! The listening connection: `LISTEN kith_wake` on one dedicated connection (pooled connections
//! drop notifications), driven by one task that turns notifications into [`Wakeup`]s.
//!
//! A notification's payload is `<node id>:<device id>` (hex); a store skips its own (the relay's
//! own registry saw that change). When the connection fails, the task reconnects with backoff,
//! listens again and sends [`Wakeup::Resync`]: notifications sent meanwhile are lost.
//!
//! The wake-up channel is bounded. A wake-up that does not fit is not dropped silently: the
//! task remembers that one was lost and sends [`Wakeup::Resync`] as soon as there is room.

use std::future::poll_fn;
use std::sync::Mutex;
use std::time::Duration;

use kith_protocol::DeviceId;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, Socket};
use tokio_util::sync::CancellationToken;

use super::db_error;
use super::tls::Tls;
use crate::store::{StoreError, Wakeup};

/// The notification channel.
pub(super) const CHANNEL: &str = "kith_wake";
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

type PgConnection = Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

/// The listening task's handle.
#[derive(Debug)]
pub(super) struct Listener {
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Connects and listens (errors are the caller's), then hands the connection to a task.
    pub(super) async fn start(
        config: Config,
        tls: Tls,
        node: String,
        sender: mpsc::Sender<Wakeup>,
    ) -> Result<Self, StoreError> {
        let (client, connection, early) = listen(&config, &tls).await.map_err(|e| db_error(&e))?;
        let cancel = CancellationToken::new();
        let mut forward = Forward {
            sender,
            node,
            resync_pending: false,
        };
        for payload in early {
            forward.notification(&payload);
        }
        let task = Task {
            config,
            tls,
            forward,
            cancel: cancel.clone(),
        };
        let handle = tokio::spawn(task.run(client, connection));
        Ok(Self {
            cancel,
            task: Mutex::new(Some(handle)),
        })
    }

    /// Asks the task to stop (without waiting).
    pub(super) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stops the task and waits for it (which closes the listening connection).
    pub(super) async fn stop(&self) {
        self.cancel.cancel();
        let handle = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

/// Opens a connection and runs `LISTEN`, driving the connection meanwhile. Returns the
/// payloads of notifications that arrived before `LISTEN` completed.
async fn listen(
    config: &Config,
    tls: &Tls,
) -> Result<(Client, PgConnection, Vec<String>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let mut early = Vec::new();
    {
        let sql = format!("LISTEN {CHANNEL}");
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        loop {
            tokio::select! {
                done = &mut listening => { done?; break; }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => early.push(n.payload().to_owned()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    // Closed: the LISTEN future fails next.
                    None => {}
                },
            }
        }
    }
    Ok((client, connection, early))
}

/// Turns payloads into wake-ups on the bounded channel.
struct Forward {
    sender: mpsc::Sender<Wakeup>,
    node: String,
    resync_pending: bool,
}

impl Forward {
    fn notification(&mut self, payload: &str) {
        let Some((node, device)) = payload.split_once(':') else {
            tracing::debug!("ignoring a malformed wake-up notification");
            return;
        };
        if node == self.node {
            return;
        }
        match parse_device(device) {
            Some(device) => self.send(Wakeup::Device(device)),
            None => tracing::debug!("ignoring a malformed wake-up notification"),
        }
    }

    fn send(&mut self, wakeup: Wakeup) {
        if self.resync_pending {
            // A resync covers every device: nothing more to queue until it is out.
            return;
        }
        match self.sender.try_send(wakeup) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => self.resync_pending = true,
        }
    }

    /// Waits for room and sends the pending resync; never completes while none is pending.
    async fn flush_resync(&mut self) {
        if !self.resync_pending {
            return std::future::pending().await;
        }
        if let Ok(permit) = self.sender.reserve().await {
            permit.send(Wakeup::Resync);
        }
        self.resync_pending = false;
    }
}

fn parse_device(hex_id: &str) -> Option<DeviceId> {
    let bytes: [u8; 16] = hex::decode(hex_id).ok()?.try_into().ok()?;
    Some(DeviceId::from_bytes(bytes))
}

/// The listening task.
struct Task {
    config: Config,
    tls: Tls,
    forward: Forward,
    cancel: CancellationToken,
}

impl Task {
    async fn run(mut self, client: Client, connection: PgConnection) {
        let mut current = Some((client, connection));
        while let Some((client, connection)) = current.take() {
            if !self.serve(connection).await {
                return;
            }
            drop(client);
            current = self.reconnect().await;
            if current.is_some() {
                self.forward.resync_pending = false;
                self.forward.send(Wakeup::Resync);
            }
        }
    }

    /// Forwards notifications until the connection fails (`true`) or the task is cancelled
    /// (`false`).
    async fn serve(&mut self, mut connection: PgConnection) -> bool {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                () = self.forward.flush_resync() => {}
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => self.forward.notification(n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %db_error(&e), "lost the database LISTEN connection; reconnecting");
                        return true;
                    }
                    None => {
                        tracing::warn!("the database closed the LISTEN connection; reconnecting");
                        return true;
                    }
                },
            }
        }
    }

    /// Connects and listens again, with backoff; `None` when cancelled.
    async fn reconnect(&mut self) -> Option<(Client, PgConnection)> {
        let mut delay = MIN_BACKOFF;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            let attempt = tokio::select! {
                () = self.cancel.cancelled() => return None,
                attempt = listen(&self.config, &self.tls) => attempt,
            };
            match attempt {
                Ok((client, connection, early)) => {
                    tracing::info!("database LISTEN connection re-established");
                    for payload in early {
                        self.forward.notification(&payload);
                    }
                    return Some((client, connection));
                }
                Err(e) => {
                    tracing::warn!(error = %db_error(&e), "reconnecting the database LISTEN connection failed");
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The payload that wakes `device` on every node but `node`.
pub(super) fn payload(node: &str, device: &DeviceId) -> String {
    format!("{node}:{}", hex::encode(device.as_bytes()))
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::{Forward, payload};
    use crate::store::Wakeup;
    use kith_protocol::DeviceId;

    fn forward(capacity: usize) -> (Forward, mpsc::Receiver<Wakeup>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let forward = Forward {
            sender,
            node: "aaaa".into(),
            resync_pending: false,
        };
        (forward, receiver)
    }

    #[tokio::test]
    async fn own_and_malformed_notifications_are_skipped() {
        let (mut forward, mut rx) = forward(8);
        let device = DeviceId::from_bytes([7; 16]);
        forward.notification(&payload("aaaa", &device));
        forward.notification("no separator");
        forward.notification("bbbb:not hex");
        forward.notification("bbbb:0011");
        forward.notification(&payload("bbbb", &device));
        assert_eq!(rx.try_recv(), Ok(Wakeup::Device(device)));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_channel_turns_into_one_resync_once_there_is_room() {
        let (mut forward, mut rx) = forward(1);
        let (one, two) = (DeviceId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]));
        forward.notification(&payload("bbbb", &one));
        forward.notification(&payload("bbbb", &two));
        forward.notification(&payload("bbbb", &two));
        assert!(forward.resync_pending);
        assert_eq!(rx.recv().await, Some(Wakeup::Device(one)));
        forward.flush_resync().await;
        assert!(!forward.resync_pending);
        assert_eq!(rx.recv().await, Some(Wakeup::Resync));
        assert!(rx.try_recv().is_err());
    }
}
