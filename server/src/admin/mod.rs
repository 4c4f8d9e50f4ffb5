//! Admin listener. Being written.
