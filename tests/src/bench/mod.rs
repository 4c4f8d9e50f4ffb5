//! The benchmark driver behind the `kith-bench` binary.
//!
//! Every scenario returns [`Figures`] (one per concurrency level or phase); the driver prints
//! them as a table and, with `--json FILE`, as one JSON object per line. A scenario that loses,
//! duplicates or fails to decrypt a single message returns an error: that is a failed run, not
//! a figure.
//!
//! Load runs on loopback only and is bounded in count and time. Relays run as child processes
//! (the real `kith-relay` binary next to `kith-bench`), so their RSS and CPU are their own.

mod args;
mod bare;
mod catchup;
mod crypto;
mod crypto_protocol;
mod crypto_raw;
mod crypto_timing;
mod envelopes;
mod figures;
mod group;
mod idle;
mod load;
mod load_database;
mod load_receiver;
mod load_relay;
mod load_sender;
mod load_watch;
mod net;
mod net_forwarder;
mod process;
mod relay;
mod stats;
mod store;
mod store_raw;

use std::process::ExitCode;

pub use self::args::{Args, Scenario};
pub use self::figures::Figures;

/// Runs `kith-bench` with the process's arguments; the exit code says whether every scenario
/// ran and lost nothing.
pub fn main() -> ExitCode {
    args::main()
}
