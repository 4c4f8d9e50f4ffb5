//! The sending side of a pair: pre-encoded frames written closed loop (a window of
//! outstanding sends) or open loop (a fixed schedule), every write and "accepted" timestamped.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::load::Wire;
use super::net::Link;
use crate::WAIT;

/// Messages read in one go before the sender writes again.
const READ_BATCH: usize = 256;

/// How one sender paces its writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pacing {
    /// At most this many sends awaiting "accepted".
    Window(usize),
    /// Message `i` is due at `first + i × interval`, whatever the answers do.
    Scheduled {
        /// When message 0 is due.
        first: Instant,
        /// Between two messages.
        interval: Duration,
    },
}

/// What one sender recorded, per sequence number.
#[derive(Debug)]
pub(super) struct SenderLog {
    /// The time latency is measured from: the write (closed loop) or the due time (open loop,
    /// so a stall of the system under test is not hidden by a late write).
    pub(super) reference: Vec<Option<Instant>>,
    /// When the frame was handed to the WebSocket.
    pub(super) written: Vec<Option<Instant>>,
    /// When its "accepted" arrived.
    pub(super) accepted: Vec<Option<Instant>>,
}

impl SenderLog {
    fn new(n: usize) -> Self {
        Self {
            reference: vec![None; n],
            written: vec![None; n],
            accepted: vec![None; n],
        }
    }

    /// Records the answer for `seq`; an answer for a message not written, or a second one,
    /// is an error.
    fn accept(&mut self, seq: usize, at: Instant) -> anyhow::Result<()> {
        let slot = self
            .accepted
            .get_mut(seq)
            .with_context(|| format!("\"accepted\" for message {seq}, which does not exist"))?;
        ensure!(slot.is_none(), "message {seq} was accepted twice");
        ensure!(
            self.written[seq].is_some(),
            "message {seq} was accepted before it was sent"
        );
        *slot = Some(at);
        Ok(())
    }
}

/// Sends `frames` on `link` with `pacing` and waits until every one is accepted.
pub(super) async fn send<W: Wire + ?Sized>(
    wire: &W,
    link: &mut Link,
    pair: usize,
    frames: Vec<Bytes>,
    pacing: Pacing,
) -> anyhow::Result<SenderLog> {
    let mut sender = Sender {
        wire,
        link,
        pair,
        log: SenderLog::new(frames.len()),
        outstanding: 0,
    };
    match pacing {
        Pacing::Window(window) => sender.closed_loop(frames, window).await?,
        Pacing::Scheduled { first, interval } => {
            sender.open_loop(frames, first, interval).await?;
        }
    }
    Ok(sender.log)
}

/// One sender's state during a phase.
struct Sender<'a, W: ?Sized> {
    wire: &'a W,
    link: &'a mut Link,
    pair: usize,
    log: SenderLog,
    /// Written but not yet accepted.
    outstanding: usize,
}

impl<W: Wire + ?Sized> Sender<'_, W> {
    /// Keeps `window` sends outstanding until every frame is accepted.
    async fn closed_loop(&mut self, frames: Vec<Bytes>, window: usize) -> anyhow::Result<()> {
        let mut frames = frames.into_iter().enumerate().peekable();
        loop {
            let mut wrote = false;
            while self.outstanding < window.max(1) {
                let Some((seq, frame)) = frames.next() else {
                    break;
                };
                let now = Instant::now();
                self.log.reference[seq] = Some(now);
                self.write(seq, frame, now).await?;
                wrote = true;
            }
            if wrote {
                self.flush().await?;
            }
            if self.outstanding == 0 && frames.peek().is_none() {
                return Ok(());
            }
            self.read_answers().await?;
        }
    }

    /// Writes frame `i` at `first + i × interval`; reads answers in between.
    async fn open_loop(
        &mut self,
        frames: Vec<Bytes>,
        first: Instant,
        interval: Duration,
    ) -> anyhow::Result<()> {
        let due = |seq: usize| first + interval.mul_f64(seq as f64);
        let mut frames = frames.into_iter().enumerate().peekable();
        loop {
            let now = Instant::now();
            let mut wrote = false;
            while let Some((seq, frame)) = frames.next_if(|(seq, _)| due(*seq) <= now) {
                self.log.reference[seq] = Some(due(seq));
                self.write(seq, frame, now).await?;
                wrote = true;
            }
            if wrote {
                self.flush().await?;
            }
            let Some(&(next, _)) = frames.peek() else {
                while self.outstanding > 0 {
                    self.read_answers().await?;
                }
                return Ok(());
            };
            let wake = tokio::time::Instant::from_std(due(next));
            tokio::select! {
                message = self.link.ws.next() => {
                    self.on_message(message)?;
                    self.drain_ready()?;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Hands frame `seq` to the WebSocket (buffered until [`flush`](Self::flush)).
    async fn write(&mut self, seq: usize, frame: Bytes, now: Instant) -> anyhow::Result<()> {
        self.log.written[seq] = Some(now);
        self.outstanding += 1;
        tokio::time::timeout(WAIT, self.link.ws.feed(Message::Binary(frame)))
            .await
            .map_err(|_| anyhow!("writing stalled for {WAIT:?}"))?
            .context("writing")
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, self.link.ws.flush())
            .await
            .map_err(|_| anyhow!("writing stalled for {WAIT:?}"))?
            .context("writing")
    }

    /// Waits for at least one message, then takes every one already there.
    async fn read_answers(&mut self) -> anyhow::Result<()> {
        let message = tokio::time::timeout(WAIT, self.link.ws.next())
            .await
            .map_err(|_| {
                anyhow!(
                    "no answer within {WAIT:?} with {} sends outstanding",
                    self.outstanding
                )
            })?;
        self.on_message(message)?;
        self.drain_ready()
    }

    /// Handles the messages that can be read without waiting.
    fn drain_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..READ_BATCH {
            match self.link.ws.next().now_or_never() {
                Some(message) => self.on_message(message)?,
                None => break,
            }
        }
        Ok(())
    }

    fn on_message(&mut self, message: Option<Result<Message, WsError>>) -> anyhow::Result<()> {
        let now = Instant::now();
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Ok(()),
            Some(Ok(Message::Text(_))) => bail!("a text frame"),
            Some(Ok(Message::Close(_))) | None => bail!("the connection was closed"),
            Some(Err(e)) => return Err(e).context("reading"),
        };
        if let Some(seq) = self.wire.accepted(self.pair, &bytes)? {
            self.log.accept(seq, now)?;
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        Ok(())
    }
}
