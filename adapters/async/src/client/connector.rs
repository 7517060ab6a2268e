//! How a connection attempt gets its byte stream: the [`Connector`] trait and the
//! default TCP connector on async-io (tokio's is [`crate::tokio::TcpConnector`]).

use std::future::Future;
use std::io;
#[cfg(any(feature = "async-io", feature = "tokio"))]
use std::net::SocketAddr;
use std::pin::Pin;

use futures_lite::{AsyncRead, AsyncWrite};
use heartline_tungstenite::client::{Endpoint, Prepared};

use crate::runtime::Runtime;
use crate::tls::{self, MaybeTls};

/// What [`Connector::secure`] gives: the stream under TLS, or why not.
pub type Secured<'a, S> = Pin<Box<dyn Future<Output = Result<MaybeTls<S>, String>> + Send + 'a>>;

/// Opens the TCP (or other byte) stream for a connection attempt; TLS and the WebSocket
/// handshake happen on top. Implement it to run the client over any futures-io stream.
pub trait Connector: Send + Sync + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The runtime whose reactor drives the stream; its timer also times the driver.
    type Runtime: Runtime;

    /// Connects to `host:port`. The driver bounds the whole attempt by the core's
    /// connect timeout, so this need not time out by itself.
    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>>;

    /// The stream after a TLS handshake for `wss://`: rustls through futures-rustls
    /// (feature `rustls`), or an error without that feature. The tokio connector does
    /// TLS on tokio's own stream instead (feature `tokio-rustls`).
    #[doc(hidden)]
    fn secure<'a>(
        &'a self,
        stream: Self::Stream,
        endpoint: &'a Endpoint,
        prepared: &'a Prepared,
    ) -> Secured<'a, Self::Stream> {
        Box::pin(tls::handshake(stream, endpoint, prepared))
    }
}

/// The default connector: a [`TcpStream`](crate::TcpStream) registered with the
/// async-io reactor (the one smol and async-std share), with `TCP_NODELAY` set. Host
/// names are resolved on a short-lived thread so resolution never blocks the executor.
#[cfg(feature = "async-io")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

#[cfg(feature = "async-io")]
impl Connector for TcpConnector {
    type Stream = crate::TcpStream;
    type Runtime = crate::runtime::AsyncIo;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(connect_first(host, port, |addr| async move {
            let stream = async_io::Async::<std::net::TcpStream>::connect(addr).await?;
            stream.get_ref().set_nodelay(true)?;
            Ok(crate::TcpStream::new(stream))
        }))
    }
}

/// Resolves `host` and connects to the first of its addresses that accepts, with
/// `connect` (a runtime's TCP connect); the last error if none does.
#[cfg(any(feature = "async-io", feature = "tokio"))]
pub(crate) async fn connect_first<S, F, C>(host: String, port: u16, connect: C) -> io::Result<S>
where
    C: Fn(SocketAddr) -> F,
    F: Future<Output = io::Result<S>>,
{
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for addr in resolve(host, port).await? {
        match connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Resolves `host`; an IP literal needs no lookup, a name is looked up on a thread
/// (on every runtime: the answer comes back on a runtime-free channel).
#[cfg(any(feature = "async-io", feature = "tokio"))]
async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    let (tx, rx) = async_channel::bounded(1);
    heartline_tungstenite::resolve::resolve(&host, port, move |result| {
        let _ = tx.try_send(result);
    })?;
    rx.recv()
        .await
        .map_err(|_| io::Error::other("name resolution thread ended without an answer"))?
}
