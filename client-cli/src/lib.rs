//! The Kith reference client. Not built yet: see issue #4.
