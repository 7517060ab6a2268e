//! The bodies of heartline's fuzz targets (`fuzz_targets/` holds one-line wrappers), so
//! a crash found by the fuzzer replays as a plain test too: see `tests/replay.rs`.
//!
//! Each body drives the code the way its real caller does and asserts, inside the
//! target, the invariants users rely on; a failed assertion is a finding.

pub mod client;
pub mod cluster;
pub mod cluster_wire;
pub mod frames;
pub mod server;
pub mod upgrade;

mod support;
