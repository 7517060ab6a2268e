//! The blocking client against a real server on 127.0.0.1 (scenarios in `common`, shared
//! with the async client's tests): reconnect after the server dies, half-open
//! detection, delivery of what was sent while down, close, giving up on 401, fresh
//! headers per attempt, Pongs while the application does not read, `wss://` with a
//! self-signed certificate.

#[macro_use]
mod common;

use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use common::client_scenarios::{EventSource, Next, Setup, Started};
use heartline_blocking::ClientEvents;

impl EventSource for ClientEvents {
    fn next_before(&mut self, deadline: Instant) -> Next {
        match self.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(event) => Next::Event(event),
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
            Err(RecvTimeoutError::Timeout) => Next::TimedOut,
        }
    }
}

fn start(url: &str, setup: Setup) -> Started {
    let (handle, events) = heartline_blocking::connect(setup.builder(url)).expect("client starts");
    (handle, Box::new(events))
}

client_scenario_tests!(start);
