//! The async client as the shared client scenarios drive it: its event stream read
//! through [`EventSource`], and a [`Start`](super::client_scenarios::Start) for each
//! runtime. The driver runs on the runtime's own threads, so a scenario may wait on the
//! test thread.

use std::time::Instant;

use futures_lite::{future, StreamExt};
use heartline_async::{BuildError, ClientBuilder, ClientEvents, ClientHandle};

use super::client_scenarios::{EventSource, Next, Setup, Started};

/// The async events, read until a deadline.
struct Events(ClientEvents);

impl EventSource for Events {
    fn next_before(&mut self, deadline: Instant) -> Next {
        future::block_on(future::or(
            async {
                match self.0.next().await {
                    Some(event) => Next::Event(event),
                    None => Next::Ended,
                }
            },
            async {
                async_io::Timer::at(deadline).await;
                Next::TimedOut
            },
        ))
    }
}

/// A [`Start`] on smol.
pub fn smol(url: &str, setup: Setup) -> Started {
    start_with(heartline_async::smol::connect, url, setup)
}

/// A [`Start`] on tokio (the test binary's runtime, [`super::tokio_runtime`]).
pub fn tokio(url: &str, setup: Setup) -> Started {
    let _entered = super::tokio_runtime().enter();
    start_with(heartline_async::tokio::connect, url, setup)
}

/// A [`Start`] on async-std.
pub fn async_std(url: &str, setup: Setup) -> Started {
    start_with(heartline_async::async_std::connect, url, setup)
}

/// A handler's events, forwarded over a channel; the channel ends when the driver
/// drops the handler, after the last event.
struct Handled(std::sync::mpsc::Receiver<heartline_async::ClientEvent>);

impl EventSource for Handled {
    fn next_before(&mut self, deadline: Instant) -> Next {
        use std::sync::mpsc::RecvTimeoutError;
        match self
            .0
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(event) => Next::Event(event),
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
            Err(RecvTimeoutError::Timeout) => Next::TimedOut,
        }
    }
}

/// A [`Start`] on smol with an event handler instead of the event stream.
pub fn smol_handler(url: &str, setup: Setup) -> Started {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = heartline_async::smol::connect_with_handler(setup.builder(url), move |e, _| {
        let _ = tx.send(e);
    })
    .expect("client starts");
    (handle, Box::new(Handled(rx)))
}

/// Starts a client with `connect` (a runtime's helper).
fn start_with(
    connect: fn(ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError>,
    url: &str,
    setup: Setup,
) -> Started {
    let (handle, events) = connect(setup.builder(url)).expect("client starts");
    (handle, Box::new(Events(events)))
}
