//! `wss://`: the stream that is plain or TLS over the connector's stream: rustls through
//! futures-rustls (feature `rustls`) on any connector, or through tokio-rustls on
//! tokio's own `TcpStream` (feature `tokio-rustls`, the tokio connector's).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use heartline_tungstenite::client::{Endpoint, Prepared};

/// A connection stream: plain, or TLS over it for `wss://`.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTls<S> {
    /// Plain `ws://`.
    Plain(S),
    /// `wss://` with rustls through futures-rustls.
    #[cfg(feature = "rustls")]
    Tls(Box<futures_rustls::client::TlsStream<S>>),
    /// `wss://` with rustls through tokio-rustls, on tokio's `TcpStream`, seen as a
    /// futures-io stream (the tokio connector's).
    #[cfg(feature = "tokio-rustls")]
    TokioTls(Box<TokioTlsStream>),
}

/// tokio-rustls over tokio's `TcpStream`, seen through tokio-util's compat layer.
#[cfg(feature = "tokio-rustls")]
pub type TokioTlsStream =
    tokio_util::compat::Compat<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTls::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(feature = "rustls")]
            MaybeTls::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            #[cfg(feature = "tokio-rustls")]
            MaybeTls::TokioTls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_close(cx))
    }
}

/// `stream` after a TLS handshake through futures-rustls, for `wss://` (what
/// [`Connector::secure`](crate::Connector::secure) does by default).
pub(crate) async fn handshake<S>(
    stream: S,
    endpoint: &Endpoint,
    prepared: &Prepared,
) -> Result<MaybeTls<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    #[cfg(feature = "rustls")]
    {
        let name = heartline_tungstenite::tls::server_name(&endpoint.host)?;
        let connector = futures_rustls::TlsConnector::from(prepared.tls.config()?);
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|e| handshake_failed(endpoint, e))?;
        Ok(MaybeTls::Tls(Box::new(stream)))
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = (stream, prepared);
        Err(heartline_tungstenite::tls::tls_unavailable(
            &endpoint.host,
            "heartline-async",
        ))
    }
}

/// tokio's `stream` after a TLS handshake through tokio-rustls, for `wss://`, seen as a
/// futures-io stream.
#[cfg(feature = "tokio-rustls")]
pub(crate) async fn handshake_tokio(
    stream: tokio::net::TcpStream,
    endpoint: &Endpoint,
    prepared: &Prepared,
) -> Result<MaybeTls<tokio_util::compat::Compat<tokio::net::TcpStream>>, String> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let name = heartline_tungstenite::tls::server_name(&endpoint.host)?;
    let connector = tokio_rustls::TlsConnector::from(prepared.tls.config()?);
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| handshake_failed(endpoint, e))?;
    Ok(MaybeTls::TokioTls(Box::new(stream.compat())))
}

#[cfg(any(feature = "rustls", feature = "tokio-rustls"))]
fn handshake_failed(endpoint: &Endpoint, e: io::Error) -> String {
    format!("TLS handshake with {}: {e}", endpoint.host)
}
