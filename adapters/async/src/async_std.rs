//! Helpers for async-std: connect with async-std's TCP and spawn the driver on its
//! executor.
//!
//! async-std is discontinued upstream (its authors point to smol); this support is kept
//! for existing async-std programs and is deprecated: prefer `heartline_async::smol` for new code.

use std::future::Future;
use std::io;
use std::pin::Pin;

use crate::{BuildError, ClientBuilder, ClientEvents, ClientHandle, Connector};

/// Connects with [`async_std::net::TcpStream`], with `TCP_NODELAY` set.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdConnector;

impl Connector for AsyncStdConnector {
    type Stream = async_std::net::TcpStream;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(async move {
            let stream = async_std::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

/// Builds the client and spawns its driver with [`async_std::task::spawn`]. The driver
/// runs until the client is closed for good.
///
/// Deprecated upstream: async-std is discontinued; prefer `heartline_async::smol::connect`.
pub fn connect(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError> {
    let (handle, events, driver) = builder.build_with(AsyncStdConnector)?;
    // Dropping async-std's join handle detaches the task.
    drop(async_std::task::spawn(driver.run()));
    Ok((handle, events))
}
