//! `wss://`: the stream that is plain TCP or TLS over it, and the TLS setup (rustls,
//! behind the `rustls` feature).

use std::io::{self, Read, Write};
use std::net::TcpStream;

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

/// TLS choices gathered by the builder.
#[derive(Debug, Default)]
pub(crate) struct TlsSettings {
    /// Extra trusted roots, DER.
    #[cfg(feature = "rustls")]
    pub(crate) extra_roots: Vec<Vec<u8>>,
    /// A complete configuration that replaces the default.
    #[cfg(feature = "rustls")]
    pub(crate) config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Wraps a connected stream in TLS for `wss://`.
pub(crate) struct TlsConnector {
    #[cfg(feature = "rustls")]
    config: std::sync::Arc<rustls::ClientConfig>,
}

impl TlsSettings {
    /// The connector, or why the settings are unusable (a root certificate that does not
    /// parse).
    #[cfg(feature = "rustls")]
    pub(crate) fn into_connector(self) -> Result<TlsConnector, String> {
        let config = match self.config {
            Some(config) => config,
            None => std::sync::Arc::new(default_config(&self.extra_roots)?),
        };
        Ok(TlsConnector { config })
    }

    #[cfg(not(feature = "rustls"))]
    pub(crate) fn into_connector(self) -> Result<TlsConnector, String> {
        Ok(TlsConnector {})
    }
}

/// Web PKI roots plus `extra_roots`, with the ring provider.
#[cfg(feature = "rustls")]
fn default_config(extra_roots: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for der in extra_roots {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| format!("TLS root certificate: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl TlsConnector {
    /// `stream` as is for `ws://`, or wrapped in TLS with `host` for `wss://` (the TLS
    /// handshake runs with the WebSocket handshake, under the same timeouts).
    pub(crate) fn wrap(
        &self,
        stream: TcpStream,
        tls: bool,
        host: &str,
    ) -> Result<MaybeTls, String> {
        if !tls {
            return Ok(MaybeTls::Plain(stream));
        }
        #[cfg(feature = "rustls")]
        {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
            let conn = rustls::ClientConnection::new(std::sync::Arc::clone(&self.config), name)
                .map_err(|e| format!("TLS setup for {host}: {e}"))?;
            Ok(MaybeTls::Tls(Box::new(rustls::StreamOwned::new(
                conn, stream,
            ))))
        }
        #[cfg(not(feature = "rustls"))]
        {
            Err(format!(
                "wss://{host} needs TLS: enable the `rustls` feature of heartline-blocking"
            ))
        }
    }
}
