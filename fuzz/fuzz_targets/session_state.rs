//! `Session::from_bytes`, the persisted session (SPEC.md §6.8): canonical only, and a session
//! restored from arbitrary bytes can encrypt, decrypt and persist again without panicking.
#![no_main]

use kith_fuzz::{check_canonical_bytes, pair, rng};
use kith_protocol::{Session, SessionMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mut session) = check_canonical_bytes(data, Session::from_bytes, Session::to_bytes)
    else {
        return;
    };
    let pair = pair();
    let mut rng = rng(2);
    for message in &pair.messages {
        let message = SessionMessage::from_bytes(message).expect("fixture message");
        let _ = session.decrypt(&pair.alice.certificate, &message, &mut rng);
        let _ = session.decrypt(&pair.bob.certificate, &message, &mut rng);
    }
    if let Ok(message) = session.encrypt(b"after restore") {
        SessionMessage::from_bytes(&message.to_bytes()).expect("own message decodes");
    }
    let bytes = session.to_bytes();
    Session::from_bytes(&bytes).expect("a session's own state restores");
});
