//! The `kith-relay` command line, run as a real process: `check-config`, `serve` with its
//! development certificate and `admin.json`, `invite create`, `stats`, SIGTERM, `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kith-relay");
const TIMEOUT: Duration = Duration::from_secs(60);

/// The binary with an empty environment, so no `KITH_RELAY_*` of the caller leaks in.
fn relay_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    relay_cmd(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    path
}

/// A `kith-relay serve` child process; killed on drop if still running.
struct Serve {
    child: Child,
    lines: Receiver<String>,
    banner: Vec<String>,
}

impl Serve {
    /// Starts `serve` on free ports and waits for its banner (printed once `admin.json` is
    /// written and both listeners are up).
    fn start(data: &Path) -> Self {
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let mut child = relay_cmd(&[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Self {
            child,
            lines,
            banner: Vec::new(),
        };
        serve.read_banner(data);
        serve
    }

    fn read_banner(&mut self, data: &Path) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.banner.iter().any(|l| l.contains("fingerprint:")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.banner.push(line),
                Err(_) => panic!(
                    "no banner from serve; stdout so far: {:?}; log: {}",
                    self.banner,
                    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
                ),
            }
        }
    }

    fn banner_value(&self, label: &str) -> String {
        let line = self.banner.iter().find(|l| l.contains(label)).unwrap();
        line.split_once(label).unwrap().1.trim().to_owned()
    }

    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_config_accepts_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let example = run(&["check-config", "--example"]);
    assert!(example.status.success());
    let path = write_file(dir.path(), "relay.toml", &text(&example.stdout));
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid"));
}

#[test]
fn check_config_explains_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "bad.toml",
        "listn = \"0.0.0.0:7443\"\nenvelope_ttl = \"3 fortnights\"\nadmin_listen = \"0.0.0.0:7444\"\n",
    );
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains("bad.toml:1: `listn`: unknown key. Did you mean `listen`?"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:2: `envelope_ttl`: `3 fortnights` is not a duration"),
        "{err}"
    );
    assert!(err.contains("write a number and a unit"), "{err}");
    assert!(
        err.contains("bad.toml:3: `admin_listen`: 0.0.0.0:7444 is not a loopback"),
        "{err}"
    );
    assert!(err.contains("127.0.0.1:7444"), "{err}");
}

#[test]
fn check_config_names_a_bad_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "ok.toml", "");
    let out = relay_cmd(&["check-config", path.to_str().unwrap()])
        .env("KITH_RELAY_SEND_BURST", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("environment variable KITH_RELAY_SEND_BURST"),
        "{err}"
    );
}

#[test]
fn serve_invite_stats_sigterm_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    let serve = Serve::start(&data);
    assert!(serve.banner_value("certificate:").contains("created now"));
    let fingerprint = serve.banner_value("fingerprint:");
    assert!(fingerprint.starts_with("SHA-256 "), "{fingerprint}");
    assert!(data.join("admin.json").exists());
    for (file, mode) in [("admin.json", 0o600), ("tls/key.pem", 0o600)] {
        let meta = std::fs::metadata(data.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let out = run(&[
        "invite",
        "create",
        "--data",
        data_arg,
        "--uses",
        "2",
        "--expires",
        "1d",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout.lines().last().unwrap();
    assert_eq!(token.len(), 64, "{stdout}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{stdout}");

    let out = run(&["stats", "--data", data_arg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "accounts",
        "devices",
        "queued_envelopes",
        "queued_bytes",
        "connections",
    ] {
        assert!(stats[key].is_u64(), "{key} in {stats}");
    }

    // A second relay on the same data directory refuses to start and leaves admin.json alone.
    let admin_json = std::fs::read_to_string(data.join("admin.json")).unwrap();
    let second = run(&[
        "serve",
        "--data",
        data_arg,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another kith-relay"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("admin.json")).unwrap(),
        admin_json
    );

    let status = serve.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(!data.join("admin.json").exists());

    // Restart: the development certificate is reused.
    let serve = Serve::start(&data);
    assert!(!serve.banner_value("certificate:").contains("created now"));
    assert_eq!(serve.banner_value("fingerprint:"), fingerprint);
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn invite_without_a_running_relay_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = run(&["invite", "create", "--data", data]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("no running relay found for data dir {data}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("kith-relay serve --data {data}")),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(&["serve", "--tls-cert", "x.pem"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["invite", "create", "--uses", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["stats", "--admin", "http://127.0.0.1:1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn help_mentions_every_flag() {
    let commands: [(&[&str], &[&str]); 4] = [
        (
            &["serve"],
            &[
                "--config",
                "--data",
                "--listen",
                "--admin-listen",
                "--registration",
                "--tls-cert",
                "--tls-key",
                "Examples",
            ],
        ),
        (
            &["invite", "create"],
            &[
                "--data",
                "--admin",
                "--admin-token",
                "--uses",
                "--expires",
                "Examples",
            ],
        ),
        (
            &["stats"],
            &["--data", "--admin", "--admin-token", "--json", "Examples"],
        ),
        (&["check-config"], &["FILE", "--example", "Examples"]),
    ];
    for (command, flags) in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{command:?}");
        let help = text(&out.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "{command:?} --help lacks {flag}:\n{help}"
            );
        }
    }
}
