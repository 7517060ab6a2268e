//! A WebSocket server on `std::net`: pings its clients, evicts the silent ones, keeps a
//! registry of clients by name and validates upgrade requests before answering 101.
//!
//! # Design
//!
//! One **driver thread** owns the core's server machine; it is the only place where
//! decisions are made, and its single deadline (`poll_timeout`) is the one timer for
//! every connection's pings and evictions. Each connection has a thread that owns its
//! socket: it reads with a read timeout, forwards every frame to the driver over a
//! channel, and between reads executes what the driver put in its mailbox (pings,
//! messages, close, abort). Nobody shares a socket and the core needs no lock.
//!
//! A blocked read cannot be interrupted, so outbound data waits for the read timeout
//! to end. That timeout is 1 ms right after any traffic (a reply to a message goes out
//! at once) and doubles while the connection is quiet, up to
//! [`ServerConfig::poll_interval`] (default 50 ms): the longest a message to a quiet
//! client waits, and how often an idle connection thread wakes.
//!
//! The cost is one thread per connection (about 25 KB of memory each) with a wake-up
//! every poll interval (500 idle connections: about 6% of one core): fine for tens or
//! hundreds of clients. For thousands, use
//! `heartline-async`, whose connections are tasks of about 5 KB.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{ConnId, Message, OpenError};
pub use tungstenite::handshake::server::Request;
use tungstenite::protocol::Role;
use tungstenite::{Message as WsMessage, WebSocket};

pub use heartline_tungstenite::hub::{ClientInfo, ServerError, ServerEvent};
use heartline_tungstenite::hub::{
    Command, Hub, Mail, Mailbox, MailboxOutbox, Out, StdChannels, Target, Verdict, Wait,
};
use heartline_tungstenite::wire::{self, Head};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse};

/// Answers plain HTTP requests (those without `Upgrade: websocket`); `None` lets the
/// server answer (404 for a path it does not serve).
pub type HttpHandler = Arc<dyn Fn(&Request) -> Option<HttpResponse> + Send + Sync>;

/// How the blocking server runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// The core's configuration: ping interval, idle timeout, path, limits.
    pub core: heartline_core::ServerConfig,
    /// Buffer sizes per connection.
    pub buffers: Buffers,
    /// The longest read timeout of a connection thread: how long a message to a quiet
    /// client may wait before it is written, and how often an idle connection thread
    /// wakes. After any traffic the timeout drops to 1 ms and doubles back up to this.
    ///
    /// Default 50 ms: pushes to quiet clients still feel prompt, and the wake-ups stay
    /// affordable: measured here, 500 idle connections cost about 6% of one core at
    /// 50 ms, five times that at 10 ms.
    pub poll_interval: Duration,
    /// How long one write may block. Default 10 s: a peer that does not take data for
    /// that long is gone.
    pub write_timeout: Duration,
    /// Answers plain HTTP requests on the same port (a page, a health check).
    pub http: Option<HttpHandler>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            core: heartline_core::ServerConfig::default(),
            buffers: Buffers::default(),
            poll_interval: Duration::from_millis(50),
            write_timeout: Duration::from_secs(10),
            http: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("core", &self.core)
            .field("buffers", &self.buffers)
            .field("poll_interval", &self.poll_interval)
            .field("write_timeout", &self.write_timeout)
            .field("http", &self.http.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// A running server. Dropping it does not stop it: call [`ServerHandle::shutdown`].
///
/// Events wait in an unbounded queue until read: read them ([`Server::recv`],
/// [`Server::events`]) for as long as the server runs, or memory grows with every
/// event.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    events: Receiver<ServerEvent>,
}

impl Server {
    /// Binds `addr` and starts the accept and driver threads.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        Server::start(listener, config)
    }

    /// Serves connections accepted from `listener`.
    pub fn start(listener: TcpListener, config: ServerConfig) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let hub = Hub::new(config.core.clone(), now)
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        let (to_driver, inbox) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let config = Arc::new(config);
        let driver = Driver {
            hub,
            inbox,
            events: event_tx,
            stopping: stopping.clone(),
            addr,
        };
        thread::Builder::new()
            .name("heartline-driver".into())
            .spawn(move || driver.run())?;
        let accept_tx = to_driver.clone();
        thread::Builder::new()
            .name("heartline-accept".into())
            .spawn(move || accept_loop(listener, accept_tx, config, stopping))?;
        Ok(Server {
            addr,
            handle: ServerHandle { tx: to_driver },
            events,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to look clients up, send, broadcast and shut down.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the server has shut down and every event was read.
    pub fn recv(&self) -> Option<ServerEvent> {
        self.events.recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ServerEvent, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    /// The events, until the server has shut down.
    pub fn events(&self) -> impl Iterator<Item = ServerEvent> + '_ {
        self.events.iter()
    }
}

/// A cloneable handle to a running server.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    tx: Sender<Command<StdChannels>>,
}

impl ServerHandle {
    /// Sends `message` to the client registered as `name`.
    pub fn send(&self, name: &str, message: impl Into<Message>) -> Result<(), ServerError> {
        let target = Target::Name(name.to_owned());
        self.ask(|reply| Command::Send(target, message.into(), reply))?
    }

    /// Sends `message` to connection `conn`.
    pub fn send_to(&self, conn: ConnId, message: impl Into<Message>) -> Result<(), ServerError> {
        self.ask(|reply| Command::Send(Target::Conn(conn), message.into(), reply))?
    }

    /// Sends `message` to every open connection; returns how many took it.
    pub fn broadcast(&self, message: impl Into<Message>) -> Result<usize, ServerError> {
        self.ask(|reply| Command::Broadcast(message.into(), reply))
    }

    /// The client registered as `name`.
    pub fn lookup(&self, name: &str) -> Result<Option<ClientInfo>, ServerError> {
        self.ask(|reply| Command::Lookup(name.to_owned(), reply))
    }

    /// Every registered client.
    pub fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.ask(Command::Clients)
    }

    /// Starts a graceful shutdown: every client gets a Close frame with 1001, new
    /// upgrades are refused, and the server stops once every connection has ended
    /// (the core aborts those that do not finish the close handshake in time).
    pub fn shutdown(&self) {
        // A stopped server needs no shutdown.
        let _ = self.tx.send(Command::Shutdown);
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(SyncSender<T>) -> Command<StdChannels>,
    ) -> Result<T, ServerError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(make(reply))
            .map_err(|_| ServerError::Stopped)?;
        answer.recv().map_err(|_| ServerError::Stopped)
    }
}

/// The driver thread: owns the hub (and the core), waits for a command or the one
/// deadline, and dispatches what the core decided.
struct Driver {
    hub: Hub<StdChannels>,
    inbox: Receiver<Command<StdChannels>>,
    events: Sender<ServerEvent>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Driver {
    fn run(mut self) {
        let events = &self.events;
        // An application that dropped its server reads no events: sends may fail.
        loop {
            let command = match self.hub.poll(|e| drop(events.send(e))) {
                Wait::Stop => break,
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.inbox.recv_timeout(left) {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                Wait::Forever => match self.inbox.recv() {
                    Ok(command) => Some(command),
                    Err(_) => break,
                },
            };
            self.hub.step(command, |e| drop(events.send(e)));
            // Take what else is queued before dispatching: one pass for a burst.
            while let Ok(command) = self.inbox.try_recv() {
                self.hub.step(Some(command), |e| drop(events.send(e)));
            }
        }
        // Wake the accept thread so it sees `stopping` and exits; until now it kept
        // accepting, so a late client got a 503 rather than a reset.
        self.stopping.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(
    listener: TcpListener,
    to_driver: Sender<Command<StdChannels>>,
    config: Arc<ServerConfig>,
    stopping: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else {
            // Running out of descriptors or a connection reset before accept: the
            // listener itself is fine; back off briefly instead of spinning.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let to_driver = to_driver.clone();
        let config = config.clone();
        let spawned = thread::Builder::new()
            .name("heartline-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || serve(stream, &to_driver, &config));
        // Without a thread the connection is dropped (closed) at once.
        drop(spawned);
    }
}

/// Runs one connection: the handshake, then the read/execute loop.
fn serve(mut stream: TcpStream, to_driver: &Sender<Command<StdChannels>>, config: &ServerConfig) {
    let deadline = Instant::now() + config.core.handshake_timeout;
    if stream
        .set_write_timeout(Some(config.write_timeout))
        .is_err()
    {
        return;
    }
    let (request, tail) = match read_head(&mut stream, deadline) {
        Ok(head) => head,
        Err(Some(response)) => return respond(&mut stream, &response),
        Err(None) => return,
    };
    if !wire::is_upgrade(&request) {
        if let Some(response) = config.http.as_ref().and_then(|h| h(&request)) {
            return respond(&mut stream, &response);
        }
    }
    let (reply, verdict) = mpsc::sync_channel(1);
    if to_driver
        .send(Command::Upgrade(Box::new(request.clone()), reply))
        .is_err()
    {
        return;
    }
    let name = match verdict.recv() {
        Ok(Verdict::Accept(name)) => name,
        Ok(Verdict::Reject(response)) => return respond(&mut stream, &response),
        Err(_) => return,
    };
    // The core accepted the target; a request that breaks the WebSocket handshake
    // rules (a plain GET, no key, wrong version) still gets 400.
    let upgrade = match wire::upgrade_response(&request) {
        Ok(upgrade) => upgrade,
        Err(response) => return respond(&mut stream, &response),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero()
        || stream.set_write_timeout(Some(left)).is_err()
        || stream.write_all(&upgrade).is_err()
        || stream
            .set_write_timeout(Some(config.write_timeout))
            .is_err()
    {
        return;
    }
    let mailbox = Arc::new(Mailbox::default());
    let (reply, opened) = mpsc::sync_channel(1);
    let outbox = MailboxOutbox(mailbox.clone());
    if to_driver.send(Command::Open(name, outbox, reply)).is_err() {
        return;
    }
    let conn = match opened.recv() {
        Ok(Ok(conn)) => conn,
        // Shutting down or full: the socket closes without more ado.
        Ok(Err(OpenError::ShuttingDown | OpenError::Full)) | Err(_) => return,
    };
    let ws_config = config
        .buffers
        .websocket_config(config.core.max_message_size);
    let ws = WebSocket::from_partially_read(stream, tail, Role::Server, Some(ws_config));
    let poll = Backoff::new(config.poll_interval);
    let error = run_open(ws, conn, to_driver, &mailbox, poll);
    let _ = to_driver.send(Command::Ended(conn, error));
}

/// Reads the request head before `deadline`. `Err(Some(_))` is an answer to send,
/// `Err(None)` means drop the connection silently (timeout, IO error).
fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(Request, Vec<u8>), Option<HttpResponse>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(None);
        }
        stream.set_read_timeout(Some(left)).map_err(|_| None)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        match wire::parse_head(&buf) {
            Head::Partial => {}
            Head::Complete(request, len) => return Ok((*request, buf.split_off(len))),
            Head::Invalid(status) => {
                return Err(Some(HttpResponse::text(status, "bad request\n")));
            }
        }
    }
}

/// Writes a plain HTTP answer and closes.
fn respond(stream: &mut TcpStream, response: &HttpResponse) {
    let _ = stream.write_all(&response.to_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A connection thread's read timeout: short right after traffic, doubling while the
/// connection is quiet.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    /// The read timeout right after traffic (at least 1 ms: a zero timeout would block
    /// forever).
    const MIN: Duration = Duration::from_millis(1);

    fn new(max: Duration) -> Self {
        let max = max.max(Self::MIN);
        Backoff { current: max, max }
    }

    /// Applies `next` to the socket if it differs from the current timeout.
    fn set(&mut self, ws: &WebSocket<TcpStream>, next: Duration) -> io::Result<()> {
        if next != self.current {
            ws.get_ref().set_read_timeout(Some(next))?;
            self.current = next;
        }
        Ok(())
    }

    fn traffic(&mut self, ws: &WebSocket<TcpStream>) -> io::Result<()> {
        self.set(ws, Self::MIN)
    }

    fn quiet(&mut self, ws: &WebSocket<TcpStream>) -> io::Result<()> {
        self.set(ws, (self.current * 2).min(self.max))
    }
}

/// The open connection's loop; returns the IO error that ended it, if any.
fn run_open(
    mut ws: WebSocket<TcpStream>,
    conn: ConnId,
    to_driver: &Sender<Command<StdChannels>>,
    mailbox: &Mailbox,
    mut poll: Backoff,
) -> Option<String> {
    if let Err(e) = ws.get_ref().set_read_timeout(Some(poll.current)) {
        return Some(e.to_string());
    }
    loop {
        let mut wrote = false;
        loop {
            let out = match mailbox.pop() {
                Mail::Item(out) => out,
                Mail::Empty => break,
                // The driver forgot the connection or stopped: nothing will ever be
                // decided for this socket.
                Mail::Closed => return None,
            };
            let sent = match out {
                Out::Ping(payload) => ws.send(wire::ping(&payload)),
                Out::Send(message) => {
                    let len = message.len();
                    ws.send(message).map(|()| {
                        let _ = to_driver.send(Command::Written(conn, len));
                    })
                }
                Out::Close(code, reason) => ws
                    .close(Some(wire::close_frame(code, reason)))
                    .and_then(|()| ws.flush()),
                Out::Evict(code, reason) => {
                    // Only what the socket takes at once: the peer may not be reading.
                    if ws.get_ref().set_nonblocking(true).is_ok() {
                        let _ = ws.close(Some(wire::close_frame(code, reason)));
                        let _ = ws.flush();
                    }
                    return None;
                }
                Out::Abort => return None,
            };
            // A write that fails or times out (the write timeout) ends the connection:
            // the peer is gone or does not take data.
            if let Err(e) = sent {
                return ended(e);
            }
            wrote = true;
        }
        // Something went out: an answer, or more to send, is likely soon.
        if wrote {
            if let Err(e) = poll.traffic(&ws) {
                return Some(e.to_string());
            }
        }
        let read = ws.read();
        let adjusted = match &read {
            Err(e) if is_timeout(e) => poll.quiet(&ws),
            _ => poll.traffic(&ws),
        };
        if let Err(e) = adjusted {
            return Some(e.to_string());
        }
        match read {
            Ok(message) => {
                let ping = matches!(message, WsMessage::Ping(_));
                if to_driver.send(Command::Frame(conn, message)).is_err() {
                    return None;
                }
                if ping {
                    // tungstenite queued a Pong: put it on the wire now.
                    if let Err(e) = ws.flush() {
                        return ended(e);
                    }
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return ended(e),
        }
    }
}

/// The error text for the core; a finished close handshake is no error.
fn ended(error: tungstenite::Error) -> Option<String> {
    match error {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => None,
        e => Some(e.to_string()),
    }
}

fn is_timeout(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(e)
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}
