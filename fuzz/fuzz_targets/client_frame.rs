//! `ClientFrame::from_bytes`, the relay's decoder of everything a client sends (SPEC.md §9):
//! never panics, and accepts only canonical encodings.
#![no_main]

use kith_fuzz::check_canonical;
use kith_protocol::wire::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_canonical(data, ClientFrame::from_bytes, ClientFrame::to_bytes);
});
