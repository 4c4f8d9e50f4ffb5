//! Client ↔ relay wire format (SPEC.md §9). Being written.
