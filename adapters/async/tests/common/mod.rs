//! Shared helpers for this crate's integration tests.
#![allow(dead_code)]

// The raw clients and the scenarios of heartline-blocking's server tests: every
// server runtime is tested with the same clients and the same scenarios.
#[path = "../../../blocking/tests/common/server.rs"]
pub mod server;
#[path = "../../../blocking/tests/common/server_scenarios.rs"]
pub mod server_scenarios;

pub mod async_server;
