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

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kith_protocol::DeviceId;
use tokio::sync::{mpsc, oneshot};

use super::commit::GroupCommit;
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

/// The writer thread and its queue.
#[derive(Debug)]
pub(super) struct Combiner {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Combiner {
    /// Starts the writer thread.
    pub(super) fn start(trees: Arc<Trees>, commit: Arc<GroupCommit>) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("kith-sled-writer".into())
            .spawn(move || run(&trees, &commit, queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
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

/// The writer loop: take what is waiting, apply it in one transaction, reply to each.
fn run(trees: &Trees, commit: &GroupCommit, mut queue: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let applied = apply(trees, &batch);
        ::metrics::histogram!(crate::metrics::WRITE_BATCH_OPS).record(batch.len() as f64);
        match applied {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    // Taken after the transaction: the flush that covers it comes later.
                    let reply = outcome.map(|o| (o, Box::pin(commit.ticket()) as Durable));
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
