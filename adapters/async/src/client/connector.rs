//! How a connection attempt gets its byte stream: the [`Connector`] trait and the
//! default TCP connector on async-io.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

/// Opens the TCP (or other byte) stream for a connection attempt; TLS and the WebSocket
/// handshake happen on top. Implement it to run the client over any futures-io stream.
pub trait Connector: Send + Sync + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `host:port`. The driver bounds the whole attempt by the core's
    /// connect timeout, so this need not time out by itself.
    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>>;
}

/// The default connector: a [`TcpStream`](crate::TcpStream) registered with the
/// async-io reactor (the one smol and async-std share), with `TCP_NODELAY` set. Host
/// names are resolved on a short-lived thread so resolution never blocks the executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = crate::TcpStream;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(async move {
            let addrs = resolve(host, port).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
            for addr in addrs {
                match Async::<TcpStream>::connect(addr).await {
                    Ok(stream) => {
                        stream.get_ref().set_nodelay(true)?;
                        return Ok(crate::TcpStream::new(stream));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

/// Resolves `host`; an IP literal needs no lookup, a name is looked up on a thread.
async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    let (tx, rx) = async_channel::bounded(1);
    heartline_tungstenite::resolve::resolve(&host, port, move |result| {
        let _ = tx.try_send(result);
    })?;
    rx.recv()
        .await
        .map_err(|_| io::Error::other("name resolution thread ended without an answer"))?
}
