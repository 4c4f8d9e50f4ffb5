//! A program in a pseudo-terminal: a detached tmux session on a server of its own, read with
//! `capture-pane` and typed into with `send-keys`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::poll_until;
use super::process::run;

/// tmux's own commands return at once; this only bounds a hung server.
const TMUX_TIMEOUT: Duration = Duration::from_secs(20);

/// A tmux server (its own socket) running one session; the server is killed on drop.
pub struct Tmux {
    socket: String,
    stderr_log: PathBuf,
}

impl Tmux {
    /// Whether tmux can be run here.
    pub fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts `shell_command` (run by tmux through `sh -c`) in a `width`×`height` terminal,
    /// its standard error appended to `stderr_log` (shown when a wait fails).
    #[track_caller]
    pub fn start(shell_command: &str, width: u16, height: u16, stderr_log: &Path) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let socket = format!(
            "kith-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Self {
            socket,
            stderr_log: stderr_log.to_owned(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let shell_command = format!("{shell_command} 2>>{}", shell_quote(stderr_log));
        let args = [
            "new-session",
            "-d",
            "-x",
            &w,
            "-y",
            &h,
            "-s",
            "main",
            &shell_command,
        ];
        run(tmux.command(&args), None, TMUX_TIMEOUT).success();
        tmux
    }

    /// The visible screen, one line per row.
    #[track_caller]
    pub fn screen(&self) -> String {
        let out = run(
            self.command(&["capture-pane", "-p", "-t", "main"]),
            None,
            TMUX_TIMEOUT,
        );
        out.success().stdout
    }

    /// Waits until the screen shows `text`; returns that screen.
    #[track_caller]
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let mut last = String::new();
        let found = poll_until(timeout, || {
            last = self.screen();
            last.contains(text).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            let errors = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
            panic!("{text:?} not shown within {timeout:?}; the screen:\n{last}\nstderr:\n{errors}")
        })
    }

    /// Types `text` literally (no key names).
    #[track_caller]
    pub fn type_text(&self, text: &str) {
        run(
            self.command(&["send-keys", "-t", "main", "-l", text]),
            None,
            TMUX_TIMEOUT,
        )
        .success();
    }

    /// Presses the named key (`Enter`, `Escape`, …).
    #[track_caller]
    pub fn press(&self, key: &str) {
        run(
            self.command(&["send-keys", "-t", "main", key]),
            None,
            TMUX_TIMEOUT,
        )
        .success();
    }

    /// Whether the session still runs (its program has not exited).
    pub fn running(&self) -> bool {
        run(
            self.command(&["has-session", "-t", "main"]),
            None,
            TMUX_TIMEOUT,
        )
        .status
        .success()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args);
        command
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Quotes `word` (a path, an argument) for `sh -c`.
pub fn shell_quote(word: impl AsRef<OsStr>) -> String {
    let text = word.as_ref().to_string_lossy();
    format!("'{}'", text.replace('\'', r"'\''"))
}
