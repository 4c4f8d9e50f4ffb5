//! Safety numbers (SPEC.md §8). Being written.
