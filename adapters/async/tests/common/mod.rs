//! Shared helpers for this crate's integration tests.
#![allow(dead_code)]

// The peer and the scenarios of heartline-blocking's client tests: every client
// flavour is tested against the same server with the same scenarios.
#[path = "../../../blocking/tests/common/client_peer.rs"]
pub mod client_peer;
#[macro_use]
#[path = "../../../blocking/tests/common/client_scenarios.rs"]
pub mod client_scenarios;

pub mod async_client;
