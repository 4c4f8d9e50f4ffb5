//! Timing one operation in a loop: warm up (which also calibrates the batch size), then the
//! median per-operation time over a few batches. The median of batches rather than the mean
//! keeps one descheduled batch on a busy two-core machine from moving the figure.

use std::time::{Duration, Instant};

/// How long to warm up, how long one batch runs, and how many batches to take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stopwatch {
    warm_up: Duration,
    batch: Duration,
    batches: usize,
}

/// The time of one operation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Median microseconds per operation.
    pub(super) us: f64,
    /// Wall-clock seconds spent measuring it (warm-up included).
    pub(super) seconds: f64,
}

impl Timing {
    /// Operations per second at this cost.
    pub(super) fn per_second(&self) -> f64 {
        1e6 / self.us
    }
}

impl Stopwatch {
    /// ~100 ms batches for figures, ~10 ms for a smoke run.
    pub(super) fn new(quick: bool) -> Self {
        if quick {
            Self {
                warm_up: Duration::from_millis(5),
                batch: Duration::from_millis(10),
                batches: 7,
            }
        } else {
            Self {
                warm_up: Duration::from_millis(50),
                batch: Duration::from_millis(100),
                batches: 7,
            }
        }
    }

    /// Times `op`; the first error stops the measurement and is returned.
    pub(super) fn time(
        &self,
        mut op: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Timing> {
        let started = Instant::now();
        let mut warm = 0u32;
        while warm == 0 || started.elapsed() < self.warm_up {
            op()?;
            warm += 1;
        }
        let per_op = started.elapsed() / warm;
        let per_batch = batch_len(self.batch, per_op);
        let mut samples = Vec::with_capacity(self.batches);
        for _ in 0..self.batches {
            let began = Instant::now();
            for _ in 0..per_batch {
                op()?;
            }
            samples.push(began.elapsed().as_secs_f64() * 1e6 / f64::from(per_batch));
        }
        samples.sort_by(f64::total_cmp);
        Ok(Timing {
            us: samples[samples.len() / 2],
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// How many operations of `per_op` fill one batch of `batch` (at least one).
fn batch_len(batch: Duration, per_op: Duration) -> u32 {
    let ops = batch.as_nanos() / per_op.as_nanos().max(1);
    u32::try_from(ops).unwrap_or(u32::MAX).max(1)
}
