//! The client on tokio: tokio's `TcpStream`, reactor and timer wheel, the driver
//! spawned with `tokio::spawn`. Nothing of smol or async-io is involved (build with
//! `default-features = false, features = ["tokio"]`).
//!
//! Call these within a tokio runtime with IO and time enabled (what `#[tokio::main]`
//! starts).

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::client::connect_first;
#[cfg(feature = "tokio-rustls")]
use crate::client::Secured;
use crate::runtime::Tokio;
use crate::{BuildError, ClientBuilder, ClientEvent, ClientEvents, ClientHandle, Connector};
use crate::{Driver, Responder};
#[cfg(feature = "tokio-rustls")]
use heartline_tungstenite::client::{Endpoint, Prepared};

/// The tokio connector: a `tokio::net::TcpStream` with `TCP_NODELAY` set, seen through
/// tokio-util's futures-io compatibility layer (async-tungstenite speaks futures-io).
/// Host names are resolved on a short-lived thread, as by the async-io connector.
/// `wss://` is rustls through tokio-rustls on the `TcpStream` (feature `tokio-rustls`),
/// or through futures-rustls over the compat layer with feature `rustls` alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = Compat<tokio::net::TcpStream>;
    type Runtime = Tokio;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(connect_first(host, port, |addr| async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream.compat())
        }))
    }

    /// With feature `tokio-rustls`, TLS through tokio-rustls on the `TcpStream` itself
    /// (beneath the compat layer); without it, the default (futures-rustls, feature
    /// `rustls`).
    #[cfg(feature = "tokio-rustls")]
    fn secure<'a>(
        &'a self,
        stream: Self::Stream,
        endpoint: &'a Endpoint,
        prepared: &'a Prepared,
    ) -> Secured<'a, Self::Stream> {
        Box::pin(crate::tls::handshake_tokio(
            stream.into_inner(),
            endpoint,
            prepared,
        ))
    }
}

/// Builds the client on tokio: a handle, the event stream, and the driver future to
/// spawn (or await) on a tokio runtime.
pub fn build(
    builder: ClientBuilder,
) -> Result<(ClientHandle, ClientEvents, Driver<TcpConnector>), BuildError> {
    crate::build_with(builder, TcpConnector)
}

/// Builds the client and spawns its driver on the tokio runtime this is called within
/// ([`BuildError::Spawn`] outside one). The driver runs until the client is closed for
/// good.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_lite::StreamExt;
/// use heartline_async::{ClientBuilder, ClientEvent};
///
/// let (client, mut events) =
///     heartline_async::tokio::connect(ClientBuilder::new("ws://127.0.0.1:9001"))?;
/// client.send_text("hello")?;
/// while let Some(event) = events.next().await {
///     if let ClientEvent::Text(text) = event {
///         println!("{text}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub fn connect(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError> {
    let runtime = current()?;
    let (handle, events, driver) = build(builder)?;
    drop(runtime.spawn(driver.run()));
    Ok((handle, events))
}

/// The tokio runtime this is called within; outside one, [`BuildError::Spawn`] instead
/// of `tokio::spawn`'s panic.
fn current() -> Result<tokio::runtime::Handle, BuildError> {
    tokio::runtime::Handle::try_current().map_err(|e| BuildError::Spawn(io::Error::other(e)))
}

/// Like [`connect`], with an event handler called on the driver's task instead of an
/// event stream (see [`build_with_handler`](crate::build_with_handler)): what the
/// handler sends goes out in the same turn, with no task switch.
pub fn connect_with_handler<F>(
    builder: ClientBuilder,
    handler: F,
) -> Result<ClientHandle, BuildError>
where
    F: FnMut(ClientEvent, &Responder<'_>) + Send + 'static,
{
    let runtime = current()?;
    let (handle, driver) = crate::build_with_handler(builder, TcpConnector, handler)?;
    drop(runtime.spawn(driver.run()));
    Ok(handle)
}
