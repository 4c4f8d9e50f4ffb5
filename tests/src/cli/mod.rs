//! Drives the real binaries: `kith-relay serve` as a child process, `kith` run once per command
//! against a temporary home (circles' `kith group` commands included), and `kith chat` inside a
//! detached tmux session.
//!
//! Every wait has a deadline. Where the only observable is something to poll (the relay's
//! counters, a terminal screen), [`wait_until`] polls it with short pauses, bounded by its
//! deadline.

mod circle;
mod cluster;
mod home;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod relay;
mod tmux;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use circle::{GroupSent, init_homes};
pub use cluster::Cluster;
pub use home::{Home, Receiver, json_lines};
pub use process::{Run, run};
pub use proxy::TlsProxy;
pub use relay::{RelayProcess, clear_kith_env};
pub use tmux::{Tmux, shell_quote};

/// The longest one `kith` or `kith-relay` command may run before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between two looks at a polled condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The `kith` executable built next to the test binary.
pub fn kith_bin() -> PathBuf {
    sibling_binary("kith")
}

/// The `kith-relay` executable built next to the test binary.
pub fn relay_bin() -> PathBuf {
    sibling_binary("kith-relay")
}

/// `target/<profile>/<name>`: the test binary runs from `target/<profile>/deps/`.
fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p kith -p kith-relay` \
         (`cargo test --workspace` builds both)",
        path.display()
    );
    path
}

/// Polls `check` until it returns `Some`, pausing briefly between tries; fails the test with
/// `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, check)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it returns `Some`, pausing briefly between tries; `None` after
/// `timeout`.
pub fn poll_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Every regular file under `root`, recursively (symbolic links are not followed).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    walk(root).1
}

/// `root` and every directory under it, recursively (symbolic links are not followed).
pub fn dirs_under(root: &Path) -> Vec<PathBuf> {
    walk(root).0
}

/// The directories (`root` first) and the regular files of the tree at `root`.
fn walk(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs = vec![root.to_path_buf()];
    let mut files = Vec::new();
    let mut next = 0;
    while let Some(dir) = dirs.get(next).cloned() {
        next += 1;
        for entry in std::fs::read_dir(&dir).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            let kind = std::fs::symlink_metadata(&path)
                .expect("metadata")
                .file_type();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    (dirs, files)
}

/// Copies the directory tree at `from` to `to` (which must not exist yet).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read a directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
