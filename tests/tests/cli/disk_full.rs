//! A full disk: the relay's data directory on a 16 MiB tmpfs (`mount -t tmpfs`, root only).
//!
//! Checked, through the real `kith-relay` and protocol-level clients: while the disk is below
//! the relay's free-space reserve (`min_free_disk_mb`) every send and registration is refused
//! with `StorageFull` and never answered "accepted"; what was accepted before is delivered
//! intact, in order, and can be acknowledged; the relay stops and starts cleanly on the full
//! disk; and once space is freed it accepts sends again without a restart.
//!
//! Mounting needs root. Outside CI a machine that cannot mount skips with the reason; under
//! CI (`CI=true`) that is a failure, since the check would silently not run.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kith_protocol::wire::{Delivery, ErrorKind, Response};
use kith_tests::cli::RelayProcess;
use kith_tests::connection::tls_config;
use kith_tests::{Connection, TestDevice};
use tempfile::TempDir;

use crate::WAIT;

/// Size of the file system the relay writes to.
const TMPFS_SIZE: &str = "16m";

/// The relay's reserve on it, in MiB.
const RESERVE_MB: &str = "4";

/// What the "operator" deletes to free space: a log file that grew, say.
const BALLAST: usize = 6 * 1024 * 1024;

/// Body of each message: big, so that the disk fills after a few hundred.
const BODY_LEN: usize = 60 * 1024;

/// Most sends tried before the disk must have filled up.
const MAX_SENDS: usize = 1000;

#[test]
fn a_full_disk_refuses_sends_keeps_what_is_stored_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount_or_skip(TMPFS_SIZE) else {
        return;
    };
    let (mut relay, ballast) = relay_on(&tmpfs, &[("KITH_RELAY_MIN_FREE_DISK_MB", RESERVE_MB)]);
    let client = Client::of(&relay);
    let alice = TestDevice::new("alice", 1, 0);
    let bob = TestDevice::new("bob", 2, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        client.register(&alice).await;
        client.register(&bob).await;

        // Fill the disk with sends until the relay refuses one.
        let mut sender = client.login(&alice).await;
        let mut accepted = Vec::new();
        let refused = loop {
            assert!(
                accepted.len() < MAX_SENDS,
                "{MAX_SENDS} sends of {BODY_LEN} bytes fit on a {TMPFS_SIZE} disk?"
            );
            let seq = accepted.len();
            match send(&mut sender, &bob, seq).await {
                Response::Accepted { .. } => accepted.push(seq),
                other => break other,
            }
        };
        assert_storage_full(&refused, "the send that found the disk full");
        assert!(
            accepted.len() >= 20,
            "only {} sends accepted before the disk was full",
            accepted.len()
        );
        eprintln!(
            "disk full after {} accepted sends of {BODY_LEN} bytes",
            accepted.len()
        );
        // Still full: refused each time, and nothing of it stored (checked below: bob gets
        // exactly the accepted ones).
        for seq in accepted.len()..accepted.len() + 3 {
            assert_storage_full(&send(&mut sender, &bob, seq).await, "a send on a full disk");
        }
        let mut conn = client.connect().await;
        assert_storage_full(
            &conn
                .register(&TestDevice::new("carol", 3, 0), None)
                .await
                .unwrap(),
            "a registration on a full disk",
        );
        conn.close().await;
        sender.close().await;

        // What was accepted is delivered, intact and in order, and can be acknowledged.
        let mut receiver = client.login(&bob).await;
        let deliveries = receiver.drain_queue(WAIT).await.unwrap();
        assert_bodies(&deliveries, &accepted);
        let half = deliveries.len() / 2;
        let acked: Vec<_> = deliveries[..half].iter().map(|d| d.delivery_id).collect();
        assert_eq!(receiver.ack(&acked).await.unwrap(), Response::Ok);
        receiver.close().await;

        // A clean stop and start on the full disk; the rest is still there, once.
        relay.restart();
        let mut receiver = client.login(&bob).await;
        let rest = receiver.drain_queue(WAIT).await.unwrap();
        assert_bodies(&rest, &accepted[half..]);
        let mut sender = client.login(&alice).await;
        assert_storage_full(
            &send(&mut sender, &bob, MAX_SENDS).await,
            "a send after a restart on a full disk",
        );

        // The operator frees space: sends are accepted again, without a restart.
        std::fs::remove_file(&ballast).unwrap();
        let seq = MAX_SENDS + 1;
        let response = send_until_accepted(&mut sender, &bob, seq).await;
        assert!(
            matches!(response, Response::Accepted { .. }),
            "still refused {WAIT:?} after space was freed: {response:?}"
        );
        let delivery = receiver.next_delivery(WAIT).await.unwrap();
        assert_bodies(&[delivery], &[seq]);
        receiver.close().await;
        sender.close().await;
    });
    relay.stop();
}

/// Without a reserve, sled itself runs into `ENOSPC` (and sled 0.34 then never finishes a
/// flush): the relay never answers "accepted" for what it could not store, stops by itself
/// (exit status 1, after its flush timeout) rather than hang, and once space is freed starts
/// with everything it accepted intact and accepts sends again.
#[test]
fn a_disk_full_without_reserve_stops_the_relay_and_loses_nothing_accepted() {
    let Some(tmpfs) = Tmpfs::mount_or_skip(TMPFS_SIZE) else {
        return;
    };
    let (mut relay, ballast) = relay_on(
        &tmpfs,
        &[
            ("KITH_RELAY_MIN_FREE_DISK_MB", "0"),
            ("KITH_RELAY_FLUSH_TIMEOUT", "2s"),
        ],
    );
    let client = Client::of(&relay);
    let alice = TestDevice::new("alice", 1, 0);
    let bob = TestDevice::new("bob", 2, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (accepted, refused) = rt.block_on(async {
        client.register(&alice).await;
        client.register(&bob).await;
        let mut sender = client.login(&alice).await;
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for seq in 0..MAX_SENDS {
            match send_or_closed(&mut sender, &bob, seq).await {
                Some(Response::Accepted { .. }) => accepted.push(seq),
                Some(Response::Error(e)) => refused.push((seq, e.kind)),
                Some(other) => panic!("send {seq}: unexpected {other:?}"),
                None => break,
            }
        }
        (accepted, refused)
    });
    let status = relay.wait_exit(WAIT);
    let log = relay.log();
    eprintln!(
        "{} accepted, refused {refused:?}, then the relay exited: {status:?}",
        accepted.len()
    );
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "the relay did not stop with status 1 on a full disk ({status:?}); log:\n{log}"
    );
    assert!(
        log.contains("can no longer make writes durable"),
        "the log does not say why the relay stopped:\n{log}"
    );
    assert!(
        refused
            .iter()
            .all(|(_, kind)| matches!(kind, ErrorKind::StorageFull | ErrorKind::Internal)),
        "refusals: {refused:?}"
    );

    // Space returns; the relay starts again with every accepted message.
    std::fs::remove_file(&ballast).unwrap();
    relay.start_again();
    let client = Client::of(&relay);
    rt.block_on(async {
        let mut receiver = client.login(&bob).await;
        let deliveries = receiver.drain_queue(WAIT).await.unwrap();
        // A send answered with an error may or may not have been stored (its sender retries
        // it with the same id, which the relay deduplicates); an accepted one must be there.
        let delivered: Vec<usize> = deliveries.iter().map(seq_of).collect();
        for seq in &accepted {
            assert!(
                delivered.contains(seq),
                "accepted message {seq} lost; delivered {delivered:?}"
            );
        }
        assert!(
            delivered.windows(2).all(|w| w[0] < w[1]),
            "out of order or twice: {delivered:?}"
        );
        let mut sender = client.login(&alice).await;
        assert!(matches!(
            send(&mut sender, &bob, MAX_SENDS).await,
            Response::Accepted { .. }
        ));
        assert_bodies(&[receiver.next_delivery(WAIT).await.unwrap()], &[MAX_SENDS]);
        receiver.close().await;
        sender.close().await;
    });
    relay.stop();
}

/// Writes the ballast on `tmpfs`, then starts a relay whose data directory is on it, with no
/// send or mailbox limit in the way and `env` on top; returns it and the ballast's path.
fn relay_on(tmpfs: &Tmpfs, env: &[(&str, &str)]) -> (RelayProcess, PathBuf) {
    let ballast = tmpfs.path().join("ballast");
    write_file(&ballast, BALLAST).unwrap();
    let mut settings = vec![
        ("KITH_RELAY_SEND_RATE_PER_SECOND", "1000000"),
        ("KITH_RELAY_SEND_BURST", "1000000"),
        ("KITH_RELAY_MAILBOX_MAX_BYTES", "1000000000"),
    ];
    settings.extend_from_slice(env);
    let mut relay = RelayProcess::open_stopped_with_env(&settings);
    let data = tmpfs.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink(&data, relay.data_dir()).unwrap();
    relay.start_again();
    (relay, ballast)
}

/// Sends message `seq`; `None` once the connection is gone (the relay stopped).
async fn send_or_closed(conn: &mut Connection, to: &TestDevice, seq: usize) -> Option<Response> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&u64::try_from(seq).unwrap().to_be_bytes());
    conn.send(id, body(seq), &[to.device_id()]).await.ok()
}

/// Sends message `seq` until it is accepted (the relay looks at the free space again within
/// milliseconds), up to [`WAIT`]; returns the last answer.
async fn send_until_accepted(conn: &mut Connection, to: &TestDevice, seq: usize) -> Response {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pause = tokio::time::interval(Duration::from_millis(50));
    loop {
        pause.tick().await;
        let response = send(conn, to, seq).await;
        if !matches!(&response, Response::Error(e) if e.kind == ErrorKind::StorageFull)
            || tokio::time::Instant::now() >= deadline
        {
            return response;
        }
    }
}

/// Sends message `seq` (its body made by [`body`]) to `to`.
async fn send(conn: &mut Connection, to: &TestDevice, seq: usize) -> Response {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&u64::try_from(seq).unwrap().to_be_bytes());
    conn.send(id, body(seq), &[to.device_id()]).await.unwrap()
}

/// The body of message `seq`: its number, then filler that depends on it.
fn body(seq: usize) -> Vec<u8> {
    let mut body = u64::try_from(seq).unwrap().to_be_bytes().to_vec();
    body.resize(BODY_LEN, u8::try_from(seq % 251).unwrap());
    body
}

/// The deliveries are exactly messages `seqs`, in that order, bodies intact.
#[track_caller]
fn assert_bodies(deliveries: &[Delivery], seqs: &[usize]) {
    let got: Vec<usize> = deliveries.iter().map(seq_of).collect();
    assert_eq!(got, seqs, "delivered messages");
}

/// The number of a delivered message, checking that its body is intact.
#[track_caller]
fn seq_of(delivery: &Delivery) -> usize {
    let bytes = delivery.body.as_slice();
    let seq = usize::try_from(u64::from_be_bytes(bytes[..8].try_into().unwrap())).unwrap();
    assert!(bytes == body(seq).as_slice(), "message {seq} damaged");
    seq
}

#[track_caller]
fn assert_storage_full(response: &Response, what: &str) {
    assert!(
        matches!(response, Response::Error(e) if e.kind == ErrorKind::StorageFull),
        "{what}: expected StorageFull, got {response:?}"
    );
}

/// Connects to one relay.
struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    fn of(relay: &RelayProcess) -> Self {
        let pem = std::fs::read_to_string(relay.ca_path()).unwrap();
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, relay.port())),
            tls: tls_config(&pem).unwrap(),
        }
    }

    async fn connect(&self) -> Connection {
        Connection::connect(self.addr, self.tls.clone())
            .await
            .unwrap()
    }

    async fn register(&self, device: &TestDevice) {
        let mut conn = self.connect().await;
        assert_eq!(conn.register(device, None).await.unwrap(), Response::Ok);
        conn.close().await;
    }

    async fn login(&self, device: &TestDevice) -> Connection {
        let mut conn = self.connect().await;
        assert_eq!(conn.authenticate(device).await.unwrap(), Response::Ok);
        conn
    }
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts one of `size`; `None` (after saying why) where mounting is not permitted,
    /// except under CI, where that fails the test.
    fn mount_or_skip(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let failure = match output {
            Ok(out) if out.status.success() => return Some(Self { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        let reason = format!("cannot mount a tmpfs (needs root): {failure}");
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("skipped: {reason}");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file (a relay that failed to stop) does not keep
        // the mount busy forever.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file of `len` zero bytes and syncs it.
fn write_file(path: &PathBuf, len: usize) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(&vec![0u8; len])?;
    file.sync_all()
}
