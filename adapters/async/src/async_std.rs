//! Helpers for async-std: spawn the client's driver on its executor.
//!
//! async-std is discontinued upstream (its authors point to smol); this support is kept
//! for existing async-std programs and is deprecated: prefer `heartline_async::smol` for new code.

use crate::{BuildError, ClientBuilder, ClientEvents, ClientHandle};

/// Builds the client and spawns its driver with [`async_std::task::spawn`]. The driver
/// runs until the client is closed for good.
///
/// Deprecated upstream: async-std is discontinued; prefer `heartline_async::smol::connect`.
pub fn connect(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError> {
    let (handle, events, driver) = crate::build(builder)?;
    // Dropping async-std's join handle detaches the task.
    drop(async_std::task::spawn(driver.run()));
    Ok((handle, events))
}

/// Like [`connect`], with an event handler called on the driver's task instead of an
/// event stream (see [`build_with_handler`](crate::build_with_handler)).
pub fn connect_with_handler<F>(
    builder: ClientBuilder,
    handler: F,
) -> Result<ClientHandle, BuildError>
where
    F: FnMut(crate::ClientEvent, &crate::Responder<'_>) + Send + 'static,
{
    let (handle, driver) = crate::build_handler(builder, handler)?;
    // Dropping async-std's join handle detaches the task.
    drop(async_std::task::spawn(driver.run()));
    Ok(handle)
}
