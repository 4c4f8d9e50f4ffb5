//! `PrekeyBundle::from_bytes` (SPEC.md §3.6): canonical only; a decoded bundle's verification
//! never panics and accepts only bundles signed by the fixture account's device.
#![no_main]

use kith_fuzz::{check_canonical, pair};
use kith_protocol::PrekeyBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(bundle) = check_canonical(data, PrekeyBundle::from_bytes, PrekeyBundle::to_bytes)
    else {
        return;
    };
    let bob = &pair().bob;
    if bundle.verify(bob.certificate.account_key()).is_ok() {
        assert_eq!(
            bundle.certificate(),
            bob.certificate.certificate(),
            "a bundle verified under Bob's account key carries another certificate"
        );
    }
    let _ = bundle.verify(bundle.certificate().claimed_account_key());
});
