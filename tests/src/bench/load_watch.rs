//! Resource use of the processes under test during a timed phase: peak RSS (sampled every
//! 100 ms in the background) and CPU seconds, next to the benchmark client's own CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Figures;
use super::stats;

/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Watches processes from [`start`](Self::start) to [`finish`](Self::finish).
pub(super) struct ProcessWatch {
    pids: Vec<u32>,
    cpu_before: f64,
    client_cpu_before: f64,
    peak_rss: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

/// What the watched processes used.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    /// Peak of the summed RSS, in bytes.
    pub(super) peak_rss: u64,
    /// CPU seconds of the watched processes together.
    pub(super) cpu_seconds: f64,
    /// CPU seconds of this (the client) process.
    pub(super) client_cpu_seconds: f64,
}

impl ProcessWatch {
    /// Starts watching `pids` (their RSS is summed: several relay nodes count as one system).
    pub(super) fn start(pids: Vec<u32>) -> anyhow::Result<Self> {
        let cpu_before = total_cpu(&pids)?;
        let client_cpu_before = stats::cpu_seconds(std::process::id())?;
        let peak_rss = Arc::new(AtomicU64::new(total_rss(&pids)?));
        let sampler = tokio::spawn(sample(pids.clone(), Arc::clone(&peak_rss)));
        Ok(Self {
            pids,
            cpu_before,
            client_cpu_before,
            peak_rss,
            sampler,
        })
    }

    /// Stops watching and returns the usage since [`start`](Self::start).
    pub(super) fn finish(self) -> anyhow::Result<Usage> {
        self.sampler.abort();
        self.peak_rss
            .fetch_max(total_rss(&self.pids)?, Ordering::Relaxed);
        Ok(Usage {
            peak_rss: self.peak_rss.load(Ordering::Relaxed),
            cpu_seconds: total_cpu(&self.pids)? - self.cpu_before,
            client_cpu_seconds: stats::cpu_seconds(std::process::id())? - self.client_cpu_before,
        })
    }
}

impl Drop for ProcessWatch {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

impl Usage {
    /// Sets `rss_bytes`, `{who}_cpu_seconds`, `{who}_cpu_cores` and `client_cpu_cores`, the
    /// cores over the figures' `seconds`.
    pub(super) fn record(&self, figures: &mut Figures, who: &str) {
        let seconds = figures.seconds;
        figures.rss_bytes = Some(self.peak_rss);
        figures.set(&format!("{who}_cpu_seconds"), round3(self.cpu_seconds));
        if seconds > 0.0 {
            figures.set(
                &format!("{who}_cpu_cores"),
                round3(self.cpu_seconds / seconds),
            );
            figures.set(
                "client_cpu_cores",
                round3(self.client_cpu_seconds / seconds),
            );
        }
    }
}

/// Three decimals are plenty for CPU figures.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn sample(pids: Vec<u32>, peak: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        if let Ok(rss) = total_rss(&pids) {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
    }
}

fn total_rss(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&pid| stats::rss_bytes(pid)).sum()
}

fn total_cpu(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&pid| stats::cpu_seconds(pid)).sum()
}
