//! Shared helpers for this crate's integration tests.
#![allow(dead_code)]

pub mod client_peer;
#[macro_use]
pub mod client_scenarios;
