//! Helpers for smol: connect with smol's TCP and spawn the driver on smol's executor.

use std::future::Future;
use std::io;
use std::pin::Pin;

use crate::{BuildError, ClientBuilder, ClientEvents, ClientHandle, Connector};

/// Connects with [`smol::net::TcpStream`] (name resolution on smol's blocking pool),
/// with `TCP_NODELAY` set.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolConnector;

impl Connector for SmolConnector {
    type Stream = smol::net::TcpStream;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(async move {
            let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

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
    let (handle, events, driver) = builder.build_with(SmolConnector)?;
    smol::spawn(driver.run()).detach();
    Ok((handle, events))
}
