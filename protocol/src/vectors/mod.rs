//! Deterministic test vectors, one JSON file per topic in `protocol/tests/vectors/`.
//!
//! Regenerate every file after an intended protocol change with
//!
//! ```text
//! KITH_REGENERATE_VECTORS=1 cargo test -p kith-protocol vectors
//! ```
//!
//! and review the diff: any change to an existing file is a change of the wire protocol.
//!
//! Each test does three things:
//!
//! 1. computes its vector afresh from fixed seeds (`ChaCha20Rng::seed_from_u64`), with every
//!    random draw made explicit: secrets are drawn as bytes first and then passed to the
//!    protocol code, and the code's own randomness comes from a [`ScriptedRng`] that serves
//!    exactly the recorded bytes;
//! 2. compares the result with the file, field by field (when `KITH_REGENERATE_VECTORS=1`, it
//!    first writes the file);
//! 3. checks the file's contents independently: recomputes keys from the spec's formulas with
//!    the primitives directly (`hkdf`, `hmac`, `x25519-dalek`, `ed25519-dalek`,
//!    `chacha20poly1305`, `ml-kem`), lays out encodings by hand, decrypts the recorded
//!    ciphertexts and verifies the signatures, so that the files are known-good answers and
//!    not merely snapshots. These checks run when regenerating too: a change that breaks the
//!    spec's formulas fails either way.
//!
//! The files list every input as hex, so an implementation in another language can check
//! itself without a ChaCha20 RNG:
//!
//! - `certificate.json`: a device certificate (SPEC.md §3.4);
//! - `pqxdh.json`: the key agreement with and without a one-time prekey (§3.5–3.6, §5);
//! - `ratchet.json`: a session's first five messages, both ways, one reordered (§6);
//! - `sealed_sender.json`: one sealed envelope (§7);
//! - `padding.json`: padded lengths and padded bytes (§7.3);
//! - `safety_number.json`: both parties' digits, fingerprints and scannable forms (§8);
//! - `wire.json`: every client request, server frame and error kind, the auth transcript (§9);
//! - `content.json`: the message content inside a session, both body variants (§13);
//! - `group_state.json`: a group's genesis, an admin's removal and a member's leave (§14.1–14.4);
//! - `group_message.json`: a sender key's distribution and four group messages, delivered out
//!   of order (§14.5–14.6);
//! - `group_envelope.json`: a group message in a group envelope (§14.7).

mod certificate;
mod content;
mod fixtures;
mod group_envelope;
mod group_message;
mod group_state;
mod padding;
mod pqxdh;
mod ratchet;
mod ratchet_spec;
mod safety_number;
mod sealed_sender;
mod wire;
mod wire_frames;

use core::convert::Infallible;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng, TryCryptoRng, TryRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Environment variable that makes the tests write the vector files instead of comparing.
const REGENERATE: &str = "KITH_REGENERATE_VECTORS";

/// Compares `fresh` with `tests/vectors/<name>` (or writes the file when regenerating) and
/// returns the file's contents, for the independent checks.
pub(super) fn check_against_file<T: Serialize + DeserializeOwned>(name: &str, fresh: &T) -> T {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var(REGENERATE).is_ok_and(|v| v == "1") {
        // Written from the struct, so the keys keep their declaration order.
        let mut text = serde_json::to_string_pretty(fresh).expect("vector serialises");
        text.push('\n');
        std::fs::write(&path, text).expect("write vector file");
    }
    let fresh = serde_json::to_value(fresh).expect("vector serialises");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {path} ({e}); generate it with {REGENERATE}=1 (see the module docs)")
    });
    let recorded: Value = serde_json::from_str(&text).expect("vector file is JSON");
    let mut differences = Vec::new();
    diff("", &recorded, &fresh, &mut differences);
    assert!(
        differences.is_empty(),
        "{name} differs from the freshly computed vector ({} differences):\n{}\n\
         If the protocol changed on purpose, regenerate with {REGENERATE}=1 and review the diff.",
        differences.len(),
        differences.join("\n")
    );
    serde_json::from_value(recorded).expect("vector file has the expected fields")
}

/// Collects the JSON paths where `recorded` and `fresh` differ.
fn diff(path: &str, recorded: &Value, fresh: &Value, out: &mut Vec<String>) {
    match (recorded, fresh) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&sub, x, y, out),
                    (Some(_), None) => out.push(format!("  {sub}: only in the file")),
                    (None, _) => out.push(format!("  {sub}: missing from the file")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => {
            let (a, b) = (a.to_string(), b.to_string());
            // Show long hex strings from shortly before their first difference.
            let first = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let start = first.saturating_sub(20);
            out.push(format!(
                "  {path} (first difference at character {first}):\n    \
                 file:     {}\n    computed: {}",
                excerpt(&a, start),
                excerpt(&b, start)
            ));
        }
        _ => {}
    }
}

/// At most 100 characters of `text` from `start` (JSON text of hex and numbers is ASCII).
fn excerpt(text: &str, start: usize) -> String {
    let end = text.len().min(start + 100);
    let prefix = if start > 0 { "…" } else { "" };
    let suffix = if end < text.len() { "…" } else { "" };
    format!(
        "{prefix}{}{suffix} ({} chars)",
        &text[start.min(end)..end],
        text.len()
    )
}

/// Lower-case hex.
pub(super) fn hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// Decodes hex of exactly `N` bytes.
pub(super) fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let bytes = unhex_vec(text);
    bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("expected {N} bytes, found {}", b.len()))
}

/// Decodes hex of any length.
pub(super) fn unhex_vec(text: &str) -> Vec<u8> {
    hex::decode(text).expect("vector fields are hex")
}

/// The deterministic source of every secret in the vectors.
pub(super) fn seeded(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// `N` bytes from `rng`.
pub(super) fn draw<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// An RNG that serves a fixed script of bytes and fails the test if the code under test draws
/// more or (checked by [`ScriptedRng::finish`]) fewer: so the recorded "random" inputs are
/// exactly what the code consumed, in order.
pub(super) struct ScriptedRng {
    script: Vec<u8>,
    position: usize,
}

impl ScriptedRng {
    pub(super) fn new(chunks: &[&[u8]]) -> Self {
        Self {
            script: chunks.concat(),
            position: 0,
        }
    }

    /// Asserts that the whole script was consumed.
    pub(super) fn finish(self) {
        assert_eq!(
            self.position,
            self.script.len(),
            "the code drew less randomness than scripted"
        );
    }
}

impl TryRng for ScriptedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let end = self.position + dst.len();
        assert!(
            end <= self.script.len(),
            "the code drew more randomness than scripted"
        );
        dst.copy_from_slice(&self.script[self.position..end]);
        self.position = end;
        Ok(())
    }
}

impl TryCryptoRng for ScriptedRng {}

/// Appends the LEB128 varint encoding of `value` (postcard's integer encoding, SPEC.md §2).
pub(super) fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = u8::try_from(value & 0x7F).expect("seven bits fit a byte");
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// HKDF-SHA256 straight from the `hkdf` crate (not through `crate::kdf`).
pub(super) fn hkdf_sha256<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .expect("output length is valid");
    out
}

/// HMAC-SHA256 straight from the `hmac` crate.
pub(super) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// X25519 straight from x25519-dalek's RFC 7748 function (clamps the scalar).
pub(super) fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*secret, *public)
}
