//! End-to-end tests across the Kith crates. The relay and client arrive with issues #3 and #4; until then the protocol crate carries its own tests.
