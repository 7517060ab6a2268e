//! Helpers for smol: spawn the client's driver on smol's executor.

use crate::{BuildError, ClientBuilder, ClientEvents, ClientHandle};

/// Builds the client and spawns its driver with [`smol::spawn`]. The driver runs on
/// smol's global executor until the client is closed for good.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_lite::StreamExt;
/// use heartline_async::{ClientBuilder, ClientEvent};
///
/// smol::block_on(async {
///     let (client, mut events) = heartline_async::smol::connect(ClientBuilder::new("ws://127.0.0.1:9001"))?;
///     client.send_text("hello")?;
///     while let Some(event) = events.next().await {
///         if let ClientEvent::Text(text) = event {
///             println!("{text}");
///         }
///     }
///     Ok(())
/// })
/// # }
/// ```
pub fn connect(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError> {
    let (handle, events, driver) = crate::build(builder)?;
    smol::spawn(driver.run()).detach();
    Ok((handle, events))
}

/// Like [`connect`], with an event handler called on the driver's task instead of an
/// event stream (see [`build_with_handler`](crate::build_with_handler)): what the handler sends goes
/// out in the same turn, with no task switch.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use heartline_async::{ClientBuilder, ClientEvent};
///
/// // An echo client: every text that arrives goes back at once.
/// let client = heartline_async::smol::connect_with_handler(
///     ClientBuilder::new("ws://127.0.0.1:9001"),
///     |event, responder| {
///         if let ClientEvent::Text(text) = event {
///             let _ = responder.send_text(text.as_str());
///         }
///     },
/// )?;
/// client.send_text("hello")?;
/// # Ok(())
/// # }
/// ```
pub fn connect_with_handler<F>(
    builder: ClientBuilder,
    handler: F,
) -> Result<ClientHandle, BuildError>
where
    F: FnMut(crate::ClientEvent, &crate::Responder<'_>) + Send + 'static,
{
    let (handle, driver) = crate::build_handler(builder, handler)?;
    smol::spawn(driver.run()).detach();
    Ok(handle)
}
