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
    let (handle, events, driver) = builder.build()?;
    smol::spawn(driver.run()).detach();
    Ok((handle, events))
}
