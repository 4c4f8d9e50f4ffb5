//! The home directory: where one device's account and local store live.

use std::path::{Path, PathBuf};

/// A Kith home directory (`--home`, `KITH_HOME`, or the platform data directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The platform's data directory for Kith (e.g. `~/.local/share/kith` on Linux), if the
    /// platform has one.
    pub fn default_location() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "Kith", "kith").map(|dirs| dirs.data_dir().to_owned())
    }

    /// The home directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The local store's directory inside the home.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Whether this home holds an account (a local store).
    pub fn exists(&self) -> bool {
        self.store_dir().exists()
    }
}
