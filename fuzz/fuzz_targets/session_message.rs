//! `SessionMessage::from_bytes`, the ratchet and prekey messages (SPEC.md §6.9): canonical
//! only, and a decoded message fed to Bob's established session (and, when it is a prekey
//! message, to session creation) never panics and never yields a plaintext the fixture
//! conversation did not send: the fuzzer cannot forge. (The key-agreement fields of a prekey
//! message are outside the ratchet's AEAD, and the responder picks prekey secrets by id, so a
//! genuine prekey message with altered fields may still decrypt to its genuine plaintext; a
//! ratchet message must be genuine byte for byte.)
#![no_main]

use kith_fuzz::{check_canonical, pair, rng};
use kith_protocol::{Session, SessionMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(message) = check_canonical(data, SessionMessage::from_bytes, SessionMessage::to_bytes)
    else {
        return;
    };
    let pair = pair();
    // The seeds include real messages of the fixture conversation: those may decrypt.
    let genuine = pair.messages.iter().any(|m| m == data);
    let mut rng = rng(1);
    let mut bob = Session::from_bytes(&pair.bob_session).expect("fixture session");
    if let Ok(plaintext) = bob.decrypt(&pair.alice.certificate, &message, &mut rng) {
        check_genuine(&plaintext, genuine, &message);
    }
    if let SessionMessage::Prekey(prekey) = &message {
        let bob_device = &pair.bob;
        let responded = Session::respond(
            &bob_device.keys,
            &bob_device.certificate,
            &bob_device.prekeys_for(prekey),
            &pair.alice.certificate,
            prekey,
            &mut rng,
        );
        if let Ok((_, plaintext)) = responded {
            check_genuine(&plaintext, genuine, &message);
        }
    }
});

/// A message that decrypted must be genuine, or a prekey message carrying a genuine plaintext.
fn check_genuine(plaintext: &[u8], genuine: bool, message: &SessionMessage) {
    let sent = PLAINTEXTS.contains(&plaintext);
    let prekey = matches!(message, SessionMessage::Prekey(_));
    assert!(
        genuine || (prekey && sent),
        "a fuzzed message decrypted to {plaintext:?}"
    );
}

/// What the fixture conversation sent (kith_fuzz::pair).
const PLAINTEXTS: [&[u8]; 4] = [b"hello", b"second", b"reply", b"ratchet"];
