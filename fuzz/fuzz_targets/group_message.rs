//! `GroupMessage::from_bytes` (SPEC.md §14.6): canonical only, and a decoded message fed to the
//! fixture's receiving sender keys never panics and never decrypts unless it is one of the
//! genuine fixture messages.
#![no_main]

use kith_fuzz::{check_canonical, group_fixture};
use kith_protocol::{GroupMessage, PeerSenderKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(message) = check_canonical(data, GroupMessage::from_bytes, GroupMessage::to_bytes)
    else {
        return;
    };
    let fixture = group_fixture();
    let genuine = fixture.messages.iter().any(|m| m == data);
    for key in [&fixture.peer_key, &fixture.peer_key_with_skipped] {
        let mut key = PeerSenderKey::from_bytes(key).expect("fixture key");
        let decrypted = key.decrypt(&message);
        assert!(
            genuine || decrypted.is_err(),
            "a fuzzed group message decrypted"
        );
    }
});
