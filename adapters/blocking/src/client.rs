//! The blocking client: a builder, a cloneable handle, an event iterator, and the driver
//! that runs the [`heartline_core::Client`] over tungstenite on `std::net`.
//!
//! The driver is a loop on its own thread. Each turn it drains the core's actions and
//! executes them, then blocks in a read whose timeout is the time to the core's next
//! deadline (at least 1 ms, at most [`ClientBuilder::command_latency`]); a read that
//! times out is a timer check. After waking it takes a fresh [`Instant::now()`] and
//! feeds the core. Every decision (when to ping, when the peer is dead, when to
//! reconnect) is the core's.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{
    Action, Client, ClientConfig, CloseError, ConfigError, ConnId, ConnectError, Disposition,
    Event, Frame, HeartbeatKind, Message, Notice, ReadyState, SendError,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderName, HeaderValue, Request, Response};
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Bytes, Utf8Bytes, WebSocket};

use crate::tls::{MaybeTls, TlsSettings};

/// Default read buffer: 4 KiB.
///
/// tungstenite's own default is 128 KiB, zero-filled on every read: an idle connection
/// would cost ~139 KB of memory. 4 KiB holds a typical message in one read; larger ones
/// take several reads.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 4 * 1024;

/// Default write buffer threshold: 4 KiB. The driver flushes after every message, so
/// this only bounds how much tungstenite gathers before writing within one message.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Default largest inbound message: 16 MiB (tungstenite's is 64 MiB). Generous for a
/// WebSocket application, small enough that a hostile peer cannot exhaust memory fast.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Default write timeout: 5 s. A write that cannot finish in 5 s means the peer stopped
/// reading; the connection is then dropped as broken (and the core reconnects).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default command latency: 5 ms. While a connection is open the driver blocks in a
/// read, so a message sent from a handle reaches the wire within this time; a shorter
/// value costs more wake-ups on an idle connection (200 per second at 5 ms).
pub const DEFAULT_COMMAND_LATENCY: Duration = Duration::from_millis(5);

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

    /// The handshake request, or why it cannot be built.
    fn request(&self) -> Result<Request<()>, String> {
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
        Ok(request)
    }
}

type TargetFn = dyn Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync;

/// The client could not be built or started.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration makes no sense.
    Config(ConfigError),
    /// The URL, a header or the TLS setup cannot form a WebSocket request.
    Request(String),
    /// The driver thread could not be started.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::Request(e) => f.write_str(e),
            BuildError::Spawn(e) => write!(f, "cannot start the client thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds a client: URL, heartline configuration, WebSocket buffer sizes, timeouts, TLS
/// roots and an optional per-attempt callback.
pub struct ClientBuilder {
    target: ConnectTarget,
    config: ClientConfig,
    seed: Option<u64>,
    ws_config: WebSocketConfig,
    on_connect: Option<Arc<TargetFn>>,
    write_timeout: Duration,
    command_latency: Duration,
    tls: TlsSettings,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("seed", &self.seed)
            .field("ws_config", &self.ws_config)
            .field("on_connect", &self.on_connect.is_some())
            .field("write_timeout", &self.write_timeout)
            .field("command_latency", &self.command_latency)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A client for `url` (`ws://` or `wss://`) with the default configuration.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            target: ConnectTarget::new(url),
            config: ClientConfig::default(),
            seed: None,
            ws_config: WebSocketConfig::default()
                .read_buffer_size(DEFAULT_READ_BUFFER_SIZE)
                .write_buffer_size(DEFAULT_WRITE_BUFFER_SIZE)
                .max_message_size(Some(DEFAULT_MAX_MESSAGE_SIZE)),
            on_connect: None,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            command_latency: DEFAULT_COMMAND_LATENCY,
            tls: TlsSettings::default(),
        }
    }

    /// The heartbeat, reconnect, queue and timeout configuration.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Seeds the reconnect jitter, for reproducible runs. Default: a random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a request header sent on every attempt (unless [`ClientBuilder::on_connect`]
    /// supplies the headers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.target = self.target.header(name, value);
        self
    }

    /// Read buffer size. Default [`DEFAULT_READ_BUFFER_SIZE`].
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.ws_config = self.ws_config.read_buffer_size(bytes);
        self
    }

    /// Write buffer threshold. Default [`DEFAULT_WRITE_BUFFER_SIZE`].
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.ws_config = self.ws_config.write_buffer_size(bytes);
        self
    }

    /// Largest inbound message; `None` for no limit. Default [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn max_message_size(mut self, bytes: Option<usize>) -> Self {
        self.ws_config = self.ws_config.max_message_size(bytes);
        self
    }

    /// Replaces the whole tungstenite configuration (buffer sizes, limits).
    pub fn websocket_config(mut self, config: WebSocketConfig) -> Self {
        self.ws_config = config;
        self
    }

    /// How long one write may block before the connection counts as broken. Default
    /// [`DEFAULT_WRITE_TIMEOUT`]. Zero is raised to 1 ms.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest the driver blocks in a read before it looks at what the handles did:
    /// a message sent or a close requested from a handle reaches the wire within this
    /// time. Default [`DEFAULT_COMMAND_LATENCY`]; at least 1 ms.
    pub fn command_latency(mut self, latency: Duration) -> Self {
        self.command_latency = latency.max(Duration::from_millis(1));
        self
    }

    /// Calls `f(attempt)` before every connection attempt (0 for the first, `n` for the
    /// n-th reconnect in a row) for the URL and headers to use, for example a fresh auth
    /// token. An error fails that attempt like a connection error (the core then backs
    /// off and retries).
    pub fn on_connect<F>(mut self, f: F) -> Self
    where
        F: Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync + 'static,
    {
        self.on_connect = Some(Arc::new(f));
        self
    }

    /// Trusts `der` (a DER-encoded certificate) as a root for `wss://`, on top of the
    /// built-in web roots: for a server with a self-signed or private-CA certificate.
    #[cfg(feature = "rustls")]
    pub fn tls_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.tls.extra_roots.push(der.into());
        self
    }

    /// Uses this rustls configuration for `wss://` instead of the default (web roots
    /// plus any [`ClientBuilder::tls_root_certificate`]).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<crate::rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Builds the client and starts its driver on a thread of its own: a handle and the
    /// event iterator.
    pub fn connect(self) -> Result<(ClientHandle, ClientEvents), BuildError> {
        let (handle, events, driver) = self.build()?;
        thread::Builder::new()
            .name("heartline-client".into())
            .spawn(move || driver.run())
            .map_err(BuildError::Spawn)?;
        Ok((handle, events))
    }

    /// Builds the client without starting it: a handle, the event iterator, and the
    /// driver, whose [`Driver::run`] blocks the calling thread until the client is
    /// closed for good.
    pub fn build(self) -> Result<(ClientHandle, ClientEvents, Driver), BuildError> {
        if self.on_connect.is_none() {
            self.target.request().map_err(BuildError::Request)?;
        }
        let heartbeat = match &self.config.heartbeat.kind {
            HeartbeatKind::App(app) => Some(to_ws_message(app.message.clone())),
            _ => None,
        };
        let seed = self.seed.unwrap_or_else(random_seed);
        let core = Client::new(self.config, seed, Instant::now()).map_err(BuildError::Config)?;
        let (wake_tx, wake_rx) = mpsc::sync_channel(1);
        let (events_tx, events_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            wake: wake_tx,
            handles: AtomicUsize::new(1),
        });
        let tls = self.tls.into_connector().map_err(BuildError::Request)?;
        let driver = Driver {
            shared: Arc::clone(&shared),
            wake: wake_rx,
            events: events_tx,
            setup: Setup {
                target: self.target,
                on_connect: self.on_connect,
                ws_config: self.ws_config,
                write_timeout: self.write_timeout,
                command_latency: self.command_latency,
                tls,
            },
            heartbeat,
        };
        Ok((
            ClientHandle { shared },
            ClientEvents { rx: events_rx },
            driver,
        ))
    }
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

/// What the handles and the driver share.
#[derive(Debug)]
struct Shared {
    core: Mutex<Client>,
    /// Wakes the driver when it waits without a connection (capacity 1: wakes coalesce).
    wake: mpsc::SyncSender<()>,
    /// Live handles; when the last goes, the client closes.
    handles: AtomicUsize,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Client> {
        // The core stays consistent even if a panic interrupted a caller: every method
        // leaves it valid, so a poisoned lock is still usable.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nudge(&self) {
        // Full means a wake is already pending: the driver will see this change too.
        let _ = self.wake.try_send(());
    }
}

/// Sends, closes and inspects the client from any thread. Cheap to clone.
///
/// When the last handle is dropped the client closes (code 1000) and the event
/// iterator ends once the close completes.
#[derive(Debug)]
pub struct ClientHandle {
    shared: Arc<Shared>,
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
            let _ =
                self.shared
                    .core()
                    .close(Instant::now(), heartline_core::close_code::NORMAL, "");
            self.shared.nudge();
        }
    }
}

impl ClientHandle {
    /// Sends a message: on the wire within the command latency if the connection is
    /// open, otherwise queued (within the configured bounds) until it opens. A message
    /// that cannot be taken comes back in the error.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let result = self.shared.core().send(Instant::now(), message.into());
        if result.is_ok() {
            self.shared.nudge();
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

    /// Closes for good with `code` and `reason`: no reconnect afterwards. The event
    /// iterator ends once the close handshake completes (or times out).
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        let result = self.shared.core().close(Instant::now(), code, reason);
        self.shared.nudge();
        result
    }

    /// Reconnects at once: skips a pending backoff wait, or closes and reopens an open
    /// connection, or starts over after the client gave up.
    pub fn reconnect_now(&self) {
        self.shared.core().reconnect_now(Instant::now());
        self.shared.nudge();
    }

    /// The browser-like ready state.
    pub fn state(&self) -> ReadyState {
        self.shared.core().state()
    }

    /// Payload bytes accepted by [`ClientHandle::send`] and not yet handed to the
    /// socket, like the browser's `bufferedAmount`.
    pub fn buffered_amount(&self) -> usize {
        self.shared.core().buffered_amount()
    }

    /// The last measured heartbeat round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.core().rtt()
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

/// The client's events, in order. Iteration blocks for the next event and ends after
/// the client is closed for good (closed by the application, or gave up). Events queue
/// without bound, so an application that reads slowly never stalls the connection's
/// heartbeat.
#[derive(Debug)]
pub struct ClientEvents {
    rx: mpsc::Receiver<ClientEvent>,
}

impl ClientEvents {
    /// The next event, waiting at most `timeout`. `Err(Timeout)` if none came,
    /// `Err(Disconnected)` after the client is closed for good.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ClientEvent, mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next event if one is ready.
    pub fn try_recv(&self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for ClientEvents {
    type Item = ClientEvent;

    fn next(&mut self) -> Option<ClientEvent> {
        self.rx.recv().ok()
    }
}

/// What every attempt needs.
struct Setup {
    target: ConnectTarget,
    on_connect: Option<Arc<TargetFn>>,
    ws_config: WebSocketConfig,
    write_timeout: Duration,
    command_latency: Duration,
    tls: crate::tls::TlsConnector,
}

/// Why an attempt failed, owned (the core takes a borrowed [`ConnectError`]).
enum Failure {
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    Io(String),
}

impl Failure {
    fn as_error(&self) -> ConnectError<'_> {
        match self {
            Failure::Http {
                status,
                retry_after,
            } => ConnectError::Http {
                status: *status,
                retry_after: *retry_after,
            },
            Failure::Io(e) => ConnectError::Io(e),
        }
    }
}

impl From<tungstenite::Error> for Failure {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => Failure::Http {
                status: response.status().as_u16(),
                retry_after: retry_after(&response),
            },
            other => Failure::Io(other.to_string()),
        }
    }
}

/// The `Retry-After` header in its delay-seconds form (an HTTP date is ignored: the
/// core's own backoff applies then).
fn retry_after<T>(response: &Response<T>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

type Ws = WebSocket<MaybeTls>;

fn remaining(deadline: Instant) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Failure::Io("connect timeout".to_owned()))
    } else {
        Ok(left)
    }
}

/// One connection attempt: target, TCP, TLS, WebSocket handshake, within `timeout`.
fn attempt(setup: &Setup, number: u32, timeout: Duration) -> Result<Ws, Failure> {
    let deadline = Instant::now() + timeout;
    let target = match &setup.on_connect {
        Some(f) => f(number).map_err(|e| Failure::Io(format!("connect callback: {e}")))?,
        None => setup.target.clone(),
    };
    let request = target.request().map_err(Failure::Io)?;
    let uri = request.uri();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(Failure::Io(format!("not a ws:// or wss:// URL: {uri}"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| Failure::Io(format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let io_err = |e: io::Error| Failure::Io(format!("connect to {host}:{port}: {e}"));
    // Name resolution has no timeout of its own in std; the OS resolver bounds it.
    let addrs = (host.as_str(), port).to_socket_addrs().map_err(io_err)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or_else(|| io_err(last))?;
    tcp.set_nodelay(true).map_err(io_err)?;
    // The TLS and WebSocket handshakes must also finish before the deadline.
    let left = remaining(deadline)?;
    tcp.set_read_timeout(Some(left)).map_err(io_err)?;
    tcp.set_write_timeout(Some(left)).map_err(io_err)?;
    let stream = setup.tls.wrap(tcp, tls, &host).map_err(Failure::Io)?;
    let (ws, _response) =
        match tungstenite::client::client_with_config(request, stream, Some(setup.ws_config)) {
            Ok(ok) => ok,
            Err(HandshakeError::Failure(e)) => return Err(e.into()),
            Err(HandshakeError::Interrupted(_)) => {
                return Err(Failure::Io(
                    "connect timeout during the handshake".to_owned(),
                ))
            }
        };
    ws.get_ref()
        .tcp()
        .set_write_timeout(Some(setup.write_timeout))
        .map_err(io_err)?;
    Ok(ws)
}

/// Runs the client on the calling thread until it is closed for good. Usually started
/// by [`ClientBuilder::connect`].
#[must_use = "the client does nothing until its driver runs"]
pub struct Driver {
    shared: Arc<Shared>,
    wake: mpsc::Receiver<()>,
    events: mpsc::Sender<ClientEvent>,
    setup: Setup,
    /// The application heartbeat, converted once.
    heartbeat: Option<tungstenite::Message>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

fn to_ws_message(message: Message) -> tungstenite::Message {
    match message {
        // `String` and `Vec<u8>` become `Utf8Bytes` / `Bytes` without a copy.
        Message::Text(t) => tungstenite::Message::Text(t.into()),
        Message::Binary(b) => tungstenite::Message::Binary(b.into()),
    }
}

/// The open connection and the read timeout last set on it.
struct Link {
    conn: ConnId,
    ws: Ws,
    read_timeout: Option<Duration>,
}

impl Driver {
    /// Runs the client until it is closed for good, then returns.
    pub fn run(self) {
        let mut link: Option<Link> = None;
        loop {
            // Execute every action the core has for us.
            loop {
                let action = {
                    let mut core = self.shared.core();
                    self.drain_notices(&mut core);
                    core.poll_action()
                };
                let Some(action) = action else { break };
                self.execute(action, &mut link);
            }
            let deadline = {
                let core = self.shared.core();
                if core.is_closed() && link.is_none() {
                    break;
                }
                core.poll_timeout()
            };
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => None,
                Some(d) => Some((d - now).min(self.setup.command_latency)),
                None => Some(self.setup.command_latency),
            };
            if let Some(wait) = wait {
                match &mut link {
                    Some(_) => self.read(&mut link, wait),
                    // Nothing to read: wait for a handle's nudge or the deadline.
                    None => {
                        let wait = match deadline {
                            Some(d) => d.saturating_duration_since(now),
                            None => Duration::from_secs(3600),
                        };
                        let _ = self.wake.recv_timeout(wait);
                    }
                }
            }
            self.shared.core().handle_timeout(Instant::now());
        }
        self.drain_notices(&mut self.shared.core());
    }

    /// Reads one message (or times out after `wait`, a timer check) and feeds it in.
    fn read(&self, slot: &mut Option<Link>, wait: Duration) {
        let Some(open) = slot.as_mut() else { return };
        let wait = wait.max(Duration::from_millis(1));
        if open.read_timeout != Some(wait) {
            if let Err(e) = open.ws.get_ref().tcp().set_read_timeout(Some(wait)) {
                let conn = open.conn;
                *slot = None;
                self.disconnected(conn, Some(&e.to_string()));
                return;
            }
            open.read_timeout = Some(wait);
        }
        let conn = open.conn;
        match open.ws.read() {
            Ok(message) => {
                // A Ping or Close makes tungstenite queue its reply: send it now, not
                // at the next write, so the peer's heartbeat is answered at once.
                let reply = matches!(
                    message,
                    tungstenite::Message::Ping(_) | tungstenite::Message::Close(_)
                );
                self.deliver(conn, message);
                if reply {
                    match open.ws.flush() {
                        Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
                        Err(e) => {
                            *slot = None;
                            self.disconnected(conn, Some(&e.to_string()));
                        }
                    }
                }
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                *slot = None;
                self.disconnected(conn, None);
            }
            Err(e) => {
                *slot = None;
                self.disconnected(conn, Some(&e.to_string()));
            }
        }
    }

    fn disconnected(&self, conn: ConnId, error: Option<&str>) {
        let mut core = self.shared.core();
        core.handle_event(Instant::now(), Event::Disconnected(conn, error));
        self.drain_notices(&mut core);
    }

    /// Moves the core's notices to the event iterator. A dropped iterator is not an
    /// error: the client keeps running for its handles.
    fn drain_notices(&self, core: &mut Client) {
        while let Some(notice) = core.poll_notice() {
            let _ = self.events.send(ClientEvent::Notice(notice));
        }
    }

    /// Feeds an inbound message to the core and hands it to the application if it is one.
    fn deliver(&self, conn: ConnId, message: tungstenite::Message) {
        let mut core = self.shared.core();
        let frame = match &message {
            tungstenite::Message::Text(t) => Frame::Text(t.as_str()),
            tungstenite::Message::Binary(b) => Frame::Binary(b),
            tungstenite::Message::Ping(p) => Frame::Ping(p),
            tungstenite::Message::Pong(p) => Frame::Pong(p),
            tungstenite::Message::Close(c) => {
                Frame::Close(c.as_ref().map(|c| (u16::from(c.code), c.reason.as_str())))
            }
            // tungstenite never returns raw frames from a read.
            tungstenite::Message::Frame(_) => return,
        };
        let disposition = core.handle_event(Instant::now(), Event::Frame(conn, frame));
        // Notices the frame caused come before the message, as they happened.
        self.drain_notices(&mut core);
        drop(core);
        if disposition == Disposition::Deliver {
            let event = match message {
                tungstenite::Message::Text(t) => ClientEvent::Text(t),
                tungstenite::Message::Binary(b) => ClientEvent::Binary(b),
                _ => return,
            };
            let _ = self.events.send(event);
        }
    }

    /// Executes one action of the core's.
    fn execute(&self, action: Action, link: &mut Option<Link>) {
        let (conn, message) = match action {
            Action::Connect {
                conn,
                attempt: number,
                timeout,
            } => {
                *link = None;
                let result = attempt(&self.setup, number, timeout);
                let now = Instant::now();
                let mut core = self.shared.core();
                match result {
                    Ok(ws) => {
                        if core.handle_event(now, Event::Connected(conn)) != Disposition::Stale {
                            *link = Some(Link {
                                conn,
                                ws,
                                read_timeout: None,
                            });
                        }
                    }
                    Err(failure) => {
                        core.handle_event(now, Event::ConnectFailed(conn, failure.as_error()));
                    }
                }
                self.drain_notices(&mut core);
                return;
            }
            Action::Abort { conn } => {
                if link.as_ref().is_some_and(|l| l.conn == conn) {
                    *link = None;
                    self.disconnected(conn, None);
                }
                return;
            }
            Action::SendPing { conn, payload } => (
                conn,
                tungstenite::Message::Ping(Bytes::copy_from_slice(payload.as_bytes())),
            ),
            Action::SendHeartbeat { conn } => match &self.heartbeat {
                Some(m) => (conn, m.clone()),
                None => return,
            },
            Action::Send { conn, message } => (conn, to_ws_message(message)),
            Action::Close { conn, code, reason } => (
                conn,
                tungstenite::Message::Close(Some(CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                })),
            ),
        };
        let Some(open) = link.as_mut().filter(|l| l.conn == conn) else {
            return;
        };
        match open.ws.send(message) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(e) => {
                *link = None;
                let error = match e {
                    tungstenite::Error::Io(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        "write timed out: the peer is not reading".to_owned()
                    }
                    e => e.to_string(),
                };
                self.disconnected(conn, Some(&error));
            }
        }
    }
}

// `MaybeTls` must be a full byte stream for tungstenite.
const _: fn() = || {
    fn assert_stream<S: Read + Write>() {}
    assert_stream::<MaybeTls>();
};
