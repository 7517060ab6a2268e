//! What the blocking and the async client share: the handle, the events, the attempt
//! target, the builder's options, and the core shared by the handles and the driver,
//! with the core's actions turned into tungstenite messages (through [`crate::wire`]).
//!
//! The adapters re-export the application's items ([`ClientHandle`], [`ClientEvent`],
//! [`ConnectTarget`], [`BuildError`], [`BoxError`] and the `DEFAULT_*` constants); the
//! rest ([`Options`], [`Prepared`], [`SharedCore`], [`Step`], [`AttemptError`]) is what
//! a driver is built from.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use heartline_core::{
    close_code, Action, Client, ClientConfig, CloseError, ConfigError, ConnId, ConnectError,
    Disposition, Event, HeartbeatKind, Message, Notice, ReadyState, SendError,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Utf8Bytes};

use crate::{tls, wire, Wait};

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

/// An error a connect callback may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where one connection attempt goes: the URL and extra request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTarget {
    /// A `ws://` or `wss://` URL.
    pub url: String,
    /// Extra request headers (`Authorization`, `Cookie`, ...), in order.
    pub headers: Vec<(String, String)>,
}

impl ConnectTarget {
    /// A target with no extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectTarget {
            url: url.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The handshake request and where to connect, or why they cannot be formed.
    pub fn resolve(&self) -> Result<(Request<()>, Endpoint), String> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad URL {:?}: {e}", self.url))?;
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("bad header name {name:?}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|_| format!("bad value for header {name}"))?;
            request.headers_mut().append(name, value);
        }
        let uri = request.uri();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(format!("not a ws:// or wss:// URL: {uri}")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("no host in {uri}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok((request, Endpoint { host, port, tls }))
    }
}

/// Where a connection attempt connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the URL is `wss://`.
    pub tls: bool,
}

/// A per-attempt callback: attempt number in, target out.
pub type TargetFn = dyn Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync;

/// The client could not be built or started.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration makes no sense.
    Config(ConfigError),
    /// The URL, a header or the TLS setup cannot form a WebSocket request.
    Request(String),
    /// The driver thread or its event poller could not be started (blocking client).
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

impl std::error::Error for BuildError {}

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
                .max_message_size(Some(DEFAULT_MAX_MESSAGE_SIZE)),
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

/// The core, shared by the handles and the driver.
pub struct SharedCore {
    core: Mutex<Client>,
    /// Tells the driver a handle changed the core.
    wake: Box<dyn Fn() + Send + Sync>,
    /// Live handles; when the last goes, the client closes.
    handles: AtomicUsize,
    /// The driver has ended (only changed and read with `core` locked).
    finished: AtomicBool,
}

impl fmt::Debug for SharedCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCore")
            .field("core", &self.core)
            .field("handles", &self.handles)
            .finish_non_exhaustive()
    }
}

impl SharedCore {
    /// Locks the core. Never held across IO or an `await`.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, Client> {
        // Every method of the core leaves it valid, even one a panic interrupted.
        crate::lock(&self.core)
    }

    /// How the driver waits next: until the core's deadline, or not at all once the
    /// driver is done (the client is closed for good and, `idle`, the driver holds no
    /// connection). From then on [`ClientHandle::reconnect_now`] does nothing: nobody
    /// would carry it out.
    pub fn wait(&self, idle: bool) -> Wait {
        self.wait_locked(&self.lock(), idle)
    }

    fn wait_locked(&self, core: &Client, idle: bool) -> Wait {
        if idle && core.is_closed() {
            self.finished.store(true, Ordering::Relaxed);
            return Wait::Stop;
        }
        core.poll_timeout().map_or(Wait::Forever, Wait::Until)
    }

    /// Feeds an inbound message to the core; the notices it caused go to `notify`
    /// first, then the message itself if it is the application's.
    pub fn feed(
        &self,
        conn: ConnId,
        message: tungstenite::Message,
        mut notify: impl FnMut(ClientEvent),
    ) {
        let mut core = self.lock();
        let delivered = feed_locked(&mut core, Instant::now(), conn, message, &mut notify);
        drop(core);
        if let Some(event) = delivered {
            notify(event);
        }
    }

    /// Feeds several inbound messages at once, under one lock: what a driver read in
    /// one go at `now`. `events` gets, in order, each message's notices and then the
    /// message itself if it is the application's; the caller passes them on after the
    /// core is unlocked again.
    pub fn feed_all(
        &self,
        conn: ConnId,
        now: Instant,
        messages: impl IntoIterator<Item = tungstenite::Message>,
        events: &mut VecDeque<ClientEvent>,
    ) {
        let mut core = self.lock();
        for message in messages {
            let mut push = |event| events.push_back(event);
            if let Some(event) = feed_locked(&mut core, now, conn, message, &mut push) {
                events.push_back(event);
            }
        }
    }

    /// Passes on the notices the core has, and nothing else.
    pub fn pass_notices(&self, notify: impl FnMut(ClientEvent)) {
        drain(&mut self.lock(), notify);
    }

    /// After a write to `conn` failed: hands the core back the messages among the taken
    /// `actions` that will now not be written ([`Client::give_back`]).
    pub fn give_back(&self, conn: ConnId, actions: &mut VecDeque<Action>) {
        self.lock().give_back(conn, actions);
    }

    /// Feeds a non-frame event (connected, failed, disconnected); returns the core's
    /// answer, after passing on the notices it caused.
    pub fn event(&self, event: Event<'_>, notify: impl FnMut(ClientEvent)) -> Disposition {
        let mut core = self.lock();
        let disposition = core.handle_event(Instant::now(), event);
        drain(&mut core, notify);
        disposition
    }

    /// The next action, after passing on pending notices.
    pub fn next_action(&self, notify: impl FnMut(ClientEvent)) -> Option<Action> {
        let mut core = self.lock();
        drain(&mut core, notify);
        core.poll_action()
    }

    /// Handles the deadlines due by `now` (if given), then moves every pending action
    /// into `actions` under one lock, after passing on pending notices. When there was
    /// none, also answers [`SharedCore::wait`] for a driver that is `idle` (holds no
    /// connection), in the same lock: `None` means actions were taken.
    pub fn take_actions(
        &self,
        now: Option<Instant>,
        idle: bool,
        actions: &mut VecDeque<Action>,
        notify: impl FnMut(ClientEvent),
    ) -> Option<Wait> {
        let mut core = self.lock();
        if let Some(now) = now {
            core.handle_timeout(now);
        }
        drain(&mut core, notify);
        core.take_actions(actions);
        if !actions.is_empty() {
            return None;
        }
        Some(self.wait_locked(&core, idle))
    }
}

/// Feeds one inbound message to the locked core at `now`; its notices go to `notify`,
/// and the message comes back as an event if the application should see it.
fn feed_locked(
    core: &mut Client,
    now: Instant,
    conn: ConnId,
    message: tungstenite::Message,
    notify: impl FnMut(ClientEvent),
) -> Option<ClientEvent> {
    let frame = wire::as_frame(&message)?;
    let disposition = core.handle_event(now, Event::Frame(conn, frame));
    drain(core, notify);
    if disposition != Disposition::Deliver {
        return None;
    }
    match message {
        tungstenite::Message::Text(t) => Some(ClientEvent::Text(t)),
        tungstenite::Message::Binary(b) => Some(ClientEvent::Binary(b)),
        _ => None,
    }
}

fn drain(core: &mut Client, mut notify: impl FnMut(ClientEvent)) {
    while let Some(notice) = core.poll_notice() {
        notify(ClientEvent::Notice(notice));
    }
}

/// Sends, closes and inspects the client from any thread or task. Cheap to clone.
///
/// When the last handle is dropped the client closes (code 1000) and the events end
/// once the close completes.
#[derive(Debug)]
pub struct ClientHandle {
    shared: Arc<SharedCore>,
}

impl Clone for ClientHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        ClientHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self
                .shared
                .lock()
                .close(Instant::now(), close_code::NORMAL, "");
            (self.shared.wake)();
        }
    }
}

impl ClientHandle {
    /// Sends a message: at once if the connection is open, otherwise queued (within the
    /// configured bounds) until it opens. A message that cannot be taken comes back in
    /// the error. The driver is woken and writes it right away.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        // Sending depends on no deadline: the driver keeps the core's clock.
        let result = self.shared.lock().send_untimed(message.into());
        if result.is_ok() {
            (self.shared.wake)();
        }
        result
    }

    /// Sends a text message (see [`ClientHandle::send`]).
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message (see [`ClientHandle::send`]).
    pub fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send(Message::Binary(data.into()))
    }

    /// Closes for good with `code` and `reason`: no reconnect afterwards. The events end
    /// once the close handshake completes (or times out).
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        let result = self.shared.lock().close(Instant::now(), code, reason);
        (self.shared.wake)();
        result
    }

    /// Reconnects at once: skips a pending backoff wait, or closes and reopens an open
    /// connection. After the client gave up (or was closed) and its events ended, it
    /// does nothing: build a new client to start over.
    pub fn reconnect_now(&self) {
        {
            let mut core = self.shared.lock();
            if self.shared.finished.load(Ordering::Relaxed) {
                return;
            }
            core.reconnect_now(Instant::now());
        }
        (self.shared.wake)();
    }

    /// The browser-like ready state.
    pub fn state(&self) -> ReadyState {
        self.shared.lock().state()
    }

    /// Payload bytes accepted by [`ClientHandle::send`] and not yet handed to the
    /// socket, like the browser's `bufferedAmount`.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().buffered_amount()
    }

    /// The last measured heartbeat round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.lock().rtt()
    }
}

/// What the application hears from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A lifecycle notice from the core (open, closed, heartbeat missed, reconnect
    /// scheduled, gave up, ...).
    Notice(Notice),
    /// A text message from the server (heartbeat replies are not delivered).
    Text(Utf8Bytes),
    /// A binary message from the server.
    Binary(Bytes),
}

/// Why an attempt failed, owned (the core takes a borrowed [`ConnectError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// The server answered the upgrade with this status.
    Http {
        /// The status.
        status: u16,
        /// The `Retry-After` delay, if sent in seconds.
        retry_after: Option<Duration>,
    },
    /// Anything else, described.
    Io(String),
}

impl AttemptError {
    /// As the core's event takes it.
    pub fn as_error(&self) -> ConnectError<'_> {
        match self {
            AttemptError::Http {
                status,
                retry_after,
            } => ConnectError::Http {
                status: *status,
                retry_after: *retry_after,
            },
            AttemptError::Io(e) => ConnectError::Io(e),
        }
    }
}

impl From<tungstenite::Error> for AttemptError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => AttemptError::Http {
                status: response.status().as_u16(),
                retry_after: retry_after(&response),
            },
            other => AttemptError::Io(other.to_string()),
        }
    }
}

/// The `Retry-After` header as a delay: seconds, or an HTTP date (the time left until
/// it, nothing if it has passed). Nonsense is ignored: the core's own backoff applies.
fn retry_after<T>(response: &Response<T>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The builder methods both clients share, generated into each `ClientBuilder` (which
/// holds an [`Options`] in a field named `options`). The TLS methods exist when the
/// crate that expands the macro has a `rustls` feature and turns it on (which must turn
/// on this crate's).
#[macro_export]
macro_rules! client_builder_options {
    () => {
        /// The heartbeat, reconnect, queue and timeout configuration.
        pub fn config(mut self, config: $crate::heartline_core::ClientConfig) -> Self {
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
        /// `DEFAULT_MAX_MESSAGE_SIZE` (16 MiB).
        pub fn max_message_size(mut self, bytes: Option<usize>) -> Self {
            self.options.ws_config = self.options.ws_config.max_message_size(bytes);
            self
        }

        /// Replaces the whole tungstenite configuration (buffer sizes, limits).
        pub fn websocket_config(
            mut self,
            config: $crate::tungstenite::protocol::WebSocketConfig,
        ) -> Self {
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
            F: Fn(u32) -> Result<$crate::client::ConnectTarget, $crate::client::BoxError>
                + Send
                + Sync
                + 'static,
        {
            self.options.on_connect = Some(std::sync::Arc::new(f));
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
        pub fn tls_config(mut self, config: std::sync::Arc<$crate::rustls::ClientConfig>) -> Self {
            self.options.tls.config = Some(config);
            self
        }
    };
}

// Handles are shared across threads and tasks.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ClientHandle>();
    send_sync::<ClientEvent>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn http_error(status: u16, retry_after: Option<&str>) -> AttemptError {
        let mut response = Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header("Retry-After", value);
        }
        let response = response.body(None).unwrap();
        AttemptError::from(tungstenite::Error::Http(Box::new(response)))
    }

    #[test]
    fn a_non_101_answer_keeps_its_status_and_retry_after_seconds() {
        assert_eq!(
            http_error(503, Some(" 7 ")),
            AttemptError::Http {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // An HTTP date: the time left until it; one in the past asks for no wait.
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        match http_error(503, Some(&httpdate::fmt_http_date(in_a_minute))) {
            AttemptError::Http {
                status: 503,
                retry_after: Some(left),
            } => assert!(
                left > Duration::from_secs(50) && left <= Duration::from_secs(60),
                "{left:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            http_error(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            AttemptError::Http {
                status: 503,
                retry_after: Some(Duration::ZERO)
            }
        );
        // Nonsense is ignored: the core's backoff applies.
        for value in ["-1", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(
                http_error(429, Some(value)),
                AttemptError::Http {
                    status: 429,
                    retry_after: None
                }
            );
        }
        assert_eq!(
            http_error(401, None),
            AttemptError::Http {
                status: 401,
                retry_after: None
            }
        );
    }

    #[test]
    fn other_failures_are_io_errors_with_a_description() {
        let e = AttemptError::from(tungstenite::Error::ConnectionClosed);
        assert!(
            matches!(e, AttemptError::Io(ref s) if !s.is_empty()),
            "{e:?}"
        );
    }

    #[test]
    fn a_target_names_host_port_and_scheme() {
        let (request, endpoint) = ConnectTarget::new("wss://[::1]/chat")
            .header("Authorization", "Bearer x")
            .resolve()
            .unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                host: "::1".into(),
                port: 443,
                tls: true
            }
        );
        assert_eq!(request.headers()["authorization"], "Bearer x");
        let (_, endpoint) = ConnectTarget::new("ws://example.com:8080/")
            .resolve()
            .unwrap();
        assert_eq!((endpoint.port, endpoint.tls), (8080, false));
    }

    #[test]
    fn a_bad_target_is_an_error_not_a_panic() {
        for url in ["http://example.com/", "not a url", "ws://"] {
            assert!(ConnectTarget::new(url).resolve().is_err(), "{url}");
        }
        let bad_header = ConnectTarget::new("ws://example.com/").header("Bad Name", "v");
        assert!(bad_header.resolve().is_err());
        let bad_value = ConnectTarget::new("ws://example.com/").header("X", "a\nb");
        assert!(bad_value.resolve().is_err());
    }

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
