//! `wss://`: the stream that is plain TCP or TLS over it (rustls, behind the `rustls`
//! feature).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use heartline_tungstenite::client::{Endpoint, Prepared};
#[cfg(feature = "rustls")]
use heartline_tungstenite::tls::server_name;
#[cfg(not(feature = "rustls"))]
use heartline_tungstenite::tls::tls_unavailable;

/// A connection stream: plain, or TLS over TCP for `wss://`.
#[derive(Debug)]
pub enum MaybeTls {
    /// Plain `ws://`.
    Plain(TcpStream),
    /// `wss://` with rustls.
    #[cfg(feature = "rustls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl MaybeTls {
    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            #[cfg(feature = "rustls")]
            MaybeTls::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for MaybeTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            #[cfg(feature = "rustls")]
            MaybeTls::Tls(s) => s.read(buf),
        }
    }
}

impl Write for MaybeTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            #[cfg(feature = "rustls")]
            MaybeTls::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            #[cfg(feature = "rustls")]
            MaybeTls::Tls(s) => s.flush(),
        }
    }
}

/// `stream` as is for `ws://`, or wrapped in TLS for `wss://` (the TLS handshake runs
/// with the WebSocket handshake, under the same timeouts).
pub(crate) fn wrap(
    stream: TcpStream,
    endpoint: &Endpoint,
    prepared: &Prepared,
) -> Result<MaybeTls, String> {
    if !endpoint.tls {
        return Ok(MaybeTls::Plain(stream));
    }
    #[cfg(feature = "rustls")]
    {
        let name = server_name(&endpoint.host)?;
        let conn = rustls::ClientConnection::new(prepared.tls.config()?, name)
            .map_err(|e| format!("TLS setup for {}: {e}", endpoint.host))?;
        Ok(MaybeTls::Tls(Box::new(rustls::StreamOwned::new(
            conn, stream,
        ))))
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = prepared;
        Err(tls_unavailable(&endpoint.host, "heartline-blocking"))
    }
}
