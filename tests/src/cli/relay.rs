//! `kith-relay serve` as a child process on loopback, with its data in a temporary directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{LineReader, Run, run, signal, wait_child};
use super::{COMMAND_TIMEOUT, copy_tree, relay_bin};

/// Most relay processes running at once: CI has two cores, and each test also runs `kith`.
const MAX_RUNNING_RELAYS: usize = 3;

/// How long a relay may take to print its banner, and to exit after SIGTERM.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for another test's relay to stop before starting one.
const SLOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Relay processes running now, across the test binary.
static RUNNING: Mutex<usize> = Mutex::new(0);
static STOPPED: Condvar = Condvar::new();

/// The right to run one relay process; given back on drop.
struct Slot;

impl Slot {
    fn acquire() -> Self {
        Self::acquire_many(1).pop().expect("one slot")
    }

    /// `n` slots at once, so that tests each starting several relays cannot each hold some
    /// and wait for the rest forever.
    fn acquire_many(n: usize) -> Vec<Self> {
        assert!(
            n <= MAX_RUNNING_RELAYS,
            "at most {MAX_RUNNING_RELAYS} relays"
        );
        let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let (mut running, timeout) = STOPPED
            .wait_timeout_while(running, SLOT_TIMEOUT, |r| *r + n > MAX_RUNNING_RELAYS)
            .unwrap_or_else(|e| e.into_inner());
        assert!(
            !timeout.timed_out(),
            "waited {SLOT_TIMEOUT:?} for other tests' relays to stop"
        );
        *running += n;
        (0..n).map(|_| Self).collect()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        STOPPED.notify_all();
    }
}

/// A `kith-relay serve` process (or a stopped relay's data, ready to start again).
///
/// The temporary directory holds `data/` (the relay's data directory: database, development
/// certificate, admin.json) and `relay.log` (its standard error, every start appended).
pub struct RelayProcess {
    child: Option<(Child, Slot)>,
    /// A slot reserved for the next start (by [`RelayProcess::postgres_nodes`]).
    reserved: Option<Slot>,
    registration: Registration,
    /// `--store postgres` with this `KITH_RELAY_DATABASE_URL`; sled when `None`.
    database_url: Option<String>,
    /// Plain WebSocket for a TLS-terminating proxy (`listen_plaintext_behind_proxy`).
    behind_proxy: bool,
    /// Further `KITH_RELAY_*` settings, set on every start.
    env: Vec<(String, String)>,
    port: u16,
    fingerprint: String,
    // Dropped last: the process is killed before its directory is deleted.
    dir: TempDir,
}

impl RelayProcess {
    /// Starts a relay with invite-only registration on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(Registration::Invite)
    }

    /// Starts a relay with invite-only registration and further settings in the environment
    /// on every start, e.g. `("KITH_RELAY_BUNDLE_FETCH_BURST", "1000")`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let mut relay = Self::stopped(Registration::Invite, None);
        relay.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        relay.start_again();
        relay
    }

    /// Starts a relay where anyone can register (`--registration open`), so that many
    /// accounts need no invite each.
    pub fn start_open() -> Self {
        Self::start_with(Registration::Open)
    }

    /// Starts a relay (invite-only) serving plain WebSocket for a TLS-terminating proxy
    /// (`listen_plaintext_behind_proxy`): it has no certificate, so [`url`](Self::url),
    /// [`ca_path`](Self::ca_path) and [`fingerprint`](Self::fingerprint) do not apply;
    /// clients reach it through a proxy forwarding to [`port`](Self::port).
    pub fn start_behind_proxy() -> Self {
        let mut relay = Self::stopped(Registration::Invite, None);
        relay.behind_proxy = true;
        relay.start_again();
        relay
    }

    /// Starts a relay like [`start_open`](Self::start_open) with further settings in the
    /// environment on every start, e.g. `("KITH_RELAY_SEND_BURST", "100000")`.
    pub fn start_open_with_env(env: &[(&str, &str)]) -> Self {
        let mut relay = Self::open_stopped_with_env(env);
        relay.start_again();
        relay
    }

    /// Like [`start_open_with_env`](Self::start_open_with_env), but not started yet: the test
    /// may prepare [`data_dir`](Self::data_dir) (e.g. make it a link to another file system)
    /// before [`start_again`](Self::start_again).
    pub fn open_stopped_with_env(env: &[(&str, &str)]) -> Self {
        let mut relay = Self::stopped(Registration::Open, None);
        relay.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        relay
    }

    fn start_with(registration: Registration) -> Self {
        let mut relay = Self::stopped(registration, None);
        relay.start_again();
        relay
    }

    /// `n` relay nodes (invite-only) sharing the PostgreSQL database at `database_url`
    /// (`--store postgres`, the URL in `KITH_RELAY_DATABASE_URL`), each on its own port and
    /// data directory, all with the first node's development certificate (copied into the
    /// others' data directories before they start) and the relay name `localhost`: a client
    /// that trusts one trusts every node.
    #[track_caller]
    pub fn postgres_nodes(database_url: &str, n: usize) -> Vec<Self> {
        Self::postgres_nodes_with_env(database_url, n, &[])
    }

    /// [`postgres_nodes`](Self::postgres_nodes) with further `KITH_RELAY_*` settings on every
    /// node, e.g. `("KITH_RELAY_SEND_BURST", "100000")`.
    #[track_caller]
    pub fn postgres_nodes_with_env(
        database_url: &str,
        n: usize,
        env: &[(&str, &str)],
    ) -> Vec<Self> {
        let mut slots = Slot::acquire_many(n);
        let mut nodes: Vec<Self> = Vec::with_capacity(n);
        while let Some(slot) = slots.pop() {
            let mut node = Self::stopped(Registration::Invite, Some(database_url.to_owned()));
            node.env = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            node.reserved = Some(slot);
            if let Some(first) = nodes.first() {
                copy_tree(&first.data_dir().join("tls"), &node.data_dir().join("tls"));
            }
            node.start_again();
            if let Some(first) = nodes.first() {
                assert_eq!(
                    node.fingerprint, first.fingerprint,
                    "every node serves the same certificate"
                );
            }
            nodes.push(node);
        }
        nodes
    }

    fn stopped(registration: Registration, database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self {
            child: None,
            reserved: None,
            registration,
            database_url,
            behind_proxy: false,
            env: Vec::new(),
            port: 0,
            fingerprint: String::new(),
            dir,
        }
    }

    /// The address clients use: the relay's name is `localhost`, which its development
    /// certificate is valid for.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}", self.port)
    }

    /// Whether anyone can register without an invite.
    pub fn is_open(&self) -> bool {
        self.registration == Registration::Open
    }

    /// The port the relay listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the relay wrote: its data directory and its log.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The development certificate (PEM), for `kith init --relay-ca`.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir().join("tls").join("cert.pem")
    }

    /// The certificate's SHA-256 fingerprint as the banner prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// What the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// A new single-use invite token (`kith-relay invite create`).
    #[track_caller]
    pub fn invite(&self) -> String {
        self.invite_for(1)
    }

    /// A new invite token for `uses` registrations (`kith-relay invite create --uses N`).
    #[track_caller]
    pub fn invite_for(&self, uses: u32) -> String {
        let uses = uses.to_string();
        let out = self.admin(&["invite", "create", "--uses", &uses]);
        out.lines()
            .last()
            .map(|line| line.trim().to_owned())
            .unwrap_or_else(|| panic!("no token printed: {out:?}"))
    }

    /// The relay's counters (`kith-relay stats --json`): accounts, devices, queued_envelopes,
    /// connections, authenticated, …
    #[track_caller]
    pub fn stats(&self) -> serde_json::Value {
        let out = self.admin(&["stats", "--json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stats JSON ({e}): {out:?}"))
    }

    /// The counter `name` of [`stats`](Self::stats).
    #[track_caller]
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
    }

    #[track_caller]
    fn admin(&self, args: &[&str]) -> Run {
        let mut command = Command::new(relay_bin());
        command.args(args).arg("--data").arg(self.data_dir());
        clear_kith_env(&mut command);
        run(command, None, COMMAND_TIMEOUT).success()
    }

    /// Stops the relay with SIGTERM and asserts it exits cleanly (status 0) in time.
    #[track_caller]
    pub fn stop(&mut self) {
        let (child, _slot) = self.child.take().expect("the relay is running");
        signal(child.id(), "TERM");
        let status = wait_child(child, START_STOP_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "the relay did not exit cleanly after SIGTERM ({status:?}); log:\n{}",
            self.log()
        );
    }

    /// Waits up to `timeout` for the relay to exit by itself (it stops on a failure it cannot
    /// serve through); its exit status, or `None` if it was still running (then it is killed).
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let (child, _slot) = self.child.take().expect("the relay is running");
        wait_child(child, timeout)
    }

    /// Kills the relay with SIGKILL (no draining, no clean shutdown) and waits for it to be
    /// gone.
    #[track_caller]
    pub fn kill(&mut self) {
        let (mut child, _slot) = self.child.take().expect("the relay is running");
        child.kill().expect("SIGKILL the relay");
        let status = wait_child(child, START_STOP_TIMEOUT);
        assert!(status.is_some(), "the relay did not die after SIGKILL");
    }

    /// Kills the relay with SIGKILL and starts it again on the same port and data directory,
    /// keeping its place among the running relays: another test's relay cannot take it in
    /// between and delay the restart.
    #[track_caller]
    pub fn kill_and_restart(&mut self) {
        let (mut child, slot) = self.child.take().expect("the relay is running");
        child.kill().expect("SIGKILL the relay");
        let status = wait_child(child, START_STOP_TIMEOUT);
        assert!(status.is_some(), "the relay did not die after SIGKILL");
        self.reserved = Some(slot);
        self.start_again();
    }

    /// Stops the relay and starts it again on the same port and data directory.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// A stopped relay with a copy of this (stopped) relay's data directory, certificate
    /// included, that will listen on the same port.
    #[track_caller]
    pub fn copy_stopped(&self) -> Self {
        assert!(
            self.child.is_none(),
            "stop the relay before copying its data"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        copy_tree(&self.data_dir(), &dir.path().join("data"));
        Self {
            child: None,
            reserved: None,
            registration: self.registration,
            database_url: self.database_url.clone(),
            behind_proxy: self.behind_proxy,
            env: self.env.clone(),
            port: self.port,
            fingerprint: self.fingerprint.clone(),
            dir,
        }
    }

    /// Makes the stopped relay start with `--store postgres` on `database_url` from now on (its
    /// data directory keeps the certificate).
    #[track_caller]
    pub fn use_postgres(&mut self, database_url: &str) {
        assert!(self.child.is_none(), "stop the relay first");
        self.database_url = Some(database_url.to_owned());
    }

    /// `kith-relay migrate --from sled:<data>` into `database_url`, given with `--to` or, when
    /// `in_env`, in `KITH_RELAY_DATABASE_URL`. Returns the finished run, whatever its status.
    pub fn migrate(&self, database_url: &str, in_env: bool) -> Run {
        let mut command = Command::new(relay_bin());
        let from = format!("sled:{}", self.data_dir().display());
        command.args(["migrate", "--from", &from]);
        clear_kith_env(&mut command);
        if in_env {
            command.env("KITH_RELAY_DATABASE_URL", database_url);
        } else {
            command.args(["--to", database_url]);
        }
        run(command, None, COMMAND_TIMEOUT)
    }

    /// Starts the stopped relay on its data directory and port (a free port the first time)
    /// and waits for its banner.
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the relay is already running");
        let slot = self.reserved.take().unwrap_or_else(Slot::acquire);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("relay.log"))
            .expect("open the relay log");
        let mut command = Command::new(relay_bin());
        command
            .arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--registration", self.registration.arg()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        clear_kith_env(&mut command);
        if let Some(url) = &self.database_url {
            command
                .args(["--store", "postgres"])
                .env("KITH_RELAY_DATABASE_URL", url);
        }
        if self.behind_proxy {
            command.env("KITH_RELAY_LISTEN_PLAINTEXT_BEHIND_PROXY", "true");
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("start kith-relay serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut banner = LineReader::new(stdout);
        let deadline = Instant::now() + START_STOP_TIMEOUT;
        let listening = banner.line_until(deadline, |l| l.contains("listening:"));
        // The last banner line: the certificate's fingerprint, or, without TLS, its warning.
        let last = if self.behind_proxy {
            "warning:"
        } else {
            "fingerprint:"
        };
        let last_line = banner.line_until(deadline, |l| l.contains(last));
        let (Some(listening), Some(last_line)) = (listening, last_line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no banner from kith-relay within {START_STOP_TIMEOUT:?}; stdout: {:?}; log:\n{}",
                banner.seen(),
                self.log()
            );
        };
        let port = parse_port(&listening);
        assert!(
            self.port == 0 || self.port == port,
            "restarted on port {port} instead of {}",
            self.port
        );
        self.port = port;
        if !self.behind_proxy {
            self.fingerprint = last_line
                .rsplit(' ')
                .next()
                .expect("a fingerprint")
                .to_owned();
        }
        // The reader thread keeps draining stdout until the process exits.
        self.child = Some((child, slot));
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Some((mut child, _slot)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Who may register: the relay's `--registration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Invite,
    Open,
}

impl Registration {
    fn arg(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Open => "open",
        }
    }
}

/// The port of the banner's `listening:    wss://127.0.0.1:PORT` line.
fn parse_port(line: &str) -> u16 {
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the banner line {line:?}"))
}

/// Removes `KITH_*` variables the developer's environment may set (relay settings, a home, a
/// passphrase), so every test states what it uses.
pub fn clear_kith_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KITH_") {
            command.env_remove(name);
        }
    }
}
