//! `PeerSenderKey::from_bytes`, a stored receiving sender key (SPEC.md §14.5): canonical only,
//! and a key restored from arbitrary bytes decrypts the fixture's messages, or refuses them,
//! without panicking, and persists again.
#![no_main]

use kith_fuzz::{check_canonical_bytes, group_fixture};
use kith_protocol::{GroupMessage, PeerSenderKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mut key) = check_canonical_bytes(data, PeerSenderKey::from_bytes, |k| k.to_bytes())
    else {
        return;
    };
    for message in &group_fixture().messages {
        let message = GroupMessage::from_bytes(message).expect("fixture message");
        let _ = key.decrypt(&message);
    }
    PeerSenderKey::from_bytes(&key.to_bytes()).expect("a key's own state restores");
});
