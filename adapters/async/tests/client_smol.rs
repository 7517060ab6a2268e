//! The async client on smol against a real server on 127.0.0.1 (scenarios shared with
//! the blocking client's tests): reconnect after the server dies, half-open detection,
//! delivery of what was sent while down, close, giving up on 401, fresh headers per
//! attempt, Pongs while the application does not read, `wss://` with a self-signed certificate.

#[macro_use]
mod common;

client_scenario_tests!(common::async_client::smol);
