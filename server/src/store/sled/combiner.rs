//! Write combining: many mailbox writes, one sled transaction.
//!
//! Every sled 0.34 transaction (and `Batch`) starts and ends by sealing and writing the log's
//! current I/O buffer (`PageCache::pin_log`): its cost is a partial-page write and a wait for
//! the log, not the few keys it changes. Measured on the benchmark machine, an enqueue and an
//! ack as two transactions cost ≈ 200 µs and ≈ 13 KB of disk writes, against ≈ 8 µs and
//! ≈ 1.5 KB for inserting the same keys without a transaction; and writers on the runtime's
//! threads spin (`sched_yield`) while another transaction holds the log. So the relay's hot
//! writes — enqueue and ack — are queued to one writer thread, which applies everything
//! waiting (up to [`MAX_BATCH`]) in ONE transaction, in arrival order, each op still
//! all-or-nothing on its own ([`Trees::apply_mailbox_ops`]).
//!
//! sled's transactions also take a process-wide write lock whose read side `Db::flush` holds
//! for the whole flush (fsync included), so a transaction waits for the flush in progress.
//! A caller therefore does not wait for its op to be applied: [`Combiner::queue`] returns once
//! the op is in the queue (queue order = apply order, so a connection's writes keep their
//! order), and the returned future resolves once the op is applied and a group-commit flush
//! covers it (`commit.rs`). While one flush runs, the next batch gathers every connection's
//! pipelined writes.
//!
//! An applied entry is visible to readers before its flush, and a process crash loses what is
//! applied but not flushed. A reader must therefore not hand out an entry before it is durable:
//! if it did, a sender whose send was lost with the crash would send it again and the
//! recipient would get one message as two different entries. [`Combiner::until_durable`] is
//! that gate: the writer records, BEFORE applying a batch, the batch's number against each
//! recipient device, and publishes the number once the batch's flush completes; a reader that
//! read a device's mailbox waits until the last batch recorded for that device is durable.
//! Anything the reader saw was applied by a batch recorded before the read, so after the wait
//! everything it saw is durable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kith_protocol::DeviceId;
use tokio::sync::{mpsc, oneshot, watch};

use super::commit::GroupCommit;
use super::faults::Faults;
use super::mailbox::{MailboxOp, MailboxOutcome};
use super::{Trees, backend};
use crate::store::{DeliveryId, Enqueue, StoreError};

/// Most ops applied in one transaction.
const MAX_BATCH: usize = 256;

/// Ops waiting for the writer; senders wait (back-pressure) beyond this.
const QUEUE: usize = 4096;

/// A mailbox write, owned.
pub(super) enum Op {
    /// Store a send.
    Enqueue(Enqueue),
    /// Delete entries of a device's mailbox.
    Ack(DeviceId, Vec<DeliveryId>),
}

/// Resolves once a group-commit flush covers a write.
type Durable = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What the writer answers: the op's outcome and the wait for its durability.
type Reply = Result<(MailboxOutcome, Durable), StoreError>;

/// One op and where its reply goes.
struct Job {
    op: Op,
    reply: oneshot::Sender<Reply>,
}

/// Which batches are durable, as the writer publishes it.
#[derive(Debug, Clone, Copy, Default)]
struct BatchState {
    /// Every batch numbered up to this one is applied and flushed.
    durable: u64,
    /// A batch's flush failed or the store stopped: nothing later becomes durable.
    ended: bool,
}

/// The writer's record of batches not yet known durable, for [`Combiner::until_durable`].
#[derive(Debug)]
struct Gate {
    /// For each device a batch wrote to (or is writing to), the last such batch. Entries of
    /// durable batches are removed as their flushes complete.
    last_batch: Mutex<HashMap<DeviceId, u64>>,
    state: watch::Sender<BatchState>,
}

impl Gate {
    fn new() -> Self {
        Self {
            last_batch: Mutex::new(HashMap::new()),
            state: watch::channel(BatchState::default()).0,
        }
    }

    /// Records batch `number` against every device it sends to, before it is applied.
    fn record(&self, number: u64, batch: &[Job]) {
        let mut last = self.last_batch.lock().unwrap_or_else(|e| e.into_inner());
        for job in batch {
            if let Op::Enqueue(send) = &job.op {
                for recipient in &send.recipients {
                    last.insert(recipient.device, number);
                }
            }
        }
    }

    /// Batch `number` (and so every earlier one) is durable, or its flush failed.
    fn settle(&self, number: u64, result: &Result<(), StoreError>) {
        if result.is_ok() {
            self.last_batch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, batch| *batch > number);
        }
        self.state.send_modify(|s| match result {
            Ok(()) => s.durable = s.durable.max(number),
            Err(_) => s.ended = true,
        });
    }
}

/// The writer thread and its queue.
#[derive(Debug)]
pub(super) struct Combiner {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    gate: Arc<Gate>,
}

impl Combiner {
    /// Starts the writer thread; `runtime` runs the waits for each batch's flush.
    pub(super) fn start(
        trees: Arc<Trees>,
        commit: Arc<GroupCommit>,
        runtime: tokio::runtime::Handle,
        faults: Arc<Faults>,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let gate = Arc::new(Gate::new());
        let writer = Writer {
            trees,
            commit,
            gate: Arc::clone(&gate),
            runtime,
            faults,
        };
        let thread = std::thread::Builder::new()
            .name("kith-sled-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            gate,
        })
    }

    /// Returns once every mailbox entry of `device` that a reader could see before the call
    /// is durable: call it after reading a mailbox and before handing out what was read.
    /// Immediate unless a batch writing to `device` is still being applied or flushed.
    pub(super) async fn until_durable(&self, device: &DeviceId) -> Result<(), StoreError> {
        let pending = self
            .gate
            .last_batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .copied();
        let Some(batch) = pending else {
            return Ok(());
        };
        let mut state = self.gate.state.subscribe();
        let seen = *state
            .wait_for(|s| s.durable >= batch || s.ended)
            .await
            .map_err(|_| writer_gone())?;
        if seen.durable >= batch {
            Ok(())
        } else {
            Err(StoreError::Backend(
                "a write was not made durable; what was read cannot be handed out".into(),
            ))
        }
    }

    /// Queues `op` (waiting only for room in the queue) and returns the future of its outcome:
    /// ready once the op is applied and durable.
    pub(super) async fn queue(
        &self,
        op: Op,
    ) -> Result<impl Future<Output = Result<MailboxOutcome, StoreError>> + Send + 'static, StoreError>
    {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| writer_gone())?
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        jobs.send(Job { op, reply })
            .await
            .map_err(|_| writer_gone())?;
        Ok(async move {
            let (outcome, durable) = answer.await.map_err(|_| writer_gone())??;
            durable.await?;
            Ok(outcome)
        })
    }

    /// Lets the writer apply what is queued, then stops it and waits for it.
    pub(super) async fn stop(&self) -> Result<(), StoreError> {
        drop(self.jobs.lock().map_err(|_| writer_gone())?.take());
        let thread = self.thread.lock().map_err(|_| writer_gone())?.take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|_| writer_gone())?
                .map_err(|_| writer_gone())?;
        }
        Ok(())
    }
}

/// The writer stopped (or panicked): nothing more can be written.
fn writer_gone() -> StoreError {
    StoreError::Backend("the store's writer thread has stopped".into())
}

/// What the writer thread owns.
struct Writer {
    trees: Arc<Trees>,
    commit: Arc<GroupCommit>,
    gate: Arc<Gate>,
    runtime: tokio::runtime::Handle,
    faults: Arc<Faults>,
}

impl Writer {
    /// The writer loop: take what is waiting, apply it in one transaction, reply to each.
    fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut number = 0u64;
        while let Some(job) = queue.blocking_recv() {
            batch.push(job);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            number += 1;
            self.gate.record(number, &batch);
            let applied = self
                .faults
                .on_apply()
                .and_then(|()| apply(&self.trees, &batch));
            // Taken after the transaction, even a failed one (so that batch numbers and
            // tickets keep the same order): the flush that covers it comes later.
            let flushed = self.commit.ticket();
            let gate = Arc::clone(&self.gate);
            self.runtime.spawn(async move {
                let result = flushed.await;
                gate.settle(number, &result);
            });
            ::metrics::histogram!(crate::metrics::WRITE_BATCH_OPS).record(batch.len() as f64);
            match applied {
                Ok(outcomes) => {
                    for (job, outcome) in batch.drain(..).zip(outcomes) {
                        let reply = outcome.map(|o| (o, Box::pin(self.commit.ticket()) as Durable));
                        // The requester may have gone (connection closed): nothing to tell.
                        let _ = job.reply.send(reply);
                    }
                }
                Err(e) => {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Applies one batch: fresh body ids for the sends, then the transaction.
fn apply(
    trees: &Trees,
    batch: &[Job],
) -> Result<Vec<Result<MailboxOutcome, StoreError>>, StoreError> {
    let mut ops = Vec::with_capacity(batch.len());
    for job in batch {
        ops.push(match &job.op {
            Op::Enqueue(send) => MailboxOp::Enqueue {
                send,
                body_id: trees.db.generate_id().map_err(backend)?,
            },
            Op::Ack(device, ids) => MailboxOp::Ack { device, ids },
        });
    }
    trees.apply_mailbox_ops(&ops)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;
    use crate::store::{MailboxLimits, Recipient};

    fn device(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    fn send_to(devices: &[DeviceId]) -> Job {
        Job {
            op: Op::Enqueue(Enqueue {
                idempotency_key: crate::store::IdempotencyKey::of_message(&[7; 16]),
                body: vec![1, 2, 3],
                recipients: devices
                    .iter()
                    .map(|&device| Recipient { device, part: None })
                    .collect(),
                arrived_at: 1,
                expires_at: 2,
                idempotent_until: 2,
                limits: MailboxLimits {
                    max_entries: 10,
                    max_bytes: 1000,
                },
            }),
            reply: oneshot::channel().0,
        }
    }

    fn combiner_with(gate: Arc<Gate>) -> Combiner {
        Combiner {
            jobs: Mutex::new(None),
            thread: Mutex::new(None),
            gate,
        }
    }

    /// Whether `until_durable(device)` has to wait (its first poll is not ready).
    fn still_waiting(combiner: &Combiner, device: &DeviceId) -> bool {
        combiner.until_durable(device).now_or_never().is_none()
    }

    #[tokio::test]
    async fn a_reader_waits_only_for_batches_that_wrote_to_its_device() {
        let gate = Arc::new(Gate::new());
        let combiner = combiner_with(Arc::clone(&gate));
        gate.record(1, &[send_to(&[device(1), device(2)])]);
        gate.record(2, &[send_to(&[device(2)])]);

        // Nothing pending for device 3.
        combiner.until_durable(&device(3)).await.unwrap();
        assert!(still_waiting(&combiner, &device(1)));

        gate.settle(1, &Ok(()));
        combiner.until_durable(&device(1)).await.unwrap();
        // Device 2's last batch is 2, not yet durable.
        assert!(still_waiting(&combiner, &device(2)));

        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { combiner_with(gate).until_durable(&device(2)).await }
        });
        gate.settle(2, &Ok(()));
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the reader is released by the flush")
            .unwrap()
            .unwrap();
        assert!(gate.last_batch.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_flush_fails_the_reader_instead_of_releasing_it() {
        let gate = Arc::new(Gate::new());
        let combiner = combiner_with(Arc::clone(&gate));
        gate.record(1, &[send_to(&[device(1)])]);
        gate.settle(1, &Err(StoreError::Backend("flush failed".into())));
        assert!(combiner.until_durable(&device(1)).await.is_err());
    }
}
