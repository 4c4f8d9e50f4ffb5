//! Fuzzing support (feature `fuzzing`, hidden from the docs): drives the relay's connection
//! handler with arbitrary WebSocket frames, for `fuzz/fuzz_targets/relay_connection.rs`.
//!
//! The connection types are private to [`crate::relay`], so the harness goes through the
//! public API only: one [`Relay`] per process, serving plain `ws://` on a loopback listener
//! over a [`SledStore`] in a temporary directory, on a current-thread runtime that runs only
//! while an input is being fed. Each input is one TCP connection: the WebSocket upgrade,
//! optionally the authentication of a device registered once at start-up, then the input's
//! frames written as raw bytes (so invalid framing, bad opcodes, fragments and oversized
//! frames reach the relay too), a Close, the end of the write half, and a wait for the relay
//! to close its side. A relay that does not close within [`HANG_LIMIT`] is a finding.
//!
//! The store directory (`$TMPDIR/kith-relay-fuzz-<pid>`) outlives the process: the relay is
//! never shut down, so that each input stays cheap.
//!
//! ## Input format
//!
//! ```text
//! input  = flags:u8 || record*
//! flags  : bit 0 set = authenticate as the registered device before the records
//! record = kind:u8 || len:u16 little-endian || payload (len bytes, or what is left)
//! kind   : bits 0-2 select Binary, Text, Ping, Pong, Close, Continuation, Raw, Binary;
//!          bit 3 sets RSV1; bit 7 clears FIN. Raw writes the payload as it is.
//! ```
//! At most [`MAX_RECORDS`] records are used.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kith_protocol::rand_core::SeedableRng;
use kith_protocol::wire::{
    ClientFrame, Handle, PrekeyUpload, Register, Request, Response, ServerFrame, sign_auth,
};
use kith_protocol::{
    AccountKeyPair, BoundedVec, DeviceId, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret,
    SignedPrekeySecret, VerifiedCertificate,
};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::relay::{Registration, Relay, RelaySettings};
use crate::store::{SledOptions, SledStore};

/// The relay name the harness's relay announces and its device signs for.
const RELAY_NAME: &str = "fuzz.invalid";

/// Largest WebSocket frame the harness's relay accepts: small, so the size limits are
/// reachable by inputs, large enough for a registration with an ML-KEM prekey.
const MAX_FRAME_LEN: usize = 16 * 1024;

/// Most records of one input that are sent.
pub const MAX_RECORDS: usize = 64;

/// How long the relay may take to close a connection once the client is done: far beyond
/// what any input needs, so reaching it means the relay hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Largest frame the harness reads from the relay (while authenticating).
const MAX_READ_LEN: u64 = 1024 * 1024;

/// The opcode of each record kind (bits 0-2); `RAW` marks raw bytes.
const OPCODES: [u8; 8] = [0x2, 0x1, 0x9, 0xa, 0x8, 0x0, RAW, 0x2];

/// The pseudo-opcode of a raw record.
const RAW: u8 = 0xff;

/// The masking key of every frame the harness sends (clients must mask; the value is free).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Why an input could not be fed to the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Setting up the relay, its store or the registered device failed.
    #[error("harness setup failed: {0}")]
    Setup(String),
    /// Connecting, upgrading or authenticating (which must always work) failed.
    #[error("connection setup failed: {0}")]
    Connect(String),
    /// The relay did not close the connection within [`HANG_LIMIT`].
    #[error("the relay did not close the connection within {HANG_LIMIT:?}")]
    Hang,
}

/// The per-process relay and the device the inputs authenticate as.
struct Harness {
    runtime: Runtime,
    addr: SocketAddr,
    device: FuzzDevice,
}

/// The one registered device.
struct FuzzDevice {
    keys: DeviceKeyPair,
    certificate: VerifiedCertificate,
    upload: PrekeyUpload,
}

/// Feeds one fuzz input (format in the module docs) to a fresh connection of the
/// per-process relay, and waits for the relay to close it.
pub fn run_input(input: &[u8]) -> Result<(), HarnessError> {
    static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();
    let harness = HARNESS
        .get_or_init(Harness::start)
        .as_ref()
        .map_err(|e| HarnessError::Setup(e.clone()))?;
    harness.runtime.block_on(harness.feed(input))
}

impl Harness {
    /// Starts the relay and registers the device.
    fn start() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let device = FuzzDevice::new().map_err(|e| format!("device: {e}"))?;
        let addr = runtime.block_on(spawn_relay())?;
        let harness = Self {
            runtime,
            addr,
            device,
        };
        harness
            .runtime
            .block_on(harness.register())
            .map_err(|e| format!("registration: {e}"))?;
        Ok(harness)
    }

    /// Registers the device (once per process).
    async fn register(&self) -> Result<(), HarnessError> {
        let mut tcp = self.upgrade().await?;
        let nonce = read_challenge(&mut tcp).await?;
        let register = Register {
            handle: Handle::parse("fuzzer").map_err(connect_error)?,
            certificate: self.device.certificate.certificate().clone(),
            prekeys: self.device.upload.clone(),
            invite: None,
            signature: self.device.sign(&nonce)?,
        };
        request_ok(&mut tcp, Request::Register(Box::new(register))).await
    }

    /// One input: connect, optionally authenticate, send the records, close, and wait.
    async fn feed(&self, input: &[u8]) -> Result<(), HarnessError> {
        let Some((&flags, records)) = input.split_first() else {
            return Ok(());
        };
        let mut tcp = self.upgrade().await?;
        if flags & 1 == 1 {
            let nonce = read_challenge(&mut tcp).await?;
            let request = Request::Authenticate {
                device_id: self.device.certificate.device_id(),
                signature: self.device.sign(&nonce)?,
            };
            request_ok(&mut tcp, request).await?;
        }
        let (mut reader, mut writer) = tcp.into_split();
        // Drains everything the relay sends (so it never blocks on a full socket) until it
        // closes its side.
        let drain = tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            tokio::io::copy(&mut reader, &mut sink).await
        });
        // Write failures only mean the relay has closed already.
        let _ = writer.write_all(&encode_records(records)).await;
        let _ = writer.write_all(&frame(0x88, &[0x03, 0xe8])).await;
        let _ = writer.shutdown().await;
        match tokio::time::timeout(HANG_LIMIT, drain).await {
            Ok(_) => Ok(()),
            Err(_) => Err(HarnessError::Hang),
        }
    }

    /// A TCP connection to the relay, upgraded to WebSocket by hand.
    async fn upgrade(&self) -> Result<TcpStream, HarnessError> {
        let mut tcp = TcpStream::connect(self.addr).await.map_err(connect_error)?;
        tcp.set_nodelay(true).map_err(connect_error)?;
        // Close with a reset: a fuzz run opens thousands of connections per minute, which
        // would otherwise exhaust the ephemeral ports in TIME_WAIT.
        tcp.set_zero_linger().map_err(connect_error)?;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {RELAY_NAME}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(connect_error)?;
        read_http_response(&mut tcp).await?;
        Ok(tcp)
    }
}

impl FuzzDevice {
    /// The device, from a fixed seed.
    fn new() -> Result<Self, String> {
        let mut rng = ChaCha20Rng::seed_from_u64(0x6b69_7468_6675_7a7a);
        let account = AccountKeyPair::generate(&mut rng);
        let keys = DeviceKeyPair::generate(&mut rng);
        let certificate = account
            .certify_device(DeviceId::random(&mut rng), &keys, 1_700_000_000)
            .verify()
            .map_err(|e| e.to_string())?;
        let signed_prekey = SignedPrekeySecret::generate(1, &keys, &mut rng);
        let last_resort = KemPrekeySecret::generate(1, KemPrekeyKind::LastResort, &keys, &mut rng);
        let upload = PrekeyUpload {
            signed_prekey: Some(signed_prekey.public().clone()),
            last_resort_kem_prekey: Some(last_resort.public().clone()),
            one_time_prekeys: BoundedVec::default(),
            one_time_kem_prekeys: BoundedVec::default(),
        };
        Ok(Self {
            keys,
            certificate,
            upload,
        })
    }

    /// The answer to a challenge (no channel binding: the harness relay has no TLS).
    fn sign(&self, nonce: &[u8; 32]) -> Result<[u8; 64], HarnessError> {
        sign_auth(
            &self.keys,
            RELAY_NAME,
            nonce,
            None,
            &self.certificate.device_id(),
        )
        .map_err(connect_error)
    }
}

/// Opens the store, binds the listener and spawns the relay; returns its address.
async fn spawn_relay() -> Result<SocketAddr, String> {
    let dir = std::env::temp_dir().join(format!("kith-relay-fuzz-{}", std::process::id()));
    // A directory left by an earlier process with the same id.
    let _ = std::fs::remove_dir_all(&dir);
    let store = SledStore::open(&dir, SledOptions::default()).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let settings = RelaySettings {
        relay_name: RELAY_NAME.to_owned(),
        registration: Registration::Open,
        max_frame_len: MAX_FRAME_LEN,
        ..RelaySettings::default()
    };
    let relay = Relay::new(Arc::new(store), settings);
    // Never cancelled: the relay lives as long as the process.
    tokio::spawn(relay.serve(listener, None, CancellationToken::new()));
    Ok(addr)
}

/// The raw bytes of the input's records (format in the module docs).
fn encode_records(mut records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..MAX_RECORDS {
        let Some((&kind, rest)) = records.split_first() else {
            break;
        };
        let (len, rest) = match rest {
            [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        records = rest;
        let opcode = OPCODES[usize::from(kind & 7)];
        if opcode == RAW {
            out.extend_from_slice(payload);
            continue;
        }
        let fin = if kind & 0x80 == 0 { 0x80 } else { 0 };
        let rsv1 = if kind & 0x08 == 0 { 0 } else { 0x40 };
        out.extend_from_slice(&frame(fin | rsv1 | opcode, payload));
    }
    out
}

/// One masked client frame with first byte `head`.
fn frame(head: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(head);
    match u16::try_from(payload.len()) {
        Ok(len @ 0..=125) => out.extend_from_slice(&[0x80 | len.to_be_bytes()[1]]),
        Ok(len) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(0x80 | 127);
            out.extend_from_slice(
                &u64::try_from(payload.len())
                    .unwrap_or(u64::MAX)
                    .to_be_bytes(),
            );
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(
        payload
            .iter()
            .zip(MASK.iter().cycle())
            .map(|(byte, mask)| byte ^ mask),
    );
    out
}

/// Reads the upgrade response up to its blank line; it must be `101 Switching Protocols`.
async fn read_http_response(tcp: &mut TcpStream) -> Result<(), HarnessError> {
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        if response.len() > 4096 {
            return Err(HarnessError::Connect("upgrade response too long".into()));
        }
        let byte = tcp.read_u8().await.map_err(connect_error)?;
        response.push(byte);
    }
    if response.starts_with(b"HTTP/1.1 101") {
        Ok(())
    } else {
        Err(HarnessError::Connect("upgrade refused".into()))
    }
}

/// Reads the relay's challenge nonce.
async fn read_challenge(tcp: &mut TcpStream) -> Result<[u8; 32], HarnessError> {
    match read_server_frame(tcp).await? {
        ServerFrame::Challenge { nonce, .. } => Ok(nonce),
        other => Err(HarnessError::Connect(format!(
            "expected a challenge, got {other:?}"
        ))),
    }
}

/// Sends `request` and requires `Ok` as its answer.
async fn request_ok(tcp: &mut TcpStream, request: Request) -> Result<(), HarnessError> {
    let frame_bytes = ClientFrame {
        request_id: 1,
        request,
    }
    .to_bytes();
    tcp.write_all(&frame(0x82, &frame_bytes))
        .await
        .map_err(connect_error)?;
    match read_server_frame(tcp).await? {
        ServerFrame::Response {
            response: Response::Ok,
            ..
        } => Ok(()),
        other => Err(HarnessError::Connect(format!("expected Ok, got {other:?}"))),
    }
}

/// Reads one unfragmented binary frame from the relay and decodes it.
async fn read_server_frame(tcp: &mut TcpStream) -> Result<ServerFrame, HarnessError> {
    let head = tcp.read_u16().await.map_err(connect_error)?;
    let len = match head & 0x7f {
        126 => u64::from(tcp.read_u16().await.map_err(connect_error)?),
        127 => tcp.read_u64().await.map_err(connect_error)?,
        len => u64::from(len),
    };
    if head >> 8 != 0x82 || head & 0x80 != 0 || len > MAX_READ_LEN {
        return Err(HarnessError::Connect(format!(
            "unexpected frame header {head:#06x}"
        )));
    }
    let len = usize::try_from(len).map_err(connect_error)?;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.map_err(connect_error)?;
    ServerFrame::from_bytes(&payload).map_err(connect_error)
}

/// A connection-phase failure.
fn connect_error(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Connect(e.to_string())
}
