//! `crypto`: the protocol's operations next to the primitives they are made of, measured in
//! the same run, and the budgets checked against them.
//!
//! ## What each operation performs (counted from `protocol/src`)
//!
//! **Session setup** (initiator: `PrekeyBundle::verify` + `Session::initiate` + first
//! `encrypt`; responder: `Session::respond`, which decrypts the first message), with a
//! one-time prekey in the bundle:
//!
//! | | X25519 DH | X25519 base-point mul | Ed25519 verify | ML-KEM keygen | encaps | decaps |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | bundle verify (certificate, signed prekey, KEM prekey) | | | 3 | | | |
//! | PQXDH initiator: DH1–DH4, `EK_A` public, encapsulation | 4 | 1 | | | 1 | |
//! | ratchet init (`DH(DHs, SPK_B)`) | 1 | | | | | |
//! | first `encrypt` (header's ratchet public key, once per ratchet key) | | 1 | | | | |
//! | PQXDH responder: DH1–DH4, decapsulation from the stored seed | 4 | | | 1 | | 1 |
//! | responder's first decrypt: receiving step + new sending chain | 2 | | | | | |
//! | **total** | **11** | **2** | **3** | **1** | **1** | **1** |
//!
//! Every one is needed by the protocol except the ML-KEM key generation before each
//! decapsulation: prekey secrets are stored as 64-byte seeds (FIPS 203's compact form) and
//! expanded on use — a storage trade-off, kept and counted. (Until this issue, `check_local`
//! recomputed each side's identity public key, 2 more base-point multiplications; the device
//! key pair now computes it once.)
//!
//! **Seal + open** of a ratchet message: `seal` does `E = e·G` (1 base-point mul) and
//! `DH(e, IK_R)` (1 DH); `open` does `DH(IK_R, E)` (1 DH) and verifies the sender certificate
//! (1 Ed25519 verify). Total 2 DH + 1 base-point mul + 1 verify. (`open` used to recompute the
//! local identity public key: one more base-point multiplication.)
//!
//! **Ratchet encrypt + decrypt** in one chain: 4 HMAC-SHA256 (message key and next chain key,
//! each side), 2 HKDF-SHA256 to 44 bytes (AEAD key and nonce, each side), one
//! ChaCha20-Poly1305 seal and one open of the message. The header's ratchet public key is
//! computed once per ratchet key pair, not per message (it used to be recomputed by every
//! `encrypt`: an X25519 base-point multiplication on the symmetric path).

//! ## Budgets (issue #7)
//!
//! Setup and seal + open ≤ 1.2 × the sum of the public-key operations they perform (rows
//! `setup-vs-budget`, `seal-open-vs-budget`; the extra `ratio_needed` compares with only the
//! operations the protocol strictly needs, i.e. without the seed expansion). Ratchet ≤ 2 × its
//! symmetric primitives (`ratchet-vs-budget`).

use super::Figures;
use super::args::Options;
use super::crypto_protocol::{self, ProtocolCosts};
use super::crypto_raw::{self, RawCosts};
use super::crypto_timing::{Stopwatch, Timing};

/// Setup and seal + open may cost this much more than their public-key operations.
const PUBLIC_KEY_SLACK: f64 = 1.2;
/// The ratchet may cost this much more than its symmetric primitives.
const SYMMETRIC_SLACK: f64 = 2.0;

/// How many of each public-key operation something performs.
#[derive(Debug, Clone, Copy, Default)]
struct PublicKeyOps {
    x25519_dh: u32,
    x25519_base: u32,
    ed25519_verify: u32,
    ml_kem_keygen: u32,
    ml_kem_encaps: u32,
    ml_kem_decaps: u32,
}

/// Session setup as performed (see the module docs).
const SETUP_PERFORMED: PublicKeyOps = PublicKeyOps {
    x25519_dh: 11,
    x25519_base: 2,
    ed25519_verify: 3,
    ml_kem_keygen: 1,
    ml_kem_encaps: 1,
    ml_kem_decaps: 1,
};
/// Session setup as the protocol needs it.
const SETUP_NEEDED: PublicKeyOps = PublicKeyOps {
    ml_kem_keygen: 0,
    ..SETUP_PERFORMED
};
/// What setup does beyond what it strictly needs.
const SETUP_NEEDLESS: &str = "1 ml-kem keygen before decaps (prekey stored as a seed)";
/// Seal + open as performed.
const SEAL_OPEN_PERFORMED: PublicKeyOps = PublicKeyOps {
    x25519_dh: 2,
    x25519_base: 1,
    ed25519_verify: 1,
    ml_kem_keygen: 0,
    ml_kem_encaps: 0,
    ml_kem_decaps: 0,
};
/// Seal + open as the protocol needs it: everything it performs.
const SEAL_OPEN_NEEDED: PublicKeyOps = SEAL_OPEN_PERFORMED;
/// What seal + open does beyond what it needs.
const SEAL_OPEN_NEEDLESS: &str = "none";
/// The ratchet's symmetric work per message, encrypt + decrypt.
const RATCHET_OPS: &str = "4 hmac-sha256 + 2 hkdf-sha256-44 + chacha20poly1305 seal+open 200 B";
/// What the ratchet does beyond what it needs.
const RATCHET_NEEDLESS: &str = "none";

impl PublicKeyOps {
    /// Microseconds these operations cost at `raw` prices.
    fn cost(&self, raw: &RawCosts) -> f64 {
        f64::from(self.x25519_dh) * raw.x25519_dh
            + f64::from(self.x25519_base) * raw.x25519_base
            + f64::from(self.ed25519_verify) * raw.ed25519_verify
            + f64::from(self.ml_kem_keygen) * raw.ml_kem_keygen
            + f64::from(self.ml_kem_encaps) * raw.ml_kem_encaps
            + f64::from(self.ml_kem_decaps) * raw.ml_kem_decaps
    }

    /// E.g. `11 x25519-dh + 4 x25519-base-mul + 3 ed25519-verify + 1 ml-kem-768-encaps`.
    fn describe(&self) -> String {
        let parts = [
            (self.x25519_dh, "x25519-dh"),
            (self.x25519_base, "x25519-base-mul"),
            (self.ed25519_verify, "ed25519-verify"),
            (self.ml_kem_keygen, "ml-kem-768-keygen"),
            (self.ml_kem_encaps, "ml-kem-768-encaps"),
            (self.ml_kem_decaps, "ml-kem-768-decaps"),
        ];
        parts
            .iter()
            .filter(|(count, _)| *count > 0)
            .map(|(count, name)| format!("{count} {name}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Microseconds of the ratchet's symmetric primitives per message (encrypt + decrypt).
fn ratchet_symmetric_cost(raw: &RawCosts) -> f64 {
    4.0 * raw.hmac + 2.0 * raw.hkdf_44 + raw.aead_seal + raw.aead_open
}

pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figures>> {
    let clock = Stopwatch::new(options.quick);
    tokio::task::spawn_blocking(move || measure(&clock)).await?
}

/// Everything, on a blocking thread: raw primitives first, then the protocol, then budgets.
fn measure(clock: &Stopwatch) -> anyhow::Result<Vec<Figures>> {
    let (raw, raw_rows) = crypto_raw::measure(clock)?;
    let (protocol, protocol_rows) = crypto_protocol::measure(clock)?;
    let mut rows: Vec<Figures> = raw_rows
        .iter()
        .chain(&protocol_rows)
        .map(|(name, timing)| operation_row(name, timing))
        .collect();
    rows.extend(budget_rows(&raw, &protocol));
    Ok(rows)
}

fn operation_row(name: &str, timing: &Timing) -> Figures {
    let mut row = Figures::new("crypto", 1)
        .with("op", name)
        .with("us", timing.us);
    row.messages_per_sec = Some(timing.per_second());
    row.seconds = timing.seconds;
    row
}

/// One row per target: measured against its budget.
fn budget_rows(raw: &RawCosts, protocol: &ProtocolCosts) -> Vec<Figures> {
    let setup = public_key_target(
        "setup-vs-budget",
        &protocol.setup,
        (&SETUP_PERFORMED, &SETUP_NEEDED),
        SETUP_NEEDLESS,
        raw,
    );
    let seal_open = public_key_target(
        "seal-open-vs-budget",
        &protocol.seal_open,
        (&SEAL_OPEN_PERFORMED, &SEAL_OPEN_NEEDED),
        SEAL_OPEN_NEEDLESS,
        raw,
    );
    let symmetric = ratchet_symmetric_cost(raw);
    let ratchet = target_row(
        "ratchet-vs-budget",
        &protocol.ratchet,
        symmetric,
        SYMMETRIC_SLACK,
    )
    .with("ops", RATCHET_OPS)
    .with("needless", RATCHET_NEEDLESS);
    vec![setup, seal_open, ratchet]
}

/// A public-key budget row: the ratio against the operations performed (the target) and
/// against those the protocol needs.
fn public_key_target(
    name: &str,
    measured: &Timing,
    (performed, needed): (&PublicKeyOps, &PublicKeyOps),
    needless: &str,
    raw: &RawCosts,
) -> Figures {
    target_row(name, measured, performed.cost(raw), PUBLIC_KEY_SLACK)
        .with("ops", performed.describe())
        .with("ops_needed", needed.describe())
        .with("ratio_needed", measured.us / needed.cost(raw))
        .with("needless", needless)
}

/// `measured ≤ slack × primitives`: the ratio, the budget and whether it is met.
fn target_row(name: &str, measured: &Timing, primitives_us: f64, slack: f64) -> Figures {
    let ratio = measured.us / primitives_us;
    let mut row = Figures::new("crypto", 1)
        .with("op", name)
        .with("us", measured.us)
        .with("primitives_us", primitives_us)
        .with("budget_us", slack * primitives_us)
        .with("ratio", ratio)
        .with("limit", slack)
        .with("met", ratio <= slack);
    row.seconds = measured.seconds;
    row
}
