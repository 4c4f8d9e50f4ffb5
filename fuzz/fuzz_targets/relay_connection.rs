//! The relay's connection handler fed arbitrary WebSocket frames, before and after
//! authentication (input format: `kith_relay::fuzzing`). The relay must not crash and must
//! close every connection once the client is done.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = kith_relay::fuzzing::run_input(data) {
        panic!("{e}");
    }
});
