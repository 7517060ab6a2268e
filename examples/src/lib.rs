//! Shared parts of heartline's example programs: the echo server the demo, tests and
//! benchmarks talk to, the `client` example's argument parser, the JSON-line writer,
//! and the JSON and human-readable renderings of a client's notices.
#![forbid(unsafe_code)]

pub mod args;
pub mod echo;
pub mod events;
pub mod jsonl;
