//! The receiving side of a pair: timestamps every arrival, counts duplicates, keeps bodies for
//! the checks after the phase, and acknowledges in batches without waiting for the answers.

use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::load::{Received, Wire};
use super::net::Link;
use crate::WAIT;

/// Deliveries acknowledged per ack frame (at most; and whatever is pending at the end).
const ACK_BATCH: usize = 64;

/// When a receiver is done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect {
    /// Distinct messages to receive.
    pub(super) messages: usize,
    /// Also wait for the end-of-queue marker (`catchup`).
    pub(super) queue_drained: bool,
}

/// What one receiver recorded.
#[derive(Debug)]
pub(super) struct ReceiverLog {
    /// Per sequence number: the first arrival.
    pub(super) arrived: Vec<Option<Instant>>,
    /// Per sequence number: the body of the first arrival (when the wire keeps bodies).
    pub(super) bodies: Vec<Option<Vec<u8>>>,
    /// Arrivals of a message that had arrived already.
    pub(super) duplicated: u64,
    /// When the end-of-queue marker arrived.
    pub(super) queue_drained: Option<Instant>,
    /// When the last ack answer arrived.
    pub(super) last_ack_answer: Option<Instant>,
}

/// Receives on `link` until `expect` is met and every ack is answered, or until nothing
/// arrives for [`WAIT`]: then what is missing is counted as lost by the caller, and an
/// unanswered ack is an error.
pub(super) async fn receive<W: Wire + ?Sized>(
    wire: &W,
    link: &mut Link,
    pair: usize,
    expect: Expect,
) -> anyhow::Result<ReceiverLog> {
    let mut receiver = Receiver {
        wire,
        link,
        pair,
        expect,
        log: ReceiverLog {
            arrived: vec![None; expect.messages],
            bodies: vec![None; expect.messages],
            duplicated: 0,
            queue_drained: None,
            last_ack_answer: None,
        },
        distinct: 0,
        pending: Vec::with_capacity(ACK_BATCH),
        unanswered: 0,
    };
    receiver.run().await?;
    Ok(receiver.log)
}

/// One receiver's state during a phase.
struct Receiver<'a, W: ?Sized> {
    wire: &'a W,
    link: &'a mut Link,
    pair: usize,
    expect: Expect,
    log: ReceiverLog,
    /// Distinct messages received.
    distinct: usize,
    /// Received, not yet acknowledged.
    pending: Vec<u64>,
    /// Ack frames sent and not yet answered.
    unanswered: usize,
}

impl<W: Wire + ?Sized> Receiver<'_, W> {
    async fn run(&mut self) -> anyhow::Result<()> {
        while !self.done() {
            let Ok(message) = tokio::time::timeout(WAIT, self.link.ws.next()).await else {
                return self.give_up();
            };
            self.on_message(message)?;
            while self.pending.len() < ACK_BATCH {
                match self.link.ws.next().now_or_never() {
                    Some(message) => self.on_message(message)?,
                    None => break,
                }
            }
            let all_in = self.distinct >= self.expect.messages;
            if self.pending.len() >= ACK_BATCH || (all_in && !self.pending.is_empty()) {
                self.ack().await?;
            }
        }
        Ok(())
    }

    /// Everything expected has arrived and every ack has been answered.
    fn done(&self) -> bool {
        self.distinct >= self.expect.messages
            && self.pending.is_empty()
            && self.unanswered == 0
            && (!self.expect.queue_drained || self.log.queue_drained.is_some())
    }

    /// After [`WAIT`] of silence: missing messages are the caller's to count as lost; a
    /// missing ack answer or queue marker is an error here.
    fn give_up(&self) -> anyhow::Result<()> {
        if self.distinct < self.expect.messages {
            return Ok(());
        }
        if self.unanswered > 0 {
            bail!(
                "{} ack requests unanswered after {WAIT:?} of silence",
                self.unanswered
            );
        }
        bail!("no end-of-queue marker within {WAIT:?}")
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        let request_id = self.link.reserve_request_ids(1);
        let frame = self.wire.ack_frame(request_id, &self.pending)?;
        self.pending.clear();
        if self.wire.acks_answered() {
            self.unanswered += 1;
        }
        tokio::time::timeout(WAIT, self.link.ws.send(Message::Binary(frame)))
            .await
            .with_context(|| format!("acknowledging stalled for {WAIT:?}"))?
            .context("acknowledging")
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
        match self.wire.received(self.pair, &bytes)? {
            Received::Delivery { seq, ack_id, body } => self.on_delivery(seq, ack_id, body, now)?,
            Received::AckAnswered => {
                self.unanswered = self.unanswered.saturating_sub(1);
                self.log.last_ack_answer = Some(now);
            }
            Received::QueueDrained => self.log.queue_drained = Some(now),
            Received::Other => {}
        }
        Ok(())
    }

    fn on_delivery(
        &mut self,
        seq: usize,
        ack_id: u64,
        body: Option<Vec<u8>>,
        now: Instant,
    ) -> anyhow::Result<()> {
        self.pending.push(ack_id);
        let Some(arrived) = self.log.arrived.get_mut(seq) else {
            bail!(
                "message {seq} arrived, but only {} were sent",
                self.expect.messages
            );
        };
        if arrived.is_some() {
            self.log.duplicated += 1;
            return Ok(());
        }
        *arrived = Some(now);
        self.log.bodies[seq] = body;
        self.distinct += 1;
        Ok(())
    }
}
