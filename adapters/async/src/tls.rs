//! `wss://`: the stream that is plain TCP or TLS over it, and the TLS setup (rustls,
//! behind the `rustls` feature).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

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
    inner: futures_rustls::TlsConnector,
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
        Ok(TlsConnector {
            inner: futures_rustls::TlsConnector::from(config),
        })
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
    /// `stream` as is for `ws://`, or after a TLS handshake with `host` for `wss://`.
    pub(crate) async fn wrap<S>(
        &self,
        stream: S,
        tls: bool,
        host: &str,
    ) -> Result<MaybeTls<S>, String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if !tls {
            return Ok(MaybeTls::Plain(stream));
        }
        #[cfg(feature = "rustls")]
        {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
            let stream = self
                .inner
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
            Ok(MaybeTls::Tls(Box::new(stream)))
        }
        #[cfg(not(feature = "rustls"))]
        {
            Err(format!(
                "wss://{host} needs TLS: enable the `rustls` feature of heartline-async"
            ))
        }
    }
}
