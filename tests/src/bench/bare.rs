//! `bare`: the ceiling of the stack. The same load as `relay` — N pairs, a window of
//! [`WINDOW`] sends per sender, frames as long as the relay scenario's `Send` frames, the same
//! message totals, loss and duplicate checks and latency measurement — through the minimal
//! forwarder of [`net_forwarder`](super::net_forwarder): TLS and WebSocket, no storage, no
//! crypto. The forwarder is `kith-bench` itself, re-executed as a child process.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::Figures;
use super::args::Options;
use super::load::{Pace, PairLoad, Received, WINDOW, Wire, concurrently, run_phase, split};
use super::load_relay::sample_send_frame_len;
use super::load_watch::ProcessWatch;
use super::net::Link;
use super::net_forwarder::{
    ACCEPTED, ACK_DESTINATION, ANSWER_LEN, CHILD_ARG, HEADER_LEN, REJECTED, WELCOME, read_u64,
};
use crate::cli::process::LineReader;
use crate::connection::tls_config;

/// Messages per level (split over the pairs), as in `relay`'s peak phase.
const MESSAGES: usize = 50_000;
/// [`MESSAGES`] under `--quick`.
const QUICK_MESSAGES: usize = 2_000;
/// How long the forwarder may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections opened at once during setup.
const SETUP_CONCURRENCY: usize = 16;

/// When this process was started as the bare forwarder child, runs it and returns its exit code.
pub(super) fn child_main_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()?.as_os_str() != OsStr::new(CHILD_ARG) {
        return None;
    }
    let Some(cert_out) = args.next() else {
        eprintln!("usage: kith-bench {CHILD_ARG} CERTIFICATE-OUT-PATH");
        return Some(ExitCode::FAILURE);
    };
    match super::net_forwarder::main(Path::new(&cert_out)) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("bare forwarder: {e:#}");
            Some(ExitCode::FAILURE)
        }
    }
}

/// One row per pair level.
pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let frame_len = sample_send_frame_len()?;
    let total = if options.quick {
        QUICK_MESSAGES
    } else {
        MESSAGES
    };
    let mut rows = Vec::new();
    for &n in &options.pairs {
        let n = usize::try_from(n)?;
        let forwarder = tokio::task::spawn_blocking(Forwarder::start)
            .await
            .context("starting the forwarder panicked")??;
        let row = measure(&forwarder, n, split(total, n), frame_len).await;
        let row = row
            .with_context(|| format!("bare with {n} pairs; forwarder log:\n{}", forwarder.log()))?;
        rows.push(row);
    }
    Ok(rows)
}

/// One level: connect 2N clients, run the closed-loop phase, report.
async fn measure(
    forwarder: &Forwarder,
    n: usize,
    counts: Vec<usize>,
    frame_len: usize,
) -> anyhow::Result<Figures> {
    let (addr, tls) = (forwarder.addr, Arc::clone(&forwarder.tls));
    // Client k has id k + 1 (0 is the ack destination): senders even, receivers odd.
    let links = concurrently((0..2 * n).collect(), SETUP_CONCURRENCY, move |k| {
        let tls = Arc::clone(&tls);
        async move { hello(addr, tls, client_id(k)).await }
    })
    .await?;
    let mut links = links.into_iter();
    let mut loads = Vec::with_capacity(n);
    for (pair, &count) in counts.iter().enumerate() {
        let (Some(sender), Some(receiver)) = (links.next(), links.next()) else {
            bail!("fewer connections than pairs");
        };
        let destination = receiver_id(pair);
        let frames = (0..count)
            .map(|seq| frame(destination, seq as u64, frame_len))
            .collect();
        loads.push(PairLoad {
            sender,
            receiver,
            frames,
        });
    }
    let watch = ProcessWatch::start(vec![forwarder.pid()])?;
    let phase = run_phase(Arc::new(BareWire), loads, Pace::Window(WINDOW)).await;
    let usage = watch.finish()?;
    let phase = phase?;
    let mut f = phase.summary().figures("bare", n as u64);
    f.set("phase", "peak");
    f.set("frame_bytes", frame_len as u64);
    usage.record(&mut f, "forwarder");
    Ok(f)
}

/// The id of client `k` (0 is reserved for acks).
fn client_id(k: usize) -> u64 {
    k as u64 + 1
}

/// The id of pair `pair`'s receiver.
fn receiver_id(pair: usize) -> u64 {
    client_id(2 * pair + 1)
}

/// Connects and says hello as `id`; returns once the forwarder has registered it.
async fn hello(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, id: u64) -> anyhow::Result<Link> {
    let mut link = Link::open(addr, tls).await?;
    link.send(Message::binary(id.to_be_bytes().to_vec()))
        .await?;
    let answer = link.next_binary().await?;
    ensure!(
        answer.len() == ANSWER_LEN && read_u64(&answer) == id && answer[8..] == WELCOME[..],
        "the forwarder did not welcome client {id}"
    );
    Ok(link)
}

/// A frame of `len` bytes: destination, sequence number, filler.
fn frame(destination: u64, seq: u64, len: usize) -> Bytes {
    let mut frame = Vec::with_capacity(len.max(HEADER_LEN));
    frame.extend_from_slice(&destination.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.resize(len.max(HEADER_LEN), 0xA5);
    Bytes::from(frame)
}

/// How the forwarder's frames are read.
struct BareWire;

impl Wire for BareWire {
    fn accepted(&self, _pair: usize, message: &[u8]) -> anyhow::Result<Option<usize>> {
        ensure!(
            message.len() == ANSWER_LEN,
            "an answer of {} bytes",
            message.len()
        );
        let seq = usize::try_from(read_u64(message))?;
        match &message[8..] {
            tag if tag == ACCEPTED => Ok(Some(seq)),
            tag if tag == REJECTED => bail!("the forwarder has no client for message {seq}"),
            tag => bail!("an answer with the unknown tag {tag:?}"),
        }
    }

    fn received(&self, pair: usize, message: &[u8]) -> anyhow::Result<Received> {
        let Some(header) = message.get(..HEADER_LEN) else {
            bail!("a push of {} bytes", message.len());
        };
        let destination = read_u64(&header[..8]);
        ensure!(
            destination == receiver_id(pair),
            "client {destination}'s frame pushed to pair {pair}'s receiver"
        );
        let seq = read_u64(&header[8..]);
        Ok(Received::Delivery {
            seq: usize::try_from(seq)?,
            ack_id: seq,
            body: None,
        })
    }

    fn ack_frame(&self, _request_id: u64, ids: &[u64]) -> anyhow::Result<Bytes> {
        let mut frame = Vec::with_capacity(8 * (ids.len() + 1));
        frame.extend_from_slice(&ACK_DESTINATION.to_be_bytes());
        for id in ids {
            frame.extend_from_slice(&id.to_be_bytes());
        }
        Ok(Bytes::from(frame))
    }

    fn acks_answered(&self) -> bool {
        false
    }
}

/// The forwarder child process. Killed on drop.
struct Forwarder {
    child: Child,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    dir: TempDir,
}

impl Forwarder {
    /// Re-executes this program as the forwarder and waits for its address.
    fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("the path of kith-bench")?;
        let dir = tempfile::tempdir().context("a temporary directory for the forwarder")?;
        let cert = dir.path().join("cert.pem");
        let log = std::fs::File::create(dir.path().join("forwarder.log"))?;
        let mut child = Command::new(&exe)
            .arg(CHILD_ARG)
            .arg(&cert)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} {CHILD_ARG}", exe.display()))?;
        match listening(&mut child, &cert) {
            Ok((addr, tls)) => Ok(Self {
                child,
                addr,
                tls,
                dir,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("forwarder.log"));
                Err(e.context(format!("forwarder log:\n{}", log.unwrap_or_default())))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The forwarder's standard error so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("forwarder.log")).unwrap_or_default()
    }
}

/// The forwarder's address (from its banner) and a TLS configuration trusting its
/// certificate.
fn listening(
    child: &mut Child,
    cert: &Path,
) -> anyhow::Result<(SocketAddr, Arc<rustls::ClientConfig>)> {
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut lines = LineReader::new(stdout);
    let deadline = Instant::now() + START_TIMEOUT;
    let Some(line) = lines.line_until(deadline, |l| l.starts_with("listening:")) else {
        bail!("the forwarder printed no address within {START_TIMEOUT:?}");
    };
    let addr = line
        .trim_start_matches("listening:")
        .trim()
        .parse()
        .with_context(|| format!("no address in {line:?}"))?;
    let pem = std::fs::read_to_string(cert).context("the forwarder's certificate")?;
    Ok((addr, tls_config(&pem)?))
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
