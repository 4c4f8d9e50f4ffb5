//! Group commit: many writers, one flush.
//!
//! sled makes a write durable only at `flush`, and a flush per write is slow (STACK.md measured
//! 175 ms per 1000 single-insert flushes). So one flusher task loops on `Db::flush_async` and
//! each writer waits for a flush that *started after its write*:
//!
//! 1. A writer finishes its sled write, then takes a ticket `mine = written.fetch_add(1) + 1`
//!    and wakes the flusher.
//! 2. The flusher reads `target = written` *before* it starts flushing, flushes, and publishes
//!    `flushed = target` on a `watch` channel.
//! 3. The writer waits until `flushed >= mine`. If its ticket was taken before the flusher read
//!    `target`, its write happened before the flush started, so the flush covers it; otherwise
//!    `mine > target` and it waits for the next round.
//!
//! Writers arriving during a flush share the next one (`Notify` keeps one permit), so a burst
//! of sends costs about two flushes. A failed flush poisons the committer: after an fsync
//! failure nothing can be promised about earlier writes, so every waiter and every later write
//! gets an error instead of a false "durable".
//!
//! A flush that does not finish within the flush timeout counts as failed too. sled 0.34
//! does not report every write failure: when its log write hits `ENOSPC`, `Db::flush` waits
//! forever for the log to become stable (and every transaction waits behind it). Without the
//! timeout the relay would hang, holding every send unanswered, instead of stopping.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::faults::Faults;
use crate::store::StoreError;

/// What the flusher has published.
#[derive(Debug, Clone, Copy, Default)]
struct FlushState {
    /// Every ticket up to this one is durable.
    flushed: u64,
    /// A flush failed; nothing further is durable.
    failed: bool,
    /// The flusher has stopped.
    stopped: bool,
}

/// The writer side shared with the flusher.
#[derive(Debug, Default)]
struct Tickets {
    written: AtomicU64,
    wake: Notify,
    /// Completed flushes, for metrics and tests.
    flushes: AtomicU64,
}

/// The group committer of one sled `Db`.
#[derive(Debug)]
pub(super) struct GroupCommit {
    tickets: Arc<Tickets>,
    state: watch::Receiver<FlushState>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the flusher task on `runtime`; a flush taking longer than `timeout` fails.
    pub(super) fn start(
        db: ::sled::Db,
        runtime: &tokio::runtime::Handle,
        timeout: std::time::Duration,
        faults: Arc<Faults>,
    ) -> Self {
        let tickets = Arc::new(Tickets::default());
        let (state_tx, state) = watch::channel(FlushState::default());
        let (stop, stop_rx) = watch::channel(false);
        let flusher = Flusher {
            db,
            tickets: Arc::clone(&tickets),
            state: state_tx,
            timeout,
            faults,
        };
        let task = runtime.spawn(flusher.run(stop_rx));
        Self {
            tickets,
            state,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Returns once a flush has covered every write this task finished before the call.
    pub(super) async fn durable(&self) -> Result<(), StoreError> {
        self.ticket().await
    }

    /// Takes a ticket for every write finished before the call and returns the wait for the
    /// flush that covers it. The ticket is taken now, not when the future is first polled,
    /// so the caller may apply further writes before awaiting it.
    pub(super) fn ticket(&self) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mine = self.tickets.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.tickets.wake.notify_one();
        let mut state = self.state.clone();
        async move {
            let seen = *state
                .wait_for(|s| s.flushed >= mine || s.failed || s.stopped)
                .await
                .map_err(|_| StoreError::Closed)?;
            if seen.flushed >= mine {
                Ok(())
            } else if seen.failed {
                Err(flush_failed())
            } else {
                Err(StoreError::Closed)
            }
        }
    }

    /// Resolves once a flush has failed (never if the flusher stops normally).
    pub(super) async fn failed(&self) -> StoreError {
        let mut state = self.state.clone();
        let failed = state.wait_for(|s| s.failed).await.is_ok();
        if failed {
            flush_failed()
        } else {
            std::future::pending().await
        }
    }

    /// How many flushes have completed.
    pub(super) fn flushes(&self) -> u64 {
        self.tickets.flushes.load(Ordering::Relaxed)
    }

    /// Stops the flusher after a final flush and waits for it.
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        let task = self
            .task
            .lock()
            .map_err(|_| StoreError::Backend("group commit lock poisoned".into()))?
            .take();
        let Some(task) = task else {
            return Ok(());
        };
        // An error means the flusher is gone already; joining tells how it ended.
        let _ = self.stop.send(true);
        task.await
            .map_err(|_| StoreError::Backend("flusher task failed".into()))?;
        if self.state.borrow().failed {
            return Err(flush_failed());
        }
        Ok(())
    }
}

fn flush_failed() -> StoreError {
    StoreError::Backend("flush failed; writes are no longer durable".into())
}

/// What the flusher task owns.
struct Flusher {
    db: ::sled::Db,
    tickets: Arc<Tickets>,
    state: watch::Sender<FlushState>,
    timeout: std::time::Duration,
    faults: Arc<Faults>,
}

impl Flusher {
    /// The flusher loop: wait for tickets, flush, publish. On stop (or when the store is
    /// dropped, which drops the stop sender) it flushes a last time and ends.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                () = self.tickets.wake.notified() => false,
                _ = stop.changed() => true,
            };
            let target = self.tickets.written.load(Ordering::SeqCst);
            if (stopping || target > self.state.borrow().flushed) && !self.flush(target).await {
                break;
            }
            if stopping {
                break;
            }
        }
        self.state.send_modify(|s| s.stopped = true);
    }

    /// One flush covering every ticket up to `target`; `false` (and the committer marked
    /// failed) if it failed or did not finish in time.
    async fn flush(&self, target: u64) -> bool {
        if let Err(e) = self.faults.on_flush() {
            tracing::error!(error = %e, "flushing the store failed");
            self.state.send_modify(|s| s.failed = true);
            return false;
        }
        let started = std::time::Instant::now();
        // `flush` on a blocking thread rather than `flush_async`: sled's `flush_async`
        // occupies a thread of sled's own small global pool while waiting for a log write
        // queued on that same pool, so several databases in one process (tests) could
        // deadlock. A blocking thread per flush costs nothing measurable here.
        let flushing = self.db.clone();
        let flushed = tokio::time::timeout(
            self.timeout,
            tokio::task::spawn_blocking(move || flushing.flush()),
        )
        .await;
        match flushed {
            Ok(Ok(Ok(_))) => {
                ::metrics::histogram!(crate::metrics::FLUSH_SECONDS).record(started.elapsed());
                self.tickets.flushes.fetch_add(1, Ordering::Relaxed);
                self.state
                    .send_modify(|s| s.flushed = s.flushed.max(target));
                true
            }
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %super::backend(e), "flushing the store failed");
                self.state.send_modify(|s| s.failed = true);
                false
            }
            Ok(Err(_)) => {
                tracing::error!("the flush thread failed");
                self.state.send_modify(|s| s.failed = true);
                false
            }
            Err(_) => {
                tracing::error!(
                    timeout_secs = self.timeout.as_secs(),
                    "a flush of the store has not finished in time: the disk is full or failing"
                );
                self.state.send_modify(|s| s.failed = true);
                false
            }
        }
    }
}
