//! `ServerFrame::from_bytes`, the client's decoder of everything the relay sends (SPEC.md §9):
//! never panics, and accepts only canonical encodings.
#![no_main]

use kith_fuzz::check_canonical;
use kith_protocol::wire::ServerFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_canonical(data, ServerFrame::from_bytes, ServerFrame::to_bytes);
});
