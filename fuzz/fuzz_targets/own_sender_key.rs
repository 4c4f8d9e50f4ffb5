//! `OwnSenderKey::from_bytes`, a stored sending sender key (SPEC.md §14.5): canonical only, and
//! a key restored from arbitrary bytes encrypts, distributes and persists without panicking;
//! what it encrypts, its own distribution decrypts.
#![no_main]

use kith_fuzz::check_canonical_bytes;
use kith_protocol::{AccountPublicKey, DeviceId, OwnSenderKey, PeerSenderKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mut key) = check_canonical_bytes(data, OwnSenderKey::from_bytes, |k| k.to_bytes())
    else {
        return;
    };
    let account = AccountPublicKey::from_bytes([7; 32]);
    let device = DeviceId::from_bytes([8; 16]);
    let mut peer = PeerSenderKey::from_distribution(&key.distribution(), account, device);
    if let Ok(message) = key.encrypt((&account, device), b"fuzz") {
        let plaintext = peer.decrypt(&message).expect("own distribution decrypts");
        assert_eq!(&plaintext[..], b"fuzz");
    }
    OwnSenderKey::from_bytes(&key.to_bytes()).expect("a key's own state restores");
});
