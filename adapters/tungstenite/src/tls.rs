//! The TLS setup both clients share for `wss://`: the roots and configuration a
//! builder gathers (rustls with the ring provider and the web PKI roots, behind the
//! `rustls` feature), the server name to check, and the error for `wss://` without
//! TLS. The TLS streams themselves belong to each adapter.

/// TLS choices gathered by a builder.
#[derive(Debug, Default)]
pub struct TlsSettings {
    /// Extra trusted roots, DER.
    #[cfg(feature = "rustls")]
    pub extra_roots: Vec<Vec<u8>>,
    /// A complete configuration that replaces the default.
    #[cfg(feature = "rustls")]
    pub config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

#[cfg(feature = "rustls")]
impl TlsSettings {
    /// Checks the extra roots (a certificate that does not parse is an error when the
    /// client is built, not on every attempt) and defers building the configuration to
    /// the first `wss://` attempt: a `ws://` client never pays for a root store.
    pub fn check(self) -> Result<TlsSource, String> {
        let mut scratch = rustls::RootCertStore::empty();
        for der in &self.extra_roots {
            scratch
                .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
                .map_err(|e| format!("TLS root certificate: {e}"))?;
        }
        Ok(TlsSource {
            settings: self,
            built: std::sync::OnceLock::new(),
        })
    }
}

/// The TLS configuration of one client, built when first needed.
#[cfg(feature = "rustls")]
#[derive(Debug)]
pub struct TlsSource {
    settings: TlsSettings,
    built: std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>>,
}

#[cfg(feature = "rustls")]
impl TlsSource {
    /// The configuration: the one given; or the web PKI roots with the ring provider,
    /// shared by every client of the process that adds no roots of its own; or those
    /// roots plus the client's extra ones.
    pub fn config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
        static WEB_ROOTS: std::sync::OnceLock<
            Result<std::sync::Arc<rustls::ClientConfig>, String>,
        > = std::sync::OnceLock::new();
        if let Some(config) = &self.settings.config {
            return Ok(std::sync::Arc::clone(config));
        }
        let cell = if self.settings.extra_roots.is_empty() {
            &WEB_ROOTS
        } else {
            &self.built
        };
        cell.get_or_init(|| build_config(&self.settings.extra_roots))
            .clone()
    }
}

/// Web PKI roots plus `extra_roots`, with the ring provider.
#[cfg(feature = "rustls")]
fn build_config(extra_roots: &[Vec<u8>]) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for der in extra_roots {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| format!("TLS root certificate: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// The server name to check the certificate against.
#[cfg(feature = "rustls")]
pub fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("TLS server name {host:?}: {e}"))
}

/// What a `wss://` URL says without the `rustls` feature.
pub fn tls_unavailable(host: &str, krate: &str) -> String {
    format!("wss://{host} needs TLS: enable the `rustls` feature of {krate}")
}
