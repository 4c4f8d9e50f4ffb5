//! One row of results.

use std::collections::BTreeMap;

use serde::Serialize;

/// The figures of one scenario run at one concurrency level (or phase). Fields that do not
/// apply to a scenario stay `None` and are left out of the JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// The scenario name (`bare`, `relay`, `store`, ...).
    pub scenario: String,
    /// The concurrency level: pairs, connections, members, ...
    pub n: u64,
    /// Messages (or store pairs, or operations) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_sec: Option<f64>,
    /// Median latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// 99.9th percentile latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    /// Messages sent (answered "accepted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    /// Distinct messages delivered (and, where the scenario says so, decrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    /// Messages sent but never delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Deliveries of a message already delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// Resident set size of the process under test, in bytes (peak of the samples taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// RSS growth per connection, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes_per_connection: Option<u64>,
    /// Wall-clock seconds of the timed phase.
    pub seconds: f64,
    /// Scenario-specific figures (`phase`, `cpu_seconds`, `upload_bytes`, `x25519_us`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Figures {
    /// Empty figures for `scenario` at level `n`.
    pub fn new(scenario: &str, n: u64) -> Self {
        Self {
            scenario: scenario.to_owned(),
            n,
            ..Self::default()
        }
    }

    /// Adds a scenario-specific figure.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a scenario-specific figure.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }

    /// `Err` when a message was lost or duplicated, or fewer were delivered than sent.
    pub fn check_delivery(&self) -> anyhow::Result<()> {
        let lost = self.lost.unwrap_or(0);
        let duplicated = self.duplicated.unwrap_or(0);
        if lost != 0 || duplicated != 0 {
            anyhow::bail!(
                "{} n={}: {lost} lost, {duplicated} duplicated of {} sent",
                self.scenario,
                self.n,
                self.sent.unwrap_or(0)
            );
        }
        if let (Some(sent), Some(delivered)) = (self.sent, self.delivered)
            && sent != delivered
        {
            anyhow::bail!(
                "{} n={}: {delivered} delivered of {sent} sent",
                self.scenario,
                self.n
            );
        }
        Ok(())
    }
}
