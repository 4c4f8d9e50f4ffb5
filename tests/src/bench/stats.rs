//! Latency samples and percentiles, process resource figures.

use std::time::Duration;

/// Latency samples, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub(super) struct Latencies(Vec<Duration>);

impl Latencies {
    /// Room for `n` samples.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Adds one sample.
    pub(super) fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    /// Adds every sample of `other`.
    pub(super) fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// How many samples there are.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// `(p50, p99, p999)` in milliseconds (nearest rank), or `None` without samples.
    pub(super) fn percentiles_ms(&mut self) -> Option<(f64, f64, f64)> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        // Nearest rank in integers: rank = ⌈per_mille × len / 1000⌉.
        let at = |per_mille: usize| {
            let rank = (per_mille * self.0.len()).div_ceil(1000);
            let i = rank.clamp(1, self.0.len()) - 1;
            self.0[i].as_secs_f64() * 1000.0
        };
        Some((at(500), at(990), at(999)))
    }
}

/// Resident set size of process `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub(super) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("malformed VmRSS line {line:?}"))?
        .parse()?;
    Ok(kib * 1024)
}

/// CPU time (user + system) process `pid` has used so far, in seconds.
pub(super) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; fields start after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the man page, utime 14 and stime 15 → indexes 11 and 12.
    let utime: u64 = fields
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("no utime"))?
        .parse()?;
    let stime: u64 = fields
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("no stime"))?
        .parse()?;
    Ok((utime + stime) as f64 / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)`: 100 on Linux on every architecture Kith builds for.
fn clock_ticks_per_second() -> f64 {
    100.0
}
