//! Shared helpers for this crate's integration tests.
#![allow(dead_code, unused_macros)]

pub mod client_peer;
#[macro_use]
pub mod client_scenarios;
pub mod client_violations;

pub mod cluster_scenarios;
pub mod server;
pub mod server_scenarios;
