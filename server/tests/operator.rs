//! What an operator deploys, checked: `deploy/kith-relay.example.toml` passes `check-config`
//! and lists every key; the Dockerfile, compose file and systemd unit carry the directives the
//! operator guide promises (and `systemd-analyze verify` accepts the unit where installed;
//! hadolint is not packaged in Debian, so the Dockerfile is checked by parsing it); plain
//! WebSocket is refused on a public address; SIGHUP reloads the certificate for new
//! connections while old ones keep working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_kith-relay");
const WAIT: Duration = Duration::from_secs(30);

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

fn read_deploy(name: &str) -> String {
    std::fs::read_to_string(deploy(name)).unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// The binary with an empty environment, so no `KITH_RELAY_*` of the caller leaks in.
fn relay(args: &[&str]) -> Output {
    Command::new(BIN).env_clear().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- configuration ----

#[test]
fn the_deploy_example_config_is_valid_and_lists_every_key() {
    let path = deploy("kith-relay.example.toml");
    let out = relay(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let example = text(&relay(&["check-config", "--example"]).stdout);
    let deployed = read_deploy("kith-relay.example.toml");
    let keys: Vec<&str> = example
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    assert!(keys.len() > 25, "{keys:?}");
    for key in keys {
        let set = deployed.contains(&format!("\n{key} = "));
        let shown = deployed.contains(&format!("\n# {key} = "));
        assert!(set || shown, "deploy/kith-relay.example.toml lacks {key}");
        // The comment block right above the key (or above tls_cert, for tls_key).
        let explained = deployed
            .split(&format!("\n{key} = "))
            .next()
            .is_some_and(|before| {
                before
                    .lines()
                    .rev()
                    .take_while(|l| l.starts_with('#'))
                    .any(|l| l.starts_with("# Default"))
            });
        assert!(
            explained || shown || key == "tls_key",
            "{key} has no `# Default ...` line above it"
        );
    }
}

#[test]
fn plaintext_behind_a_proxy_is_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "listen = \"0.0.0.0:7443\"\nlisten_plaintext_behind_proxy = true\n",
    )
    .unwrap();
    let checked = relay(&["check-config", config.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(1));
    let error = text(&checked.stderr);
    assert!(error.contains("is not a loopback address"), "{error}");
    assert!(
        error.contains("allow_plaintext_non_loopback = true"),
        "{error}"
    );

    let data = dir.path().join("data");
    let served = relay(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(served.status.code(), Some(1));
    assert!(text(&served.stderr).contains("is not a loopback address"));
    assert!(!data.exists(), "a refused start creates nothing");

    std::fs::write(
        &config,
        "listen = \"0.0.0.0:7443\"\nlisten_plaintext_behind_proxy = true\n\
         allow_plaintext_non_loopback = true\n",
    )
    .unwrap();
    let allowed = relay(&["check-config", config.to_str().unwrap()]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));

    std::fs::write(
        &config,
        "listen_plaintext_behind_proxy = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    )
    .unwrap();
    let both = relay(&["check-config", config.to_str().unwrap()]);
    assert_eq!(both.status.code(), Some(1));
    assert!(text(&both.stderr).contains("remove tls_cert and tls_key"));
}

#[test]
fn plaintext_mode_tells_how_to_set_devices_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(
        dir.path(),
        &[],
        &[("KITH_RELAY_LISTEN_PLAINTEXT_BEHIND_PROXY", "true")],
    );
    assert!(
        serve
            .banner
            .iter()
            .any(|l| l.contains("listening:    ws://"))
    );
    assert!(
        serve
            .banner
            .iter()
            .any(|l| l.contains("warning:") && l.contains("kith init --relay-behind-proxy")),
        "{:?}",
        serve.banner
    );
    serve.stop();
}

// ---- deploy files ----

/// The instructions of a Dockerfile, continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_volume_healthcheck_and_port() {
    let instructions = dockerfile_instructions(&read_deploy("Dockerfile"));
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let froms = all("FROM");
    assert_eq!(froms.len(), 2, "build and runtime stages: {froms:?}");
    assert!(froms[0].contains(" AS builder"), "{froms:?}");
    assert!(
        froms[1].contains("slim") || froms[1].contains("distroless"),
        "{froms:?}"
    );
    assert!(all("COPY").iter().any(|c| c.starts_with("--from=builder")));
    let users = all("USER");
    let user = users.last().expect("a USER instruction");
    assert!(*user != "root" && *user != "0", "runs as {user}");
    assert!(
        all("VOLUME")
            .iter()
            .any(|v| v.contains("/var/lib/kith-relay"))
    );
    assert_eq!(all("EXPOSE"), ["7443"]);
    let health = all("HEALTHCHECK");
    assert!(
        health.len() == 1 && health[0].contains("/healthz") && health[0].contains("7444"),
        "{health:?}"
    );
    assert_eq!(all("ENTRYPOINT"), ["[\"kith-relay\"]"]);
    // Settings the Dockerfile gives must be keys the relay knows.
    let env = all("ENV").join(" ");
    let config = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(BIN);
    command.env_clear();
    for pair in env.split_whitespace() {
        let (name, value) = pair.split_once('=').unwrap();
        command.env(name, value);
    }
    let out = command
        .args(["check-config", config.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn the_compose_files_build_from_deploy_and_keep_the_admin_port_private() {
    for name in ["compose.yaml", "compose.multi-node.yaml"] {
        let compose = read_deploy(name);
        assert!(compose.contains("dockerfile: deploy/Dockerfile"), "{name}");
        assert!(compose.contains("context: .."), "{name}");
        assert!(
            !compose.contains(":7444\"\n"),
            "{name} publishes the admin port"
        );
        assert!(
            !compose.contains("- \"7444"),
            "{name} publishes the admin port"
        );
    }
    let single = read_deploy("compose.yaml");
    assert!(single.contains("relay-data:/var/lib/kith-relay"));
    assert!(single.contains("\nvolumes:\n  relay-data:"));
    assert!(single.contains("KITH_RELAY_TLS_CERT"));
}

/// `Key=value` pairs of the `[Service]` section, in order.
fn service_directives(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("Key=value");
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    out
}

#[test]
fn the_systemd_unit_is_hardened() {
    let unit = read_deploy("kith-relay.service");
    let directives = service_directives(&unit);
    let get = |key: &str| -> Vec<&str> {
        directives
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let user = get("User");
    let dynamic = get("DynamicUser") == ["yes"];
    assert!(
        dynamic || (user.len() == 1 && user[0] != "root"),
        "DynamicUser or a dedicated user"
    );
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectory", "kith-relay"),
        ("ReadWritePaths", "/var/lib/kith-relay"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    let nofile: u64 = get("LimitNOFILE")[0].parse().unwrap();
    assert!(nofile >= 20_000, "LimitNOFILE {nofile}");
    assert!(get("ExecStart")[0].contains("kith-relay serve"));

    // systemd's own check, where systemd-analyze is installed: the unit with the binary
    // path pointing at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kith-relay.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/kith-relay", BIN)).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        ),
        Err(e) => eprintln!("systemd-analyze not available ({e}); checked by parsing only"),
    }
}

// ---- TLS reload ----

/// A `kith-relay serve` child; killed on drop if still running.
struct Serve {
    child: Child,
    banner: Vec<String>,
    stderr: Receiver<String>,
    log: Vec<String>,
}

impl Serve {
    fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .envs(env.iter().copied())
            .args(["serve", "--data", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let mut banner = Vec::new();
        let deadline = Instant::now() + WAIT;
        let last = |l: &String| l.contains("fingerprint:") || l.contains("warning:");
        while !banner.iter().any(last) {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => banner.push(line),
                Err(_) => panic!("no banner: {banner:?}"),
            }
        }
        Self {
            child,
            banner,
            stderr,
            log: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        let line = self
            .banner
            .iter()
            .find(|l| l.contains("listening:"))
            .unwrap();
        line.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a log line containing `part`.
    fn log_line(&mut self, part: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(part) => return line,
                Ok(line) => self.log.push(line),
                Err(_) => panic!("no log line with {part:?}; log: {:?}", self.log),
            }
        }
    }

    fn stop(&mut self) {
        self.signal("TERM");
        let (tx, rx) = channel();
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || tx.send(child.wait()));
        let status = rx.recv_timeout(WAIT).expect("exit after SIGTERM").unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// A self-signed certificate for `localhost`: (certificate DER, certificate PEM, key PEM).
fn certificate() -> (CertificateDer<'static>, String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (
        generated.cert.der().clone(),
        generated.cert.pem(),
        generated.signing_key.serialize_pem(),
    )
}

/// Connects with TLS trusting `roots`; returns the stream and the certificate the relay showed.
async fn connect(
    port: u16,
    roots: &[CertificateDer<'static>],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_new_connections() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (a, a_pem, a_key) = certificate();
    let (b, b_pem, b_key) = certificate();
    std::fs::write(&cert_path, &a_pem).unwrap();
    std::fs::write(&key_path, &a_key).unwrap();
    let mut serve = Serve::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &[],
    );
    let port = serve.port();
    let roots = [a.clone(), b.clone()];

    let (old, shown) = connect(port, &roots).await;
    assert_eq!(shown, a);
    let (mut old_ws, _) = tokio_tungstenite::client_async("wss://localhost/", old)
        .await
        .unwrap();
    let challenge = tokio::time::timeout(WAIT, old_ws.next()).await.unwrap();
    assert!(matches!(challenge, Some(Ok(Message::Binary(_)))));

    // A broken certificate file: the relay keeps serving the old certificate.
    std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    serve.signal("HUP");
    let error = serve.log_line("NOT reloaded");
    assert!(error.contains("cert.pem"), "{error}");
    assert_eq!(connect(port, &roots).await.1, a);

    // The renewed certificate: new connections get it.
    std::fs::write(&key_path, &b_key).unwrap();
    std::fs::write(&cert_path, &b_pem).unwrap();
    serve.signal("HUP");
    serve.log_line("TLS certificate reloaded");
    assert_eq!(connect(port, &roots).await.1, b);

    // The connection opened before the reload still works: a ping is answered.
    old_ws
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, old_ws.next())
            .await
            .expect("an answer in time")
            .expect("the old connection is open")
            .unwrap();
        if let Message::Pong(payload) = message {
            assert_eq!(&payload[..], b"still there?");
            break;
        }
    }
    serve.stop();
}
