//! `Content::from_bytes`, the plaintext inside a session (SPEC.md §13.1): canonical only, and
//! the `Body` accessors never panic.
#![no_main]

use kith_fuzz::check_canonical;
use kith_protocol::Content;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(content) = check_canonical(data, Content::from_bytes, Content::to_bytes) else {
        return;
    };
    let _ = (content.body.is_text(), content.body.text().len());
    let _ = format!("{content:?}");
});
