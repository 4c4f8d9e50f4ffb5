//! Running a command to completion under a deadline, and reading a running child's output line
//! by line under a deadline.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command did.
pub struct Run {
    /// The command line, for failure messages.
    pub what: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts the command succeeded.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.status.success(), "expected success: {self:?}");
        self
    }

    /// Asserts the command failed the way `kith` reports errors: exit status 1 and a message
    /// starting with `error: ` on standard error.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert_eq!(self.status.code(), Some(1), "expected exit 1: {self:?}");
        assert!(
            self.stderr.contains("error: "),
            "expected an `error: ` message: {self:?}"
        );
        self
    }

    /// Asserts that standard error contains every one of `parts`.
    #[track_caller]
    pub fn stderr_mentions(self, parts: &[&str]) -> Self {
        for part in parts {
            assert!(self.stderr.contains(part), "expected {part:?} in: {self:?}");
        }
        self
    }

    /// The non-empty lines of standard output.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Runs `command` with `stdin` as its input (none: `/dev/null`), killing it and failing the
/// test if it runs longer than `timeout`.
#[track_caller]
pub fn run(mut command: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let what = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not start `{what}`: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        // A writer of its own: the child may not read everything before it exits.
        thread::spawn(move || pipe.write_all(&input));
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    let output: Output = match rx.recv_timeout(timeout) {
        Ok(output) => output.expect("wait for the command"),
        Err(_) => {
            signal(pid, "KILL");
            let partial = rx.recv_timeout(Duration::from_secs(10)).ok();
            panic!("`{what}` did not finish within {timeout:?}; killed it. Output: {partial:?}");
        }
    };
    Run {
        what,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The program and its arguments (not the environment, which holds passphrases).
fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Sends `signal` (a name such as `TERM`) to process `pid` with kill(1).
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for `child` to exit; `None` (the child killed) if it is still running after
/// `timeout`.
pub(super) fn wait_child(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait()));
    match rx.recv_timeout(timeout) {
        Ok(status) => Some(status.expect("wait for the child")),
        Err(_) => {
            signal(pid, "KILL");
            let _ = rx.recv_timeout(Duration::from_secs(10));
            None
        }
    }
}

/// A child's output read line by line on a thread of its own, so it can be awaited with a
/// deadline.
pub(crate) struct LineReader {
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl LineReader {
    /// Starts reading `output` (a child's stdout or stderr).
    pub(crate) fn new(output: impl Read + Send + 'static) -> Self {
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            // Reads to the end even when nobody listens any more, so the child never blocks on
            // a full pipe.
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        Self {
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) for which `wanted` holds, or `None` if none came before
    /// `deadline` or the output ended.
    pub(crate) fn line_until(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every line read so far, for failure messages.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }
}
