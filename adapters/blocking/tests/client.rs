//! The blocking client against a real server on 127.0.0.1 (scenarios in `common`, shared
//! with the async client's tests): reconnect after the server dies, half-open
//! detection, delivery of what was sent while down, close, giving up on 401, fresh
//! headers per attempt, Pongs while the application does not read.

#[macro_use]
mod common;

use common::{EventSource, OnConnect};
use heartline_blocking::{ClientBuilder, ClientHandle};
use heartline_core::ClientConfig;

fn start(
    url: &str,
    config: ClientConfig,
    on_connect: Option<OnConnect>,
) -> (ClientHandle, Box<dyn EventSource>) {
    let mut builder = ClientBuilder::new(url).config(config).seed(7);
    if let Some(f) = on_connect {
        builder = builder.on_connect(f);
    }
    let (handle, events) = builder.connect().expect("client starts");
    (handle, Box::new(events))
}

client_scenario_tests!(start);
