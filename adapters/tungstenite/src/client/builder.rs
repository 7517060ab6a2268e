//! The one client builder: every option both clients take, checked when the client is
//! built. `heartline-blocking` and `heartline-async` re-export it and add their own way
//! to start the client (`heartline_blocking::connect(builder)`,
//! `heartline_async::smol::connect(builder)`, ...).

use std::sync::Arc;

use heartline_core::ClientConfig;
use tungstenite::protocol::WebSocketConfig;

use super::{BoxError, ConnectTarget, Options};

/// Builds a client: URL, heartline configuration, WebSocket buffer sizes, write
/// timeout, TLS roots and an optional per-attempt callback. A runtime's adapter starts
/// it.
#[derive(Debug)]
pub struct ClientBuilder {
    options: Options,
}

impl ClientBuilder {
    /// A client for `url` (`ws://` or `wss://`) with the default configuration.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            options: Options::new(url),
        }
    }

    /// The options gathered, for a driver to start from ([`Options::prepare`]).
    pub fn into_options(self) -> Options {
        self.options
    }

    /// The heartbeat, reconnect, queue and timeout configuration.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.options.config = config;
        self
    }

    /// Seeds the reconnect jitter, for reproducible runs. Default: a random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Adds a request header sent on every attempt (unless `on_connect` supplies
    /// the headers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.target = self.options.target.header(name, value);
        self
    }

    /// Read buffer size. Default `DEFAULT_READ_BUFFER_SIZE` (4 KiB).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.options.ws_config = self.options.ws_config.read_buffer_size(bytes);
        self
    }

    /// Write buffer threshold. Default `DEFAULT_WRITE_BUFFER_SIZE` (4 KiB).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.options.ws_config = self.options.ws_config.write_buffer_size(bytes);
        self
    }

    /// Largest inbound message; `None` for no limit. Default
    /// `DEFAULT_MAX_MESSAGE_SIZE` (16 MiB). A larger message fails the connection with
    /// Close 1009 (reported as [`Notice::Closed`](heartline_core::Notice::Closed)).
    pub fn max_message_size(mut self, bytes: Option<usize>) -> Self {
        self.options.ws_config = self.options.ws_config.max_message_size(bytes);
        self
    }

    /// Largest inbound frame; `None` for no limit. A message may span several
    /// frames, so this bounds what one frame header can make the client allocate at
    /// once. Default `DEFAULT_MAX_MESSAGE_SIZE` (16 MiB), like the message limit.
    /// Either limit passed fails the connection with Close 1009.
    pub fn max_frame_size(mut self, bytes: Option<usize>) -> Self {
        self.options.ws_config = self.options.ws_config.max_frame_size(bytes);
        self
    }

    /// Replaces the whole tungstenite configuration (buffer sizes, limits).
    pub fn websocket_config(mut self, config: WebSocketConfig) -> Self {
        self.options.ws_config = config;
        self
    }

    /// How long the socket may take nothing before the connection counts as broken
    /// (the peer stopped reading): sets `ClientConfig::write_timeout` (default 5 s)
    /// in the configuration given so far; at least 1 ms.
    pub fn write_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.config.write_timeout = timeout.max(std::time::Duration::from_millis(1));
        self
    }

    /// Calls `f(attempt)` before every connection attempt (0 for the first, `n` for
    /// the n-th reconnect in a row) for the URL and headers to use, for example a
    /// fresh auth token. An error fails that attempt like a connection error (the
    /// core then backs off and retries).
    pub fn on_connect<F>(mut self, f: F) -> Self
    where
        F: Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync + 'static,
    {
        self.options.on_connect = Some(Arc::new(f));
        self
    }

    /// Trusts `der` (a DER-encoded certificate) as a root for `wss://`, on top of
    /// the built-in web roots: for a server with a self-signed or private-CA
    /// certificate.
    #[cfg(feature = "rustls")]
    pub fn tls_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.options.tls.extra_roots.push(der.into());
        self
    }

    /// Uses this rustls configuration for `wss://` instead of the default (web
    /// roots plus any `tls_root_certificate`).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.options.tls.config = Some(config);
        self
    }
}
