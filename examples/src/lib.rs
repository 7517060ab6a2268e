//! Shared helpers for the heartline example programs.
#![forbid(unsafe_code)]

pub mod jsonl;
