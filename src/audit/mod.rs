//! The dev/prod parity audit: the local model against production's.
