//! `SignedGroupState::from_bytes` (SPEC.md §14.3): canonical only; checking a decoded state as
//! a genesis, an invitation or the fixture state's successor never panics, and the hash is
//! stable across a re-encoding.
#![no_main]

use kith_fuzz::{check_canonical, group_fixture};
use kith_protocol::SignedGroupState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(signed) = check_canonical(data, SignedGroupState::from_bytes, |s| s.to_bytes()) else {
        return;
    };
    let fixture = group_fixture();
    let _ = signed.verify_genesis();
    let _ = fixture.state.verify_successor(&signed);
    let _ = signed.hash();
    let _ = format!("{signed:?}");
    if signed.state().members().len() <= 64 {
        let _ = signed.state().is_admin(signed.signer());
    }
});
