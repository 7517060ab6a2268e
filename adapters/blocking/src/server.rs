//! A WebSocket server on `std::net`: pings its clients, evicts the silent ones, keeps a
//! registry of clients by name and validates upgrade requests before answering 101.
//!
//! # Design
//!
//! One thread runs an event loop (epoll on Linux, kqueue on the BSDs and macOS, through
//! `mio`) over non-blocking sockets, and owns the core's server machine through the
//! [`Hub`]. The core's single deadline ([`Hub::deadline`]) is the loop's wait timeout:
//! one timer for every connection's pings and evictions. Handles send commands over a
//! channel and wake the loop. Nothing is shared, nothing is locked on the hot path, and
//! a connection costs its socket, its small buffers and a few hundred bytes of state:
//! about 2 KB per connection in all, measured with 10,000 clients (see
//! `benches/load.sh`).
//!
//! Each socket is registered once, edge-triggered, for reading and writing. A read that
//! returns less than it asked for emptied the socket (epoll(7)), so the next read waits
//! for the next readiness event instead of costing a system call that would only say
//! "would block": a ping costs one write and one read.
//!
//! Everything runs on the loop's thread, including [`ServerConfig::http`]: keep that
//! handler quick (answer from memory).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{ConnId, Message};
use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
pub use tungstenite::handshake::server::Request;
use tungstenite::protocol::Role;
use tungstenite::{Message as WsMessage, WebSocket};

use heartline_tungstenite::hub::{Channels, Command, Hub, Out, Outbox, Target, Verdict, Wait};
pub use heartline_tungstenite::hub::{ClientInfo, ServerError, ServerEvent};
use heartline_tungstenite::lock;
use heartline_tungstenite::wire::{self, Head};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse};

/// Answers plain HTTP requests (those without `Upgrade: websocket`); `None` lets the
/// server answer (404 for a path it does not serve). It runs on the server's thread.
pub type HttpHandler = Arc<dyn Fn(&Request) -> Option<HttpResponse> + Send + Sync>;

/// An application's event handler, called on the server's thread (see
/// [`Server::start_with_handler`]).
type EventHandler = Box<dyn FnMut(ServerEvent, &mut Responder<'_>) + Send>;

/// What an event handler may do on the server's thread: what a [`ServerHandle`] does,
/// at once and without waiting for an answer from another thread.
pub struct Responder<'a> {
    hub: &'a mut Hub<LoopChannels>,
    now: Instant,
}

impl fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder<'_> {
    /// Sends `message` to the client registered as `name`.
    pub fn send(&mut self, name: &str, message: impl Into<Message>) -> Result<(), ServerError> {
        let target = Target::Name(name.to_owned());
        self.hub.send(self.now, &target, message.into())
    }

    /// Sends `message` to connection `conn`.
    pub fn send_to(
        &mut self,
        conn: ConnId,
        message: impl Into<Message>,
    ) -> Result<(), ServerError> {
        self.hub.send(self.now, &Target::Conn(conn), message.into())
    }

    /// Sends `message` to every open connection; returns how many took it.
    pub fn broadcast(&mut self, message: impl Into<Message>) -> usize {
        self.hub.broadcast(self.now, message.into())
    }

    /// The client registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<ClientInfo> {
        self.hub.lookup(name)
    }

    /// Every registered client.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.hub.clients()
    }

    /// Starts a graceful shutdown, as [`ServerHandle::shutdown`] does.
    pub fn shutdown(&mut self) {
        self.hub.shutdown(self.now);
    }
}

/// How the blocking server runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// The core's configuration: ping interval, idle timeout, path, limits.
    pub core: heartline_core::ServerConfig,
    /// Buffer sizes per connection.
    pub buffers: Buffers,
    /// How long a connection may stay unable to take what is written to it. Default
    /// 10 s: a peer that takes no data for that long is gone, even if it still sends.
    pub write_timeout: Duration,
    /// Answers plain HTTP requests on the same port (a page, a health check).
    pub http: Option<HttpHandler>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            core: heartline_core::ServerConfig::default(),
            buffers: Buffers::default(),
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
    /// Binds `addr` and starts the server's thread.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        Server::start(listener, config)
    }

    /// Serves connections accepted from `listener`.
    pub fn start(listener: TcpListener, config: ServerConfig) -> io::Result<Server> {
        Server::start_inner(listener, config, None)
    }

    /// Binds `addr` and starts the server's thread with an event handler; see
    /// [`Server::start_with_handler`].
    pub fn bind_with_handler<F>(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<Server>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        let listener = TcpListener::bind(addr)?;
        Server::start_with_handler(listener, config, handler)
    }

    /// Serves connections accepted from `listener`, handing every event to `handler`
    /// on the server's own thread instead of queueing it. What the handler does
    /// through its [`Responder`] (send, broadcast, look up) happens at once, without
    /// the round trip to the server's thread that a [`ServerHandle`] call costs: the
    /// way to answer messages at full speed. Events are not queued, so
    /// [`Server::recv`] and [`Server::events`] yield nothing and end when the server
    /// stops: a way to wait for it.
    ///
    /// The handler runs between the server's reads and writes for every connection:
    /// keep it short and never block in it (hand slow work to a thread of your own,
    /// with a [`ServerHandle`]), or every client waits. A panic in the handler stops
    /// the server.
    pub fn start_with_handler<F>(
        listener: TcpListener,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<Server>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        Server::start_inner(listener, config, Some(Box::new(handler)))
    }

    fn start_inner(
        listener: TcpListener,
        config: ServerConfig,
        handler: Option<EventHandler>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let mut listener = MioListener::from_std(listener);
        let hub = Hub::new(config.core.clone(), Instant::now())
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (commands_tx, commands) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let event_loop = EventLoop {
            poll,
            listener,
            hub,
            commands,
            events: events_tx,
            handler,
            pending: Vec::new(),
            conns: Slab::default(),
            outgoing: Arc::default(),
            serial: 0,
            handshakes: VecDeque::new(),
            stalls: VecDeque::new(),
            ready: VecDeque::new(),
            accept_paused: None,
            config,
        };
        thread::Builder::new()
            .name("heartline-server".into())
            .spawn(move || event_loop.run())?;
        Ok(Server {
            addr,
            handle: ServerHandle {
                tx: commands_tx,
                waker,
            },
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
#[derive(Clone)]
pub struct ServerHandle {
    tx: Sender<Command<LoopChannels>>,
    waker: Arc<Waker>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
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
        if self.tx.send(Command::Shutdown).is_ok() {
            let _ = self.waker.wake();
        }
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(SyncSender<T>) -> Command<LoopChannels>,
    ) -> Result<T, ServerError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(make(reply))
            .map_err(|_| ServerError::Stopped)?;
        // A loop that cannot be woken has stopped: its end of the channel is gone, and
        // with it the reply sender, so the answer below fails rather than hangs.
        let _ = self.waker.wake();
        answer.recv().map_err(|_| ServerError::Stopped)
    }
}

/// The listener's token; connections use their slab index.
const LISTENER: Token = Token(usize::MAX);
/// The handles' wake-up token.
const WAKER: Token = Token(usize::MAX - 1);
/// Most messages read from one connection before the others get their turn.
const READ_BATCH: usize = 64;
/// Readiness events taken from the poller at once.
const EVENTS: usize = 1024;
/// Full batches of readiness events read at most before deadlines are handled again.
const CATCH_UP_BATCHES: usize = 64;
/// How long accepting pauses after an error such as running out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// Request head bytes read at a time.
const HEAD_CHUNK: usize = 1024;

/// The loop's channel types: outboxes that queue into the loop's own list.
#[derive(Debug)]
struct LoopChannels;

impl Channels for LoopChannels {
    type Outbox = LoopOutbox;
    type Reply<T> = SyncSender<T>;
}

/// What the hub decided for connections, in order, until the loop executes it.
type Outgoing = Arc<Mutex<Vec<(Slot, Out)>>>;

/// A connection's slot: its slab index and the serial that tells it apart from later
/// connections in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    index: usize,
    serial: u64,
}

/// The hub's outbox for one connection: appends to the loop's list.
#[derive(Debug)]
struct LoopOutbox {
    slot: Slot,
    outgoing: Outgoing,
}

impl Outbox for LoopOutbox {
    fn push(&self, out: Out) {
        lock(&self.outgoing).push((self.slot, out));
    }
}

/// A non-blocking socket that remembers when a read emptied it, so that tungstenite's
/// next read says "would block" without a system call; a readiness event clears that.
#[derive(Debug)]
struct Io {
    stream: TcpStream,
    drained: bool,
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained {
            return Err(ErrorKind::WouldBlock.into());
        }
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    // A short read took everything there was (a zero-length buffer aside).
                    self.drained = n < buf.len();
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drained = e.kind() == ErrorKind::WouldBlock;
                    return Err(e);
                }
            }
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                written => return written,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One accepted socket.
struct Conn {
    serial: u64,
    phase: Phase,
}

enum Phase {
    /// Reading the request head.
    Head { io: Io, buf: Vec<u8> },
    /// Writing an HTTP answer (a rejection, a page, or the 101), then `then`.
    Answer {
        io: Io,
        bytes: Vec<u8>,
        written: usize,
        then: Then,
    },
    /// An open WebSocket connection.
    Open(Box<Open>),
    /// Moved out while changing phase; never seen outside that.
    Gone,
}

/// What follows an HTTP answer.
enum Then {
    /// Close the socket.
    Close,
    /// Open the WebSocket connection: the client's name, and the bytes read after
    /// the request head.
    Open(Option<String>, Vec<u8>),
}

struct Open {
    ws: WebSocket<Io>,
    conn: ConnId,
    /// Items waiting while the socket takes no more.
    queue: VecDeque<Out>,
    /// Since when the socket has taken no more, if it has not.
    stalled: Option<Instant>,
    /// Payload bytes of messages handed to tungstenite but not yet on the wire.
    unflushed: usize,
}

/// How an open connection's loop turn ended.
enum Ended {
    /// Still open.
    No,
    /// Over, with the error that ended it, if any.
    Yes(Option<String>),
}

/// Connections by slab index.
#[derive(Default)]
struct Slab {
    entries: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, conn: Conn) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.entries[index] = Some(conn);
                index
            }
            None => {
                self.entries.push(Some(conn));
                self.entries.len() - 1
            }
        }
    }

    fn get(&mut self, slot: Slot) -> Option<&mut Conn> {
        self.entries
            .get_mut(slot.index)
            .and_then(Option::as_mut)
            .filter(|c| c.serial == slot.serial)
    }

    fn remove(&mut self, index: usize) -> Option<Conn> {
        let conn = self.entries.get_mut(index)?.take()?;
        self.free.push(index);
        Some(conn)
    }
}

/// The server's thread.
struct EventLoop {
    poll: Poll,
    listener: MioListener,
    hub: Hub<LoopChannels>,
    commands: Receiver<Command<LoopChannels>>,
    events: Sender<ServerEvent>,
    /// The application's event handler, if it gave one: events go to it, not `events`.
    handler: Option<EventHandler>,
    /// Events the hub produced and nobody has seen yet, in order.
    pending: Vec<ServerEvent>,
    conns: Slab,
    outgoing: Outgoing,
    serial: u64,
    /// Handshake deadlines, in the order they were set (all equally long).
    handshakes: VecDeque<(Instant, Slot)>,
    /// Write-stall deadlines, in the order they were set (all equally long), with the
    /// time the stall began.
    stalls: VecDeque<(Instant, Slot, Instant)>,
    /// Connections that stopped reading at [`READ_BATCH`] with more to read.
    ready: VecDeque<Slot>,
    /// Accepting resumes at this time after an error.
    accept_paused: Option<Instant>,
    config: ServerConfig,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut outs = Vec::new();
        // Readiness may be waiting beyond the last batch: then what already arrived is
        // read before any deadline is handled, so a loop that fell behind does not
        // evict clients whose answers sit unread in their sockets.
        let mut behind = false;
        let mut catching_up = 0;
        loop {
            let wait = loop {
                let pending = &mut self.pending;
                let wait = if behind {
                    self.hub.dispatch(|e| pending.push(e));
                    Wait::Until(Instant::now())
                } else {
                    self.hub.poll(|e| pending.push(e))
                };
                if !self.pending.is_empty() {
                    // What a handler sends in answer is dispatched on the next round.
                    self.deliver();
                    continue;
                }
                std::mem::swap(&mut outs, &mut *lock(&self.outgoing));
                if outs.is_empty() {
                    break wait;
                }
                let now = Instant::now();
                for (slot, out) in outs.drain(..) {
                    self.execute(now, slot, out);
                }
            };
            let deadline = match wait {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            let deadline = [
                deadline,
                self.handshakes.front().map(|h| h.0),
                self.stalls.front().map(|s| s.0),
                self.accept_paused,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = if self.ready.is_empty() {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                // The poller itself failed: nothing more can be served.
                break;
            }
            // A full batch: more may be waiting. Bounded, so that a flood of traffic
            // cannot hold the deadlines off for long.
            catching_up = if events.iter().count() == EVENTS {
                catching_up + 1
            } else {
                0
            };
            behind = (1..=CATCH_UP_BATCHES).contains(&catching_up);
            let now = Instant::now();
            for _ in 0..self.ready.len() {
                if let Some(slot) = self.ready.pop_front() {
                    self.readable(now, slot);
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => self.commands(now),
                    Token(index) => {
                        let Some(serial) = self
                            .conns
                            .entries
                            .get(index)
                            .and_then(|c| c.as_ref().map(|c| c.serial))
                        else {
                            continue;
                        };
                        let slot = Slot { index, serial };
                        if event.is_writable() {
                            self.writable(now, slot);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(now, slot);
                        }
                    }
                }
            }
            self.expire(now);
        }
    }

    /// Hands the pending events to the handler, or queues them for the application.
    fn deliver(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        match &mut self.handler {
            Some(handler) => {
                let mut responder = Responder {
                    hub: &mut self.hub,
                    now: Instant::now(),
                };
                for event in pending.drain(..) {
                    handler(event, &mut responder);
                }
            }
            // An application that dropped its server reads no events: sends may fail.
            None => pending.drain(..).for_each(|e| drop(self.events.send(e))),
        }
        // Keep the room for next time.
        self.pending = pending;
    }

    /// Feeds the queued commands from handles.
    fn commands(&mut self, now: Instant) {
        while let Ok(command) = self.commands.try_recv() {
            let pending = &mut self.pending;
            self.hub.handle(now, command, |e| pending.push(e));
        }
    }

    /// Accepts every waiting connection.
    fn accept(&mut self, now: Instant) {
        if self.accept_paused.is_some_and(|until| now < until) {
            return;
        }
        self.accept_paused = None;
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // the listener is fine. Try again shortly rather than spin.
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            // Small messages (pings, chat) go out at once, as browsers and Node expect.
            let _ = stream.set_nodelay(true);
            self.serial += 1;
            let serial = self.serial;
            let index = self.conns.insert(Conn {
                serial,
                phase: Phase::Head {
                    io: Io {
                        stream,
                        drained: false,
                    },
                    buf: Vec::new(),
                },
            });
            let slot = Slot { index, serial };
            let registered = match self.conns.get(slot).map(|c| &mut c.phase) {
                Some(Phase::Head { io, .. }) => self.poll.registry().register(
                    &mut io.stream,
                    Token(index),
                    Interest::READABLE | Interest::WRITABLE,
                ),
                _ => Ok(()),
            };
            if registered.is_err() {
                self.conns.remove(index);
                continue;
            }
            self.handshakes
                .push_back((now + self.config.core.handshake_timeout, slot));
        }
    }

    /// Handles deadlines that passed: handshakes too slow, writes stalled too long,
    /// accepting paused.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, slot)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            let in_handshake = self
                .conns
                .get(slot)
                .is_some_and(|c| !matches!(c.phase, Phase::Open(_)));
            if in_handshake {
                self.drop_conn(slot.index);
            }
        }
        while let Some(&(deadline, slot, since)) = self.stalls.front() {
            if deadline > now {
                break;
            }
            self.stalls.pop_front();
            let stalled = match self.conns.get(slot).map(|c| &c.phase) {
                Some(Phase::Open(open)) => open.stalled == Some(since),
                _ => false,
            };
            if stalled {
                let error = "write timed out: the peer is not reading".to_owned();
                self.end(now, slot, Some(error));
            }
        }
        if self.accept_paused.is_some_and(|until| until <= now) {
            self.accept(now);
        }
    }

    fn readable(&mut self, now: Instant, slot: Slot) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Head { io, buf } => {
                io.drained = false;
                match read_head(io, buf) {
                    Ok(None) => {}
                    Ok(Some((request, tail))) => self.answer(now, slot, &request, tail),
                    Err(Some(response)) => self.respond(slot, response.to_bytes(), Then::Close),
                    Err(None) => self.drop_conn(slot.index),
                }
            }
            // The answer is being written; what the client sends meanwhile waits.
            Phase::Answer { io, .. } => io.drained = false,
            Phase::Open(open) => {
                open.ws.get_mut().drained = false;
                self.read_open(now, slot);
            }
            Phase::Gone => {}
        }
    }

    fn writable(&mut self, now: Instant, slot: Slot) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Head { .. } | Phase::Gone => {}
            Phase::Answer { .. } => self.write_answer(now, slot),
            Phase::Open(open) if open.stalled.is_some() => {
                if let Ended::Yes(error) = resume(open, &mut self.hub, now) {
                    self.end(now, slot, error);
                }
            }
            Phase::Open(_) => {}
        }
    }

    /// A complete request head: decide the answer.
    fn answer(&mut self, now: Instant, slot: Slot, request: &Request, tail: Vec<u8>) {
        if !wire::is_upgrade(request) {
            if let Some(response) = self.config.http.as_ref().and_then(|h| h(request)) {
                return self.respond(slot, response.to_bytes(), Then::Close);
            }
        }
        let (bytes, then) = match self.hub.upgrade(now, request) {
            Verdict::Reject(response) => (response.to_bytes(), Then::Close),
            // The core accepted the target; a request that breaks the WebSocket
            // handshake rules (a plain GET, no key, wrong version) still gets 400.
            Verdict::Accept(name) => match wire::upgrade_response(request) {
                Ok(upgrade) => (upgrade, Then::Open(name, tail)),
                Err(response) => (response.to_bytes(), Then::Close),
            },
        };
        self.respond(slot, bytes, then);
    }

    /// Starts writing an HTTP answer.
    fn respond(&mut self, slot: Slot, bytes: Vec<u8>, then: Then) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let io = match std::mem::replace(&mut conn.phase, Phase::Gone) {
            Phase::Head { io, .. } | Phase::Answer { io, .. } => io,
            other => {
                conn.phase = other;
                return;
            }
        };
        conn.phase = Phase::Answer {
            io,
            bytes,
            written: 0,
            then,
        };
        self.write_answer(Instant::now(), slot);
    }

    /// Writes what the socket takes of an HTTP answer; once all is written, closes or
    /// opens the connection.
    fn write_answer(&mut self, now: Instant, slot: Slot) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let Phase::Answer {
            io, bytes, written, ..
        } = &mut conn.phase
        else {
            return;
        };
        while *written < bytes.len() {
            match io.stream.write(&bytes[*written..]) {
                Ok(0) => return self.drop_conn(slot.index),
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(slot.index),
            }
        }
        let Phase::Answer { io, then, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        match then {
            Then::Close => {
                let _ = io.stream.shutdown(std::net::Shutdown::Write);
                self.drop_conn(slot.index);
            }
            Then::Open(name, tail) => {
                let outbox = LoopOutbox {
                    slot,
                    outgoing: self.outgoing.clone(),
                };
                let Ok(id) = self.hub.open(now, name, outbox) else {
                    // Shutting down or full: the socket closes without more ado.
                    return self.drop_conn(slot.index);
                };
                let config = self.config.buffers.websocket_config(&self.config.core);
                let mut io = io;
                // Frames may have come with the request head, or since.
                io.drained = false;
                let ws = WebSocket::from_partially_read(io, tail, Role::Server, Some(config));
                conn.phase = Phase::Open(Box::new(Open {
                    ws,
                    conn: id,
                    queue: VecDeque::new(),
                    stalled: None,
                    unflushed: 0,
                }));
                self.read_open(now, slot);
            }
        }
    }

    /// Reads what an open connection has, up to [`READ_BATCH`] messages.
    fn read_open(&mut self, now: Instant, slot: Slot) {
        let Some(Conn {
            phase: Phase::Open(open),
            ..
        }) = self.conns.get(slot)
        else {
            return;
        };
        let conn = open.conn;
        let mut replied = false;
        for _ in 0..READ_BATCH {
            match open.ws.read() {
                Ok(message) => {
                    replied |= matches!(message, WsMessage::Ping(_));
                    let pending = &mut self.pending;
                    let message = wire::unshare(message, open.ws.get_config());
                    let frame = Command::Frame(conn, message);
                    self.hub.handle(now, frame, |e| pending.push(e));
                }
                Err(e) if wire::would_block(&e) => {
                    // tungstenite queued a Pong: put it on the wire now.
                    if replied && open.stalled.is_none() {
                        if let Err(e) = open.ws.flush() {
                            if !wire::would_block(&e) {
                                return self.end(now, slot, wire::end_reason(e));
                            }
                            stall(open, now, slot, &mut self.stalls, self.config.write_timeout);
                        }
                    }
                    return;
                }
                Err(e) => return self.end(now, slot, wire::end_reason(e)),
            }
        }
        // More may be waiting: come back after the others had their turn.
        self.ready.push_back(slot);
    }

    /// Executes one item the hub queued for a connection.
    fn execute(&mut self, now: Instant, slot: Slot, out: Out) {
        let Some(Conn {
            phase: Phase::Open(open),
            ..
        }) = self.conns.get(slot)
        else {
            return;
        };
        match out {
            Out::Evict(code, reason) => {
                // Only what the socket takes at once: the peer may not be reading.
                if open.stalled.is_none() {
                    let _ = open.ws.close(Some(wire::close_frame(code, reason)));
                    let _ = open.ws.flush();
                }
                // The core has already forgotten the connection.
                self.drop_conn(slot.index);
            }
            Out::Abort => self.drop_conn(slot.index),
            out if open.stalled.is_some() => open.queue.push_back(out),
            out => match write(open, &mut self.hub, now, out) {
                Ok(()) => {}
                Err(e) if wire::would_block(&e) => {
                    stall(open, now, slot, &mut self.stalls, self.config.write_timeout);
                }
                Err(e) => self.end(now, slot, wire::end_reason(e)),
            },
        }
    }

    /// An open connection ended: forget it and tell the hub.
    fn end(&mut self, now: Instant, slot: Slot, error: Option<String>) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let Phase::Open(open) = &conn.phase else {
            return self.drop_conn(slot.index);
        };
        let id = open.conn;
        self.drop_conn(slot.index);
        let pending = &mut self.pending;
        self.hub
            .handle(now, Command::Ended(id, error), |e| pending.push(e));
    }

    /// Deregisters and closes a socket.
    fn drop_conn(&mut self, index: usize) {
        let Some(mut conn) = self.conns.remove(index) else {
            return;
        };
        let stream = match &mut conn.phase {
            Phase::Head { io, .. } | Phase::Answer { io, .. } => &mut io.stream,
            Phase::Open(open) => &mut open.ws.get_mut().stream,
            Phase::Gone => return,
        };
        // Closing the socket removes it from the poller anyway.
        let _ = self.poll.registry().deregister(stream);
    }
}

/// Writes one item to an open connection; a message that went out is reported as
/// written. `WouldBlock` means tungstenite holds the frame until the socket takes it.
fn write(
    open: &mut Open,
    hub: &mut Hub<LoopChannels>,
    now: Instant,
    out: Out,
) -> tungstenite::Result<()> {
    match out {
        Out::Ping(payload) => open.ws.send(wire::ping(&payload)),
        Out::Send(message) => {
            let len = message.len();
            let sent = open.ws.send(message);
            match &sent {
                Ok(()) => hub.handle(now, Command::Written(open.conn, len), drop),
                Err(e) if wire::would_block(e) => open.unflushed += len,
                Err(_) => {}
            }
            sent
        }
        Out::Close(code, reason) => open.ws.close(Some(wire::close_frame(code, reason))),
        // Handled by the caller.
        Out::Evict(..) | Out::Abort => Ok(()),
    }
}

/// The socket takes data again: flush, report what went out, and write what waited.
fn resume(open: &mut Open, hub: &mut Hub<LoopChannels>, now: Instant) -> Ended {
    match open.ws.flush() {
        Ok(()) => {}
        Err(e) if wire::would_block(&e) => return Ended::No,
        Err(e) => return Ended::Yes(wire::end_reason(e)),
    }
    open.stalled = None;
    if open.unflushed > 0 {
        let written = Command::Written(open.conn, std::mem::take(&mut open.unflushed));
        hub.handle(now, written, drop);
    }
    while let Some(out) = open.queue.pop_front() {
        match write(open, hub, now, out) {
            Ok(()) => {}
            Err(e) if wire::would_block(&e) => {
                open.stalled = Some(now);
                return Ended::No;
            }
            Err(e) => return Ended::Yes(wire::end_reason(e)),
        }
    }
    Ended::No
}

fn stall(
    open: &mut Open,
    now: Instant,
    slot: Slot,
    stalls: &mut VecDeque<(Instant, Slot, Instant)>,
    timeout: Duration,
) {
    if open.stalled.is_none() {
        open.stalled = Some(now);
        stalls.push_back((now + timeout, slot, now));
    }
}

/// Reads a request head: `Ok(None)` needs more bytes, `Ok(Some(_))` is the request and
/// the bytes after it, `Err(Some(_))` an answer to send, `Err(None)` means drop the
/// connection silently (closed, IO error).
#[allow(clippy::type_complexity)]
fn read_head(
    io: &mut Io,
    buf: &mut Vec<u8>,
) -> Result<Option<(Request, Vec<u8>)>, Option<HttpResponse>> {
    let mut chunk = [0u8; HEAD_CHUNK];
    loop {
        let n = match io.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        match wire::parse_head(buf) {
            Head::Partial => {}
            Head::Complete(request, len) => {
                let tail = buf.split_off(len);
                return Ok(Some((*request, tail)));
            }
            Head::Invalid(status) => {
                return Err(Some(HttpResponse::text(status, "bad request\n")));
            }
        }
    }
}
