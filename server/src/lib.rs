//! The Kith relay. Not built yet: see issue #3 (the relay v1 on sled).
