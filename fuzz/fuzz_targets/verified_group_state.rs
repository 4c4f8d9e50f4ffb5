//! `VerifiedGroupState::from_bytes`, the client's stored group state (SPEC.md §14.3):
//! canonical only, it accepts only validly signed states, and a restored state's successor
//! checks never panic.
#![no_main]

use kith_fuzz::{check_canonical, group_fixture};
use kith_protocol::VerifiedGroupState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(state) = check_canonical(data, VerifiedGroupState::from_bytes, |s| s.to_bytes())
    else {
        return;
    };
    let fixture = group_fixture();
    let _ = state.verify_successor(&fixture.successor);
    assert_eq!(state.hash(), state.signed().hash());
});
