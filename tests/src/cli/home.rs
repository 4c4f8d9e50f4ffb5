//! One person's device: a temporary `kith` home, a handle and a passphrase, and the `kith`
//! commands run against it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::process::{LineReader, Run, run};
use super::relay::{RelayProcess, clear_kith_env};
use super::tmux::shell_quote;
use super::{COMMAND_TIMEOUT, kith_bin};

/// A `kith` home that does not exist until `kith init` creates it.
pub struct Home {
    handle: String,
    passphrase: String,
    path: PathBuf,
    _dir: TempDir,
}

impl Home {
    /// A home for `handle` with a passphrase of its own.
    pub fn new(handle: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("temporary directory");
        Self {
            handle: handle.to_owned(),
            passphrase: format!("pass-{handle}-{}-{n}-phrase", std::process::id()),
            path: dir.path().join("home"),
            _dir: dir,
        }
    }

    /// The handle this home registers.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// The passphrase (given to `kith` in `KITH_PASSPHRASE`).
    pub fn passphrase(&self) -> &str {
        &self.passphrase
    }

    /// The home directory (`KITH_HOME`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `kith ARGS` for this home, with `KITH_HOME` and `KITH_PASSPHRASE` set.
    pub fn command<I: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = I>) -> Command {
        self.command_with_passphrase(&self.passphrase, args)
    }

    /// `kith ARGS` for this home with another passphrase.
    pub fn command_with_passphrase<I: AsRef<OsStr>>(
        &self,
        passphrase: &str,
        args: impl IntoIterator<Item = I>,
    ) -> Command {
        let mut command = Command::new(kith_bin());
        clear_kith_env(&mut command);
        command
            .args(args)
            .env("KITH_HOME", &self.path)
            .env("KITH_PASSPHRASE", passphrase);
        command
    }

    /// `kith ARGS` for this home as one `sh` command line (for a terminal multiplexer).
    pub fn shell_command(&self, args: &[&str]) -> String {
        let mut words = vec![
            "env".to_owned(),
            format!("KITH_HOME={}", shell_quote(&self.path)),
            format!("KITH_PASSPHRASE={}", shell_quote(&self.passphrase)),
            shell_quote(kith_bin()),
        ];
        words.extend(args.iter().map(shell_quote));
        words.join(" ")
    }

    /// Runs `kith ARGS` to completion (standard input empty).
    #[track_caller]
    pub fn kith<I: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = I>) -> Run {
        run(self.command(args), None, COMMAND_TIMEOUT)
    }

    /// Runs `kith ARGS` with `passphrase` instead of the right one.
    #[track_caller]
    pub fn kith_with_passphrase(&self, passphrase: &str, args: &[&str]) -> Run {
        run(
            self.command_with_passphrase(passphrase, args),
            None,
            COMMAND_TIMEOUT,
        )
    }

    /// Runs `kith ARGS` with `input` on standard input.
    #[track_caller]
    pub fn kith_with_input(&self, args: &[&str], input: &str) -> Run {
        run(self.command(args), Some(input.as_bytes()), COMMAND_TIMEOUT)
    }

    /// `kith init` with `relay`'s URL, this home's handle and `extra` options.
    #[track_caller]
    pub fn try_init(&self, relay: &RelayProcess, extra: &[&str]) -> Run {
        let url = relay.url();
        let mut args = vec!["init", "--relay", &url, "--handle", &self.handle];
        args.extend_from_slice(extra);
        self.kith(args)
    }

    /// `kith init` with `invite` and the relay's certificate (`--relay-ca`).
    #[track_caller]
    pub fn init_with_invite(&self, relay: &RelayProcess, invite: &str) -> Run {
        let ca = ca_arg(relay);
        self.try_init(relay, &["--invite", invite, "--relay-ca", &ca])
    }

    /// `kith init` with the relay's certificate and, unless anyone can register there, a
    /// fresh invite; asserts success.
    #[track_caller]
    pub fn init(&self, relay: &RelayProcess) -> Run {
        if relay.is_open() {
            return self
                .try_init(relay, &["--relay-ca", &ca_arg(relay)])
                .success();
        }
        self.init_with_invite(relay, &relay.invite()).success()
    }

    /// `kith send TO TEXT`; asserts success.
    #[track_caller]
    pub fn send(&self, to: &str, text: &str) -> Run {
        self.kith(["send", to, text]).success()
    }

    /// `kith receive` (text); asserts success and returns the message lines.
    #[track_caller]
    pub fn receive_lines(&self) -> Vec<String> {
        let out = self.kith(["receive"]).success();
        out.lines().into_iter().map(str::to_owned).collect()
    }

    /// `kith receive --json`; asserts success and returns one object per message.
    #[track_caller]
    pub fn receive_json(&self) -> Vec<Value> {
        json_lines(&self.kith(["receive", "--json"]).success())
    }

    /// `kith history WITH --json`.
    #[track_caller]
    pub fn history_json(&self, with: &str) -> Vec<Value> {
        json_lines(&self.kith(["history", with, "--json"]).success())
    }

    /// `kith contacts --json`.
    #[track_caller]
    pub fn contacts_json(&self) -> Vec<Value> {
        json_lines(&self.kith(["contacts", "--json"]).success())
    }

    /// `kith verify WITH --json`.
    #[track_caller]
    pub fn verify_json(&self, with: &str) -> Value {
        let out = self.kith(["verify", with, "--json"]).success();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("verify JSON ({e}): {out:?}"))
    }

    /// Starts `kith receive --wait SECONDS --json` in the background.
    pub fn spawn_receive(&self, wait_secs: u64) -> Receiver {
        let mut command = self.command(["receive", "--wait", &wait_secs.to_string(), "--json"]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start kith receive");
        let stdout = LineReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = LineReader::new(child.stderr.take().expect("piped stderr"));
        Receiver {
            child,
            stdout,
            stderr,
        }
    }
}

/// The relay's certificate path as a `--relay-ca` value.
fn ca_arg(relay: &RelayProcess) -> String {
    let ca = relay.ca_path();
    ca.to_str().expect("a UTF-8 temporary path").to_owned()
}

/// Parses one JSON object per non-empty line of standard output.
#[track_caller]
pub fn json_lines(out: &Run) -> Vec<Value> {
    out.lines()
        .into_iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?} in {out:?}"))
        })
        .collect()
}

/// A `kith receive --wait … --json` running in the background; killed on drop.
pub struct Receiver {
    child: Child,
    stdout: LineReader,
    stderr: LineReader,
}

impl Receiver {
    /// The next message it prints, within `timeout`.
    #[track_caller]
    pub fn next_message(&mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let Some(line) = self.stdout.line_until(deadline, |l| !l.trim().is_empty()) else {
            let _ = self.child.kill();
            // Collects what it wrote on standard error before it died.
            self.stderr
                .line_until(Instant::now() + Duration::from_secs(5), |_| false);
            panic!(
                "no message from `kith receive` within {timeout:?}; stdout: {:?}, stderr: {:?}",
                self.stdout.seen(),
                self.stderr.seen()
            );
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
