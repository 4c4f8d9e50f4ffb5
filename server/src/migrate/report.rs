//! The summary of a migration: counts per kind on both sides, printed as a table.

use std::fmt;
use std::path::Path;

use crate::config::DatabaseUrl;
use crate::store::SnapshotCounts;

/// What a migration found: per kind, the records in sled and those PostgreSQL holds
/// identically (or, for an earlier complete copy, the counts recorded then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records in the sled store.
    pub sled: SnapshotCounts,
    /// Records the database holds identically.
    pub postgres: SnapshotCounts,
    /// When this sled store was copied completely before (RFC 3339): this run copied nothing.
    pub already_migrated: Option<String>,
    /// `sled (<path>) -> PostgreSQL <host:port/database>`, no password.
    route: String,
}

impl Report {
    /// A copy made now.
    pub(super) fn copied(sled: SnapshotCounts, postgres: SnapshotCounts) -> Self {
        Self {
            sled,
            postgres,
            already_migrated: None,
            route: String::new(),
        }
    }

    /// A copy made before, at `at`, whose recorded counts equal the sled store's.
    pub(super) fn already_copied(counts: SnapshotCounts, at: String) -> Self {
        Self {
            already_migrated: Some(at),
            ..Self::copied(counts, counts)
        }
    }

    /// Names both sides in the table's first line.
    pub(super) fn located(mut self, sled: &Path, database: &DatabaseUrl) -> Self {
        self.route = format!(
            "sled ({}) -> PostgreSQL {}",
            sled.display(),
            database.describe()
        );
        self
    }

    /// Whether every kind has the same count on both sides.
    pub fn matches(&self) -> bool {
        self.mismatched().is_empty()
    }

    /// The kinds whose counts differ.
    pub fn mismatched(&self) -> Vec<&'static str> {
        self.rows()
            .filter(|(_, sled, postgres)| sled != postgres)
            .map(|(kind, _, _)| kind)
            .collect()
    }

    fn rows(&self) -> impl Iterator<Item = (&'static str, u64, u64)> {
        let postgres = self.postgres.named();
        self.sled
            .named()
            .into_iter()
            .zip(postgres)
            .map(|((kind, sled), (_, postgres))| (kind, sled, postgres))
    }
}

/// The summary table, e.g.
///
/// ```text
/// sled (./kith-data/sled) -> PostgreSQL db:5432/kith
/// kind                          sled   postgres
/// accounts                         2          2
/// …
/// count check: all 10 kinds match
/// ```
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.route.is_empty() {
            writeln!(f, "{}", self.route)?;
        }
        if let Some(at) = &self.already_migrated {
            writeln!(
                f,
                "already migrated at {at}: nothing copied (the sled store is unchanged since)"
            )?;
        }
        let right = if self.already_migrated.is_some() {
            "copied"
        } else {
            "postgres"
        };
        writeln!(f, "{:<24} {:>10} {:>10}", "kind", "sled", right)?;
        for (kind, sled, postgres) in self.rows() {
            let flag = if sled == postgres { "" } else { "  MISMATCH" };
            writeln!(f, "{kind:<24} {sled:>10} {postgres:>10}{flag}")?;
        }
        match self.mismatched().len() {
            0 => writeln!(f, "count check: all {} kinds match", self.rows().count()),
            n => writeln!(f, "count check: {n} kinds differ"),
        }
    }
}
