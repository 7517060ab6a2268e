//! What the blocking and the async client share: the handle, the events, the attempt
//! target, the builder's options, and the core shared by the handles and the driver,
//! with the core's actions turned into tungstenite messages (through [`crate::wire`]).
//!
//! The adapters re-export the application's items ([`ClientBuilder`],
//! [`ClientHandle`], [`ClientEvent`], [`ConnectTarget`], [`BuildError`], [`BoxError`]
//! and the `DEFAULT_*` constants); the rest ([`Options`], [`Prepared`], [`SharedCore`],
//! [`Step`], [`AttemptError`]) is what a driver is built from.

mod builder;
mod handle;
#[cfg(feature = "sink")]
mod sink;
mod target;

pub use builder::ClientBuilder;
pub use handle::{handle_due, ClientEvent, ClientHandle, SharedCore};
pub use target::{AttemptError, BoxError, ConnectTarget, Endpoint, TargetFn};

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use heartline_core::{Action, Client, ClientConfig, ConfigError, ConnId, HeartbeatKind};
use tungstenite::http::Request;
use tungstenite::protocol::WebSocketConfig;

use crate::{tls, wire};

/// Default read buffer: 4 KiB.
///
/// tungstenite's own default is 128 KiB, zero-filled on every read: an idle connection
/// would cost ~139 KB of memory. 4 KiB holds a typical message in one read; larger ones
/// take several reads.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 4 * 1024;

/// Default write buffer threshold: 4 KiB. The drivers flush after every message, so
/// this only bounds how much tungstenite gathers before writing within one message.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Default largest inbound message: 16 MiB (tungstenite's is 64 MiB). Generous for a
/// WebSocket application, small enough that a hostile peer cannot exhaust memory fast.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The client could not be built or started.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration makes no sense.
    Config(ConfigError),
    /// The URL, a header or the TLS setup cannot form a WebSocket request.
    Request(String),
    /// The driver could not be started: its thread or event poller (blocking client),
    /// or no runtime to spawn it on (`heartline_async::tokio` outside a tokio runtime).
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::Request(e) => f.write_str(e),
            BuildError::Spawn(e) => write!(f, "cannot start the client's driver: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::Request(_) => None,
        }
    }
}

/// The options every client builder gathers.
pub struct Options {
    /// The target when no callback is set.
    pub target: ConnectTarget,
    /// The core's configuration.
    pub config: ClientConfig,
    /// The jitter seed; random when `None`.
    pub seed: Option<u64>,
    /// tungstenite's configuration.
    pub ws_config: WebSocketConfig,
    /// The per-attempt callback.
    pub on_connect: Option<Arc<TargetFn>>,
    /// TLS choices.
    pub tls: tls::TlsSettings,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("seed", &self.seed)
            .field("ws_config", &self.ws_config)
            .field("on_connect", &self.on_connect.is_some())
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            target: ConnectTarget::new(url),
            config: ClientConfig::default(),
            seed: None,
            ws_config: WebSocketConfig::default()
                .read_buffer_size(DEFAULT_READ_BUFFER_SIZE)
                .write_buffer_size(DEFAULT_WRITE_BUFFER_SIZE)
                .max_message_size(Some(DEFAULT_MAX_MESSAGE_SIZE))
                .max_frame_size(Some(DEFAULT_MAX_MESSAGE_SIZE)),
            on_connect: None,
            tls: tls::TlsSettings::default(),
        }
    }

    /// Checks the options and builds the core and the handle: what a driver starts
    /// from. `wake` is called after a handle changed the core.
    pub fn prepare(
        self,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<(ClientHandle, Prepared), BuildError> {
        if self.on_connect.is_none() {
            self.target.resolve().map_err(BuildError::Request)?;
        }
        let heartbeat = match &self.config.heartbeat.kind {
            HeartbeatKind::App(app) => Some(wire::to_message(app.message.clone())),
            _ => None,
        };
        #[cfg(feature = "rustls")]
        let tls = self.tls.check().map_err(BuildError::Request)?;
        let seed = self.seed.unwrap_or_else(random_seed);
        let core = Client::new(self.config, seed, Instant::now()).map_err(BuildError::Config)?;
        let shared = Arc::new(SharedCore {
            core: Mutex::new(core),
            wake: Box::new(wake),
            handles: AtomicUsize::new(1),
            finished: AtomicBool::new(false),
        });
        let prepared = Prepared {
            core: Arc::clone(&shared),
            target: self.target,
            on_connect: self.on_connect,
            ws_config: self.ws_config,
            heartbeat,
            #[cfg(feature = "rustls")]
            tls,
        };
        Ok((ClientHandle { shared }, prepared))
    }
}

/// What a driver needs, checked and converted once.
pub struct Prepared {
    /// The core, shared with the handles.
    pub core: Arc<SharedCore>,
    /// The target when no callback is set.
    pub target: ConnectTarget,
    /// The per-attempt callback.
    pub on_connect: Option<Arc<TargetFn>>,
    /// tungstenite's configuration.
    pub ws_config: WebSocketConfig,
    /// The application heartbeat message, converted once.
    pub heartbeat: Option<tungstenite::Message>,
    /// The TLS configuration for `wss://`.
    #[cfg(feature = "rustls")]
    pub tls: tls::TlsSource,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("target", &self.target)
            .field("ws_config", &self.ws_config)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// The request and endpoint for attempt `number` (asking the callback, if any).
    pub fn target(&self, number: u32) -> Result<(Request<()>, Endpoint), AttemptError> {
        let target = match &self.on_connect {
            Some(f) => {
                // A panicking callback fails this attempt; it must not take the driver
                // (and with it the client) down.
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(number)))
                        .map_err(|_| AttemptError::Io("connect callback panicked".to_owned()))?;
                result.map_err(|e| AttemptError::Io(format!("connect callback: {e}")))?
            }
            None => self.target.clone(),
        };
        target.resolve().map_err(AttemptError::Io)
    }

    /// What to do for one of the core's actions, with messages converted for
    /// tungstenite.
    #[inline]
    pub fn step(&self, action: Action) -> Step {
        let (conn, message) = match action {
            Action::Connect {
                conn,
                attempt,
                deadline,
            } => {
                return Step::Connect {
                    conn,
                    attempt,
                    deadline,
                }
            }
            Action::Abort { conn } => return Step::Abort { conn },
            Action::SendPing { conn, payload } => (conn, wire::ping(&payload)),
            Action::SendHeartbeat { conn } => match &self.heartbeat {
                Some(m) => (conn, m.clone()),
                None => return Step::Nothing,
            },
            Action::Send { conn, message } => (conn, wire::to_message(message)),
            Action::Close { conn, code, reason } => (
                conn,
                tungstenite::Message::Close(Some(wire::close_frame(code, reason))),
            ),
        };
        Step::Write { conn, message }
    }
}

/// An action, ready for a driver to execute.
#[derive(Debug)]
pub enum Step {
    /// Start a connection attempt.
    Connect {
        /// The new connection.
        conn: ConnId,
        /// Reconnect attempt number (0 for the first connection).
        attempt: u32,
        /// When the core gives up on the attempt (it says so with [`Step::Abort`]); a
        /// driver whose connect calls block bounds them by it.
        deadline: Instant,
    },
    /// Drop the connection (or the attempt): the core has moved on, report nothing.
    Abort {
        /// The connection.
        conn: ConnId,
    },
    /// Write and flush this message.
    Write {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: tungstenite::Message,
    },
    /// Nothing to do.
    Nothing,
}

/// A seed for the reconnect jitter that differs between clients and runs.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn building_rejects_a_bad_url_and_a_bad_configuration() {
        let err = Options::new("http://example.com/")
            .prepare(|| {})
            .unwrap_err();
        assert!(matches!(err, BuildError::Request(_)), "{err:?}");
        let mut options = Options::new("ws://example.com/");
        options.config.heartbeat.interval = Duration::ZERO;
        let err = options.prepare(|| {}).unwrap_err();
        assert!(matches!(err, BuildError::Config(_)), "{err:?}");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_root_certificate_that_does_not_parse_fails_the_build() {
        let mut options = Options::new("wss://example.com/");
        options.tls.extra_roots.push(b"not a certificate".to_vec());
        let err = options.prepare(|| {}).unwrap_err();
        assert!(
            matches!(&err, BuildError::Request(e) if e.contains("certificate")),
            "{err:?}"
        );
    }
}
