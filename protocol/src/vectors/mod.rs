//! Test vectors (being written).
