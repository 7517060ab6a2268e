//! Building a client from a [`ClientBuilder`]: the handle, the events (or an event
//! handler) and the driver future.

use std::sync::{Arc, Mutex};

use heartline_tungstenite::client::{BuildError, ClientBuilder, ClientEvent, ClientHandle};

use super::responder::{Handler, Responder};
#[cfg(feature = "async-io")]
use super::TcpConnector;
use super::{ClientEvents, Connector, Driver};
use crate::handoff::{self, EventReceiver, Nudge};

/// Builds the client from `builder` with the default [`TcpConnector`]: a handle, the
/// event stream, and the driver future, which must be spawned (or awaited) for anything
/// to happen.
#[cfg(feature = "async-io")]
pub fn build(
    builder: ClientBuilder,
) -> Result<(ClientHandle, ClientEvents, Driver<TcpConnector>), BuildError> {
    build_with(builder, TcpConnector)
}

/// Builds the client from `builder` with the default [`TcpConnector`] and an event
/// handler instead of an event stream; see [`build_with_handler`].
#[cfg(feature = "async-io")]
pub fn build_handler<F>(
    builder: ClientBuilder,
    handler: F,
) -> Result<(ClientHandle, Driver<TcpConnector>), BuildError>
where
    F: FnMut(ClientEvent, &Responder<'_>) + Send + 'static,
{
    build_with_handler(builder, TcpConnector, handler)
}

/// Builds the client from `builder` with a custom [`Connector`].
pub fn build_with<C: Connector>(
    builder: ClientBuilder,
    connector: C,
) -> Result<(ClientHandle, ClientEvents, Driver<C>), BuildError> {
    let (handle, events, driver) = build_parts(builder, connector, None)?;
    Ok((handle, ClientEvents { rx: events }, driver))
}

/// Builds the client from `builder` with an event handler instead of an event stream:
/// the driver calls `handler` with every event, in order, on its own task. What the
/// handler sends through its [`Responder`] goes out in the same turn of the driver,
/// with no task switch: the fastest way to answer messages.
///
/// The handler runs between the driver's reads and writes: keep it short and never
/// block in it (hand long work to a task of your own), or heartbeats wait for it. A
/// panic in the handler ends the driver.
pub fn build_with_handler<C, F>(
    builder: ClientBuilder,
    connector: C,
    handler: F,
) -> Result<(ClientHandle, Driver<C>), BuildError>
where
    C: Connector,
    F: FnMut(ClientEvent, &Responder<'_>) + Send + 'static,
{
    let (handle, _, driver) = build_parts(builder, connector, Some(Box::new(handler)))?;
    Ok((handle, driver))
}

fn build_parts<C: Connector>(
    builder: ClientBuilder,
    connector: C,
    handler: Option<Handler>,
) -> Result<(ClientHandle, EventReceiver, Driver<C>), BuildError> {
    let nudge = Arc::new(Nudge::default());
    let handles_nudge = Arc::clone(&nudge);
    let (handle, prepared) = builder
        .into_options()
        .prepare(move || handles_nudge.nudge())?;
    let (events_tx, events_rx) = handoff::events();
    let (events_rx, handler) = match handler {
        // The driver reads its own queue and hands each event to the handler.
        Some(handler) => {
            let (_, unused) = handoff::events();
            (unused, Some(Mutex::new((events_rx, handler))))
        }
        None => (events_rx, None),
    };
    let driver = Driver {
        prepared: Arc::new(prepared),
        nudge,
        events: events_tx,
        handler,
        connector: Arc::new(connector),
    };
    Ok((handle, events_rx, driver))
}
