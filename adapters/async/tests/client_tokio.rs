//! The async client on tokio (`heartline_async::tokio::connect`: tokio's TcpStream,
//! reactor and timer) against a real server on 127.0.0.1, with the scenarios every
//! client flavour runs.

#[macro_use]
mod common;

client_scenario_tests!(common::async_client::tokio);
