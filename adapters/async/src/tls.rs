//! `wss://`: the stream that is plain or TLS over the connector's stream (rustls through
//! futures-rustls, behind the `rustls` feature).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use heartline_tungstenite::client::{Endpoint, Prepared};

/// A connection stream: plain, or TLS over it for `wss://`.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// Plain `ws://`.
    Plain(S),
    /// `wss://` with rustls.
    #[cfg(feature = "rustls")]
    Tls(Box<futures_rustls::client::TlsStream<S>>),
}

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

/// `stream` as is for `ws://`, or after a TLS handshake for `wss://`.
pub(crate) async fn wrap<S>(
    stream: S,
    endpoint: &Endpoint,
    prepared: &Prepared,
) -> Result<MaybeTls<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !endpoint.tls {
        return Ok(MaybeTls::Plain(stream));
    }
    #[cfg(feature = "rustls")]
    {
        let name = heartline_tungstenite::tls::server_name(&endpoint.host)?;
        let connector = futures_rustls::TlsConnector::from(prepared.tls.config()?);
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake with {}: {e}", endpoint.host))?;
        Ok(MaybeTls::Tls(Box::new(stream)))
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = prepared;
        Err(heartline_tungstenite::tls::tls_unavailable(
            &endpoint.host,
            "heartline-async",
        ))
    }
}
