//! The async client: a builder, a cloneable handle, an event stream, and the driver
//! that runs the [`heartline_core::Client`] over async-tungstenite.
//!
//! The driver is one future. Each turn it drains the core's actions and executes them,
//! then waits for whichever comes first: a frame (or the handshake's end) on the
//! connection, a nudge from a handle, or the core's one next deadline on an
//! [`async_io::Timer`]. After waking it takes a fresh [`Instant::now()`] and feeds the core.
//! Every decision (when to ping, when the peer is dead, when to reconnect) is the core's.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request, Response};
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{self, Bytes, Utf8Bytes};
use async_tungstenite::WebSocketStream;
use futures_lite::{future, AsyncRead, AsyncWrite, Stream, StreamExt};
use heartline_core::{
    Action, Client, ClientConfig, CloseError, ConfigError, ConnId, ConnectError, Disposition,
    Event, Frame, HeartbeatKind, Message, Notice, ReadyState, SendError,
};

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
    pub(crate) fn request(&self) -> Result<Request<()>, String> {
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

/// Opens the TCP (or other byte) stream for a connection attempt; TLS and the WebSocket
/// handshake happen on top. Implement it to run the client over any futures-io stream.
pub trait Connector: Send + Sync + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `host:port`. The driver bounds the whole attempt by the core's
    /// connect timeout, so this need not time out by itself.
    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>>;
}

/// The default connector: a TCP stream registered with the async-io reactor (the one
/// smol and async-std share), with `TCP_NODELAY` set. Host names are resolved on a
/// short-lived thread so resolution never blocks the executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = Async<TcpStream>;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(async move {
            let addrs = resolve(host, port).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
            for addr in addrs {
                match Async::<TcpStream>::connect(addr).await {
                    Ok(stream) => {
                        stream.get_ref().set_nodelay(true)?;
                        return Ok(stream);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

/// Resolves `host`; an IP literal needs no lookup, a name is looked up on a thread.
async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = async_channel::bounded(1);
    std::thread::Builder::new()
        .name("heartline-resolve".into())
        .spawn(move || {
            let result = (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            let _ = tx.try_send(result);
        })?;
    rx.recv()
        .await
        .map_err(|_| io::Error::other("name resolution thread ended without an answer"))?
}

/// The client could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration makes no sense.
    Config(ConfigError),
    /// The URL or a header cannot form a WebSocket request.
    Request(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::Request(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds a client: URL, heartline configuration, WebSocket buffer sizes, TLS roots and
/// an optional per-attempt callback.
pub struct ClientBuilder {
    target: ConnectTarget,
    config: ClientConfig,
    seed: Option<u64>,
    ws_config: WebSocketConfig,
    on_connect: Option<Arc<TargetFn>>,
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

    /// Builds the client with the default [`TcpConnector`]: a handle, the event stream,
    /// and the driver future, which must be spawned (or awaited) for anything to happen.
    pub fn build(self) -> Result<(ClientHandle, ClientEvents, Driver<TcpConnector>), BuildError> {
        self.build_with(TcpConnector)
    }

    /// Builds the client with a custom [`Connector`].
    pub fn build_with<C: Connector>(
        self,
        connector: C,
    ) -> Result<(ClientHandle, ClientEvents, Driver<C>), BuildError> {
        if self.on_connect.is_none() {
            self.target.request().map_err(BuildError::Request)?;
        }
        let heartbeat = match &self.config.heartbeat.kind {
            HeartbeatKind::App(app) => Some(to_ws_message(app.message.clone())),
            _ => None,
        };
        let seed = self.seed.unwrap_or_else(random_seed);
        let core = Client::new(self.config, seed, Instant::now()).map_err(BuildError::Config)?;
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let (events_tx, events_rx) = async_channel::unbounded();
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
            connector: Arc::new(connector),
            setup: Arc::new(Setup {
                target: self.target,
                on_connect: self.on_connect,
                ws_config: self.ws_config,
                tls,
            }),
            heartbeat,
        };
        Ok((
            ClientHandle { shared },
            ClientEvents {
                rx: Box::pin(events_rx),
            },
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
    /// Nudges the driver after a handle changed the core (capacity 1: nudges coalesce).
    wake: async_channel::Sender<()>,
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
        // Full means a nudge is already pending: the driver will see this change too.
        let _ = self.wake.try_send(());
    }
}

/// Sends, closes and inspects the client from any task or thread. Cheap to clone.
///
/// When the last handle is dropped the client closes (code 1000) and the event stream
/// ends once the close completes.
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
    /// Sends a message: at once if the connection is open, otherwise queued (within the
    /// configured bounds) until it opens. A message that cannot be taken comes back in
    /// the error.
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
    /// stream ends once the close handshake completes (or times out).
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

/// The client's events, in order. The stream ends after the client is closed for good
/// (closed by the application, or gave up). Events queue without bound, so an
/// application that reads slowly never stalls the connection's heartbeat.
#[derive(Debug)]
pub struct ClientEvents {
    // Boxed: the receiver is not `Unpin`, and the stream should be.
    rx: Pin<Box<async_channel::Receiver<ClientEvent>>>,
}

impl ClientEvents {
    /// The next event, or `None` after the client is closed for good.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await.ok()
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl Stream for ClientEvents {
    type Item = ClientEvent;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ClientEvent>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// What every attempt needs, shared with the attempt futures.
struct Setup {
    target: ConnectTarget,
    on_connect: Option<Arc<TargetFn>>,
    ws_config: WebSocketConfig,
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

type Ws<C> = WebSocketStream<MaybeTls<<C as Connector>::Stream>>;
type Attempt<C> = Pin<Box<dyn Future<Output = Result<Ws<C>, Failure>> + Send>>;

/// One connection attempt: target, TCP, TLS, WebSocket handshake, bounded by `timeout`.
fn attempt<C: Connector>(
    connector: Arc<C>,
    setup: Arc<Setup>,
    number: u32,
    timeout: Duration,
) -> Attempt<C> {
    let work = async move {
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
            .ok_or_else(|| Failure::Io(format!("no host in {uri}")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = connector
            .connect(host.clone(), port)
            .await
            .map_err(|e| Failure::Io(format!("connect to {host}:{port}: {e}")))?;
        let stream = setup.tls.wrap(tcp, tls, &host).await.map_err(Failure::Io)?;
        let (ws, _response) =
            async_tungstenite::client_async_with_config(request, stream, Some(setup.ws_config))
                .await?;
        Ok(ws)
    };
    Box::pin(async move {
        future::or(work, async {
            Timer::after(timeout).await;
            Err(Failure::Io("connect timeout".to_owned()))
        })
        .await
    })
}

/// The connection as the driver holds it. One per client, so the open stream is kept
/// inline rather than boxed.
#[allow(clippy::large_enum_variant)]
enum Link<C: Connector> {
    Idle,
    Connecting { conn: ConnId, attempt: Attempt<C> },
    Open { conn: ConnId, ws: Ws<C> },
}

impl<C: Connector> Link<C> {
    fn conn(&self) -> Option<ConnId> {
        match self {
            Link::Idle => None,
            Link::Connecting { conn, .. } | Link::Open { conn, .. } => Some(*conn),
        }
    }
}

/// What woke the driver (a short-lived value on the driver's stack).
#[allow(clippy::large_enum_variant)]
enum Wake<C: Connector> {
    Connected(Result<Ws<C>, Failure>),
    Read(Option<Result<tungstenite::Message, tungstenite::Error>>),
    Nudge,
    Deadline,
}

/// The future that runs the client: spawn it on any executor whose reactor is async-io
/// (smol, async-std), or `await` it. It completes once the client is closed for good.
#[must_use = "the client does nothing until its driver runs"]
pub struct Driver<C: Connector> {
    shared: Arc<Shared>,
    wake: async_channel::Receiver<()>,
    events: async_channel::Sender<ClientEvent>,
    connector: Arc<C>,
    setup: Arc<Setup>,
    /// The application heartbeat, converted once.
    heartbeat: Option<tungstenite::Message>,
}

impl<C: Connector> fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            Timer::at(at).await;
        }
        None => future::pending::<()>().await,
    }
}

fn to_ws_message(message: Message) -> tungstenite::Message {
    match message {
        // `String` and `Vec<u8>` become `Utf8Bytes` / `Bytes` without a copy.
        Message::Text(t) => tungstenite::Message::Text(t.into()),
        Message::Binary(b) => tungstenite::Message::Binary(b.into()),
    }
}

impl<C: Connector> Driver<C> {
    /// Runs the client until it is closed for good.
    pub async fn run(self) {
        let Driver {
            shared,
            wake,
            events,
            connector,
            setup,
            heartbeat,
        } = self;
        let mut link: Link<C> = Link::Idle;
        loop {
            // Execute every action the core has for us.
            loop {
                let action = {
                    let mut core = shared.core();
                    drain_notices(&mut core, &events);
                    core.poll_action()
                };
                let Some(action) = action else { break };
                execute::<C>(
                    action, &mut link, &shared, &events, &connector, &setup, &heartbeat,
                )
                .await;
            }
            let deadline = {
                let core = shared.core();
                if core.is_closed() && matches!(link, Link::Idle) {
                    break;
                }
                core.poll_timeout()
            };
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            let woke: Wake<C> = if due {
                Wake::Deadline
            } else {
                let io = async {
                    match &mut link {
                        Link::Idle => future::pending().await,
                        Link::Connecting { attempt, .. } => Wake::Connected(attempt.as_mut().await),
                        // A tungstenite read also writes any queued automatic Pong or
                        // Close reply first, so polling it flushes those at once.
                        Link::Open { ws, .. } => Wake::Read(ws.next().await),
                    }
                };
                let nudge = async {
                    // The channel never closes: `shared` holds its sender.
                    let _ = wake.recv().await;
                    Wake::Nudge
                };
                let timer = async {
                    sleep_until(deadline).await;
                    Wake::Deadline
                };
                future::or(io, future::or(nudge, timer)).await
            };
            let now = Instant::now();
            match woke {
                Wake::Connected(result) => {
                    let Link::Connecting { conn, .. } = link else {
                        continue;
                    };
                    link = Link::Idle;
                    let mut core = shared.core();
                    match result {
                        Ok(ws) => {
                            if core.handle_event(now, Event::Connected(conn)) != Disposition::Stale
                            {
                                link = Link::Open { conn, ws };
                            }
                        }
                        Err(failure) => {
                            core.handle_event(now, Event::ConnectFailed(conn, failure.as_error()));
                        }
                    }
                }
                Wake::Read(item) => {
                    let Some(conn) = link.conn() else { continue };
                    match item {
                        Some(Ok(message)) => {
                            deliver(&shared, &events, now, conn, message);
                        }
                        Some(Err(e)) => {
                            link = Link::Idle;
                            let error = e.to_string();
                            shared
                                .core()
                                .handle_event(now, Event::Disconnected(conn, Some(&error)));
                        }
                        None => {
                            link = Link::Idle;
                            shared
                                .core()
                                .handle_event(now, Event::Disconnected(conn, None));
                        }
                    }
                }
                Wake::Nudge | Wake::Deadline => {}
            }
            shared.core().handle_timeout(now);
        }
        drain_notices(&mut shared.core(), &events);
    }
}

/// Moves the core's notices to the event stream. A closed stream (the application
/// dropped it) is not an error: the client keeps running for its handles.
fn drain_notices(core: &mut Client, events: &async_channel::Sender<ClientEvent>) {
    while let Some(notice) = core.poll_notice() {
        let _ = events.try_send(ClientEvent::Notice(notice));
    }
}

/// Feeds an inbound message to the core and hands it to the application if it is one.
fn deliver(
    shared: &Shared,
    events: &async_channel::Sender<ClientEvent>,
    now: Instant,
    conn: ConnId,
    message: tungstenite::Message,
) {
    let mut core = shared.core();
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
    let disposition = core.handle_event(now, Event::Frame(conn, frame));
    // Notices the frame caused come before the message, as they happened.
    drain_notices(&mut core, events);
    drop(core);
    if disposition == Disposition::Deliver {
        let event = match message {
            tungstenite::Message::Text(t) => ClientEvent::Text(t),
            tungstenite::Message::Binary(b) => ClientEvent::Binary(b),
            _ => return,
        };
        let _ = events.try_send(event);
    }
}

/// Executes one action of the core's.
async fn execute<C: Connector>(
    action: Action,
    link: &mut Link<C>,
    shared: &Shared,
    events: &async_channel::Sender<ClientEvent>,
    connector: &Arc<C>,
    setup: &Arc<Setup>,
    heartbeat: &Option<tungstenite::Message>,
) {
    let (conn, message) = match action {
        Action::Connect {
            conn,
            attempt: number,
            timeout,
        } => {
            *link = Link::Connecting {
                conn,
                attempt: attempt(Arc::clone(connector), Arc::clone(setup), number, timeout),
            };
            return;
        }
        Action::Abort { conn } => {
            if link.conn() == Some(conn) {
                *link = Link::Idle;
                let mut core = shared.core();
                core.handle_event(Instant::now(), Event::Disconnected(conn, None));
                drain_notices(&mut core, events);
            }
            return;
        }
        Action::SendPing { conn, payload } => (
            conn,
            tungstenite::Message::Ping(Bytes::copy_from_slice(payload.as_bytes())),
        ),
        Action::SendHeartbeat { conn } => match heartbeat {
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
    let Link::Open { conn: open, ws } = link else {
        return;
    };
    if *open != conn {
        return;
    }
    let result = write(ws, message, shared, conn).await;
    if let Err(error) = result {
        *link = Link::Idle;
        let mut core = shared.core();
        if let Some(error) = error {
            core.handle_event(Instant::now(), Event::Disconnected(conn, Some(&error)));
        }
        drain_notices(&mut core, events);
    }
}

/// Writes and flushes one message. A write stuck on a peer that does not read still
/// lets the core's deadlines run; if the core gives up on the connection meanwhile the
/// write is abandoned (`Err(None)`). `Err(Some(e))` is an IO error.
async fn write<S>(
    ws: &mut WebSocketStream<S>,
    message: tungstenite::Message,
    shared: &Shared,
    conn: ConnId,
) -> Result<(), Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = ws.send(message);
    futures_lite::pin!(send);
    loop {
        let deadline = shared.core().poll_timeout();
        let outcome = future::or(async { Some(send.as_mut().await) }, async {
            sleep_until(deadline).await;
            None
        })
        .await;
        match outcome {
            Some(Ok(())) => return Ok(()),
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                // The close handshake finished while writing: the read side reports it.
                return Ok(());
            }
            Some(Err(e)) => return Err(Some(e.to_string())),
            None => {
                let mut core = shared.core();
                core.handle_timeout(Instant::now());
                if core.current_conn() != Some(conn) {
                    return Err(None);
                }
            }
        }
    }
}
