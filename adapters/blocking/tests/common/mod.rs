//! Shared helpers for this crate's integration tests.
#![allow(dead_code)]

pub mod server;
pub mod server_scenarios;
