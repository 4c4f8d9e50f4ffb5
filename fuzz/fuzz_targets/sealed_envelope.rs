//! `sealed::open` (SPEC.md §7). The first byte picks the mode:
//! - even: the rest is an envelope, opened as it is (the relay's view: almost always fails the
//!   AEAD, so this covers the framing checks);
//! - odd: the rest is the padded plaintext, sealed validly to the fixture recipient first, so
//!   the unpadding, the content decoder and the certificate checks see arbitrary input.
//!
//! Never panics; an opened envelope's sender certificate verifies and its message re-encodes.
#![no_main]

use kith_fuzz::{seal_raw, sealed_fixture};
use kith_protocol::{SessionMessage, open};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let recipient = &sealed_fixture().recipient;
    let envelope = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        seal_raw(&recipient.certificate, rest)
    };
    let Ok(opened) = open(&recipient.keys, &recipient.certificate, &envelope) else {
        return;
    };
    assert!(opened.sender.certificate().verify().is_ok());
    let encoded = opened.message.to_bytes();
    assert_eq!(
        SessionMessage::from_bytes(&encoded).expect("re-decodes"),
        opened.message
    );
});
