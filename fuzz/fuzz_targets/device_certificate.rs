//! `DeviceCertificate::from_bytes` (SPEC.md §3.3): canonical only; verification never panics,
//! and a verified certificate reports what the certificate claims.
#![no_main]

use kith_fuzz::check_canonical;
use kith_protocol::DeviceCertificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(certificate) = check_canonical(
        data,
        DeviceCertificate::from_bytes,
        DeviceCertificate::to_bytes,
    ) else {
        return;
    };
    if let Ok(verified) = certificate.verify() {
        assert_eq!(verified.account_key(), certificate.claimed_account_key());
        assert_eq!(verified.device_id(), certificate.claimed_device_id());
    }
});
