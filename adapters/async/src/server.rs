//! A WebSocket server for async code: pings its clients, evicts the silent ones, keeps
//! a registry of clients by name and validates upgrade requests before answering 101.
//!
//! # Design
//!
//! The core's server machine sits behind one lock with its single deadline: one
//! `async-io` timer, in the **driver task**, drives the pings and evictions of every
//! connection, however many there are, and the driver carries out the application's
//! requests. Each connection is a task that owns its socket: a reading loop feeds every
//! frame to the core itself (no hop through the driver; it is woken only if the next
//! deadline moved earlier than its timer), and a writing loop executes what the core
//! decided for the connection, from its mailbox (pings, messages, close, eviction). The
//! only other timer is the handshake timeout, which lives only while a request head is
//! being read.
//!
//! Memory: about 4.5 KB per connection with the default [`Buffers`] (measured with the
//! `server` example on smol and 10,000 clients, `benches/load.sh`). For the most
//! connections per core, `heartline-blocking`'s server runs every connection on one
//! event-loop thread at about 2 KB each; it fits beside an async application too (its handle's
//! calls wait only for that thread's answer).
//!
//! The server works on any `futures-io` stream. Without a runtime feature you run the
//! pieces yourself:
//!
//! ```no_run
//! # fn spawn<F: std::future::Future + Send + 'static>(_: F) {}
//! # async fn example(listener: smol::net::TcpListener) -> std::io::Result<()> {
//! use heartline_async::server::{Server, ServerConfig};
//!
//! let (server, driver) = Server::new(ServerConfig::default())?;
//! spawn(driver);
//! let handle = server.handle();
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     spawn(handle.clone().serve(stream));
//! }
//! # }
//! ```
//!
//! With the `smol` or `async-std` feature, [`listen`](crate::server::smol::listen) does
//! all of that, and serves each connection as a [`TcpStream`](crate::TcpStream), which
//! spares a read of an empty socket after each message (wrap an accepted
//! `async_io::Async<std::net::TcpStream>` in one to get the same).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use async_io::Timer;
pub use async_tungstenite::tungstenite::handshake::server::Request;
use async_tungstenite::tungstenite::protocol::Role;
use async_tungstenite::WebSocketStream;
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::StreamExt;
use heartline_core::{ConnId, Message};

use crate::handoff::Nudge;
use heartline_tungstenite::hub::{
    self, Command, Hub, Mailbox, MailboxOutbox, Out, Target, Verdict, Wait,
};
pub use heartline_tungstenite::hub::{ClientInfo, ServerError, ServerEvent};
use heartline_tungstenite::wire::{self, Head};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse};

/// Answers plain HTTP requests (those without `Upgrade: websocket`); `None` lets the
/// server answer (404 for a path it does not serve).
pub type HttpHandler = Arc<dyn Fn(&Request) -> Option<HttpResponse> + Send + Sync>;

/// How the async server runs.
#[derive(Clone, Default)]
pub struct ServerConfig {
    /// The core's configuration: ping interval, idle timeout, path, limits.
    pub core: heartline_core::ServerConfig,
    /// Buffer sizes per connection.
    pub buffers: Buffers,
    /// Answers plain HTTP requests on the same port (a page, a health check).
    pub http: Option<HttpHandler>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("core", &self.core)
            .field("buffers", &self.buffers)
            .field("http", &self.http.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// A server: the event stream and a handle. The driver future returned next to it by
/// [`Server::new`] must run (be spawned) for anything to happen.
///
/// Events wait in an unbounded queue until read: read them ([`Server::next_event`])
/// for as long as the server runs, or memory grows with every event.
#[derive(Debug)]
pub struct Server {
    handle: ServerHandle,
    events: Receiver<ServerEvent>,
}

impl Server {
    /// A server and its driver, the one task that owns the core and its timer. Spawn
    /// the driver, then hand accepted streams to [`ServerHandle::serve`].
    pub fn new(
        config: ServerConfig,
    ) -> io::Result<(
        Server,
        impl std::future::Future<Output = ()> + Send + 'static,
    )> {
        let now = Instant::now();
        let hub = Hub::new(config.core.clone(), now)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (to_driver, inbox) = async_channel::unbounded();
        let (event_tx, events) = async_channel::unbounded();
        let (done_tx, done) = async_channel::bounded(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { hub, armed: None }),
            events: event_tx,
            nudge: Nudge::default(),
        });
        let driver = Driver {
            _done: done_tx,
            shared: shared.clone(),
            inbox,
        };
        let handle = ServerHandle {
            tx: to_driver,
            done,
            config: Arc::new(config),
            shared,
        };
        Ok((Server { handle, events }, driver.run()))
    }

    /// A handle to serve connections, look clients up, send, broadcast and shut down.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the server has shut down and every event was read.
    pub async fn next_event(&self) -> Option<ServerEvent> {
        self.events.recv().await.ok()
    }

    /// The next event if one is ready.
    pub fn try_next_event(&self) -> Option<ServerEvent> {
        self.events.try_recv().ok()
    }
}

/// A cloneable handle to a server.
#[derive(Clone)]
pub struct ServerHandle {
    /// The application's requests, to the driver; closed once every handle is gone.
    tx: Sender<Command<AsyncChannels>>,
    /// Closed when the driver ends: nothing is ever sent on it.
    done: Receiver<()>,
    config: Arc<ServerConfig>,
    /// The hub, which connections feed directly.
    shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Runs one accepted connection to its end: reads the request head (dropping the
    /// socket if it takes longer than the handshake timeout), answers plain HTTP or a
    /// rejected upgrade with a real status, or upgrades and serves the WebSocket.
    pub async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        serve(stream, &self.shared, &self.config).await;
    }

    /// Sends `message` to the client registered as `name`.
    pub async fn send(&self, name: &str, message: impl Into<Message>) -> Result<(), ServerError> {
        let target = Target::Name(name.to_owned());
        let message = message.into();
        self.ask(|reply| Command::Send(target, message, reply))
            .await?
    }

    /// Sends `message` to connection `conn`.
    pub async fn send_to(
        &self,
        conn: ConnId,
        message: impl Into<Message>,
    ) -> Result<(), ServerError> {
        let message = message.into();
        self.ask(|reply| Command::Send(Target::Conn(conn), message, reply))
            .await?
    }

    /// Sends `message` to every registered client; returns how many took it.
    pub async fn broadcast(&self, message: impl Into<Message>) -> Result<usize, ServerError> {
        let message = message.into();
        self.ask(|reply| Command::Broadcast(message, reply)).await
    }

    /// The client registered as `name`.
    pub async fn lookup(&self, name: &str) -> Result<Option<ClientInfo>, ServerError> {
        self.ask(|reply| Command::Lookup(name.to_owned(), reply))
            .await
    }

    /// Every registered client.
    pub async fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.ask(Command::Clients).await
    }

    /// Starts a graceful shutdown: every client gets a Close frame with 1001, new
    /// upgrades are refused, and the driver ends once every connection has ended (the
    /// core aborts those that do not finish the close handshake in time).
    pub fn shutdown(&self) {
        // A stopped server needs no shutdown.
        let _ = self.tx.try_send(Command::Shutdown);
    }

    /// Whether the driver has ended (after a shutdown).
    pub fn is_stopped(&self) -> bool {
        self.done.is_closed()
    }

    /// Waits until the driver has ended (after a shutdown).
    pub async fn stopped(&self) {
        // Nothing is ever sent: this returns when the driver drops its end.
        let _ = self.done.recv().await;
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(Tx<T>) -> Command<AsyncChannels>,
    ) -> Result<T, ServerError> {
        let (reply, answer) = async_channel::bounded(1);
        self.tx
            .send(make(Tx(reply)))
            .await
            .map_err(|_| ServerError::Stopped)?;
        answer.recv().await.map_err(|_| ServerError::Stopped)
    }
}

/// Mailboxes and async-channel replies, for the async server.
#[derive(Debug)]
struct AsyncChannels;

/// An async-channel sender as a one-shot reply.
#[derive(Debug)]
struct Tx<T>(Sender<T>);

impl hub::Channels for AsyncChannels {
    type Outbox = MailboxOutbox;
    type Reply<T> = Tx<T>;
}

impl<T> hub::Reply<T> for Tx<T> {
    fn reply(self, value: T) {
        // Bounded(1) and used once: never full. An asker that went away is ignored.
        let _ = self.0.try_send(value);
    }
}

/// The hub and the deadline the driver's timer is set for, behind one lock: the
/// driver handles the deadlines and the application's requests; connections feed their
/// own frames, writes and ends in, instead of waking the driver for each.
struct Shared {
    state: Mutex<State>,
    events: Sender<ServerEvent>,
    /// Wakes the driver when a connection moved the next deadline earlier than its
    /// timer, or the last connection of a shutdown ended.
    nudge: Nudge,
}

struct State {
    hub: Hub<AsyncChannels>,
    /// The deadline the driver waits for (`None`: none).
    armed: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        heartline_tungstenite::lock(&self.state)
    }

    /// Runs `f` on the hub, then dispatches what it decided and wakes the driver if its
    /// timer is now too late (or a shutdown finished).
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Hub<AsyncChannels>, Instant, &mut dyn FnMut(ServerEvent)) -> R,
    ) -> R {
        // Unbounded channels never fill; an application that dropped its server reads
        // no events, so sends may fail.
        let mut emit = |e| drop(self.events.try_send(e));
        let mut state = self.lock();
        let result = f(&mut state.hub, Instant::now(), &mut emit);
        state.hub.dispatch(&mut emit);
        let earlier = match (state.hub.deadline(), state.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wake = earlier || state.hub.is_done();
        drop(state);
        if wake {
            self.nudge.nudge();
        }
        result
    }

    /// Feeds a connection's command.
    fn feed(&self, command: Command<AsyncChannels>) {
        self.with(|hub, now, emit| hub.handle(now, command, emit));
    }
}

/// The driver task: handles the one deadline and the application's requests.
struct Driver {
    /// Dropped when the driver ends, which tells [`ServerHandle::stopped`].
    _done: Sender<()>,
    shared: Arc<Shared>,
    inbox: Receiver<Command<AsyncChannels>>,
}

impl Driver {
    async fn run(self) {
        let mut timer = Timer::never();
        // The deadline `timer` is set to: re-arming an async-io timer costs a message to
        // the reactor thread, so it is re-armed only when the deadline moves.
        let mut timer_at = None;
        let (shared, inbox) = (&*self.shared, &self.inbox);
        let emit = |e| drop(shared.events.try_send(e));
        loop {
            let wait = {
                let mut state = shared.lock();
                let wait = state.hub.poll(emit);
                state.armed = match wait {
                    Wait::Until(deadline) => Some(deadline),
                    Wait::Forever | Wait::Stop => None,
                };
                wait
            };
            let deadline = match wait {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            if let Some(deadline) = deadline {
                if timer_at != Some(deadline) {
                    timer.set_at(deadline);
                    timer_at = Some(deadline);
                }
            }
            let command = async { Some(inbox.recv().await) };
            let nudged = async {
                future::poll_fn(|cx| shared.nudge.poll(cx)).await;
                None
            };
            let tick = async {
                if deadline.is_some() {
                    (&mut timer).await;
                    timer_at = None;
                } else {
                    future::pending::<()>().await;
                }
                None
            };
            match future::or(command, future::or(nudged, tick)).await {
                // Every handle is gone: nobody can ask for anything any more.
                Some(Err(_)) => break,
                Some(Ok(command)) => {
                    shared.feed(command);
                    // Take what else is queued: one pass for a burst.
                    while let Ok(command) = inbox.try_recv() {
                        shared.feed(command);
                    }
                }
                // A deadline came or a connection changed the hub: the loop looks.
                None => {}
            }
        }
        self.inbox.close();
    }
}

/// Runs one connection: the handshake, then the read/execute loop.
async fn serve<S>(mut stream: S, shared: &Shared, config: &ServerConfig)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + config.core.handshake_timeout;
    // Boxed: its buffers are freed when it ends instead of staying part of the task's
    // size for the life of the connection.
    let upgraded = future::or(Box::pin(handshake(&mut stream, shared, config)), async {
        Timer::at(deadline).await;
        None
    })
    .await;
    let Some((name, tail)) = upgraded else {
        return;
    };
    let mailbox = Arc::new(Mailbox::default());
    let outbox = MailboxOutbox(mailbox.clone());
    let Ok(conn) = shared.with(|hub, now, _| hub.open(now, name, outbox)) else {
        // Shutting down or full: the socket closes without more ado.
        return;
    };
    let ws_config = config.buffers.websocket_config(&config.core);
    let ws = Box::pin(WebSocketStream::from_partially_read(
        stream,
        tail,
        Role::Server,
        Some(ws_config),
    ))
    .await;
    let error = future::or(run_open(ws, conn, shared, &mailbox), async {
        // An eviction or abort while a write waits on a peer that does not read: drop
        // the socket now. The loop handles them itself when it is not stuck.
        mailbox.killed().await;
        // Let the loop take the Evict or Abort itself if it can (best-effort Close).
        future::yield_now().await;
        None
    })
    .await;
    shared.feed(Command::Ended(conn, error));
}

/// Reads the request head and answers it: plain HTTP, a rejection, or 101. Returns the
/// accepted name and the bytes read past the head.
async fn handshake<S>(
    stream: &mut S,
    shared: &Shared,
    config: &ServerConfig,
) -> Option<(Option<String>, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (request, tail) = match read_head(stream).await {
        Ok(head) => head,
        Err(Some(response)) => return respond(stream, &response).await,
        Err(None) => return None,
    };
    if !wire::is_upgrade(&request) {
        if let Some(response) = config.http.as_ref().and_then(|h| h(&request)) {
            return respond(stream, &response).await;
        }
    }
    let name = match shared.with(|hub, now, _| hub.upgrade(now, &request)) {
        Verdict::Accept(name) => name,
        Verdict::Reject(response) => return respond(stream, &response).await,
    };
    // The core accepted the target; a request that breaks the WebSocket handshake
    // rules (a plain GET, no key, wrong version) still gets 400.
    let upgrade = match wire::upgrade_response(&request) {
        Ok(upgrade) => upgrade,
        Err(response) => return respond(stream, &response).await,
    };
    stream.write_all(&upgrade).await.ok()?;
    stream.flush().await.ok()?;
    Some((name, tail))
}

/// Reads the request head. `Err(Some(_))` is an answer to send, `Err(None)` means drop
/// the connection silently (IO error, end of stream).
async fn read_head<S>(stream: &mut S) -> Result<(Request, Vec<u8>), Option<HttpResponse>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            buf.reserve(1024);
        }
        buf.resize(buf.capacity(), 0);
        let read = stream.read(&mut buf[len..]).await;
        buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
        match wire::parse_head(&buf) {
            Head::Partial => {}
            Head::Complete(request, len) => return Ok((*request, buf.split_off(len))),
            Head::Invalid(status) => {
                return Err(Some(HttpResponse::text(status, "bad request\n")));
            }
        }
    }
}

/// Writes a plain HTTP answer and closes; the connection is done (`None`).
async fn respond<S, T>(stream: &mut S, response: &HttpResponse) -> Option<T>
where
    S: AsyncWrite + Unpin,
{
    let _ = stream.write_all(&response.to_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
    None
}

/// The open connection: a reading loop and a writing loop, side by side in one task,
/// until either ends; returns the IO error that ended it, if any.
///
/// Neither loop is ever cancelled half-way, so the socket's readiness registration
/// survives every write: a ping costs its write and the reads of its pong, no more.
async fn run_open<S>(
    ws: WebSocketStream<S>,
    conn: ConnId,
    shared: &Shared,
    mailbox: &Mailbox,
) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = *ws.get_config();
    let (mut tx, mut rx) = ws.split();
    let reading = async {
        loop {
            match rx.next().await {
                None => return None,
                Some(Err(e)) => return wire::end_reason(e),
                // A Ping makes tungstenite queue a Pong, which it writes on the next
                // poll of the stream: at once, as the loop comes round.
                Some(Ok(message)) => {
                    let message = wire::unshare(message, &config);
                    shared.feed(Command::Frame(conn, message));
                }
            }
        }
    };
    let writing = async {
        // `None` from the mailbox: the driver forgot the connection or stopped, and
        // nothing will ever be decided for this socket.
        while let Some(out) = mailbox.next().await {
            let sent = match out {
                Out::Ping(payload) => tx.send(wire::ping(&payload)).await,
                Out::Send(message) => {
                    let len = message.len();
                    let sent = tx.send(message).await;
                    if sent.is_ok() {
                        shared.feed(Command::Written(conn, len));
                    }
                    sent
                }
                Out::Close(code, reason) => tx.close(Some(wire::close_frame(code, reason))).await,
                Out::Evict(code, reason) => {
                    // Only what the socket takes at once: the peer may not be reading.
                    let close = tx.close(Some(wire::close_frame(code, reason)));
                    let _ = future::poll_once(close).await;
                    return None;
                }
                Out::Abort => return None,
            };
            if let Err(e) = sent {
                return wire::end_reason(e);
            }
        }
        None
    };
    future::or(writing, reading).await
}

/// Accepts connections with `accept` and hands each to `spawn` (which should spawn
/// [`ServerHandle::serve`]), until the server has stopped. For runtimes without a
/// feature here: pass your listener's accept and your spawn function.
pub async fn accept_loop<S, A, F>(
    handle: ServerHandle,
    mut accept: A,
    spawn: impl Fn(ServerHandle, S),
) where
    A: FnMut() -> F,
    F: std::future::Future<Output = io::Result<S>>,
{
    loop {
        let accepted = future::or(async { Some(accept().await) }, async {
            handle.stopped().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => spawn(handle.clone(), stream),
            // Out of descriptors or a reset before accept: back off briefly instead
            // of spinning.
            Some(Err(_)) => {
                Timer::after(std::time::Duration::from_millis(5)).await;
            }
            None => break,
        }
    }
}

/// The next connection on `listener`, as heartline's [`TcpStream`](crate::TcpStream)
/// (which spares a read of an empty socket after each burst of messages).
#[cfg(any(feature = "smol", feature = "async-std"))]
async fn accept_tcp(
    listener: std::sync::Arc<async_io::Async<std::net::TcpListener>>,
) -> io::Result<crate::TcpStream> {
    listener.accept().await.map(|(s, _)| s.into())
}

/// Listening and spawning on smol.
#[cfg(feature = "smol")]
pub mod smol {
    use std::future::Future;
    use std::sync::Arc;

    use super::{accept_loop, io, Server, ServerConfig};

    /// Binds `addr`, spawns the driver and an accept loop on smol's global executor,
    /// and returns the server with the address it listens on. The listener closes
    /// once a shutdown has finished.
    pub async fn listen(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        listen_with(addr, config, |task| ::smol::spawn(task).detach()).await
    }

    /// Like [`listen`], on `executor`, which the caller runs (for example with
    /// `smol::block_on(executor.run(...))`). An executor run by the thread that also
    /// drives smol's reactor handles every socket event without waking another thread:
    /// the cheapest way to run a busy server on one core.
    pub async fn listen_on(
        executor: Arc<::smol::Executor<'static>>,
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        listen_with(addr, config, move |task| executor.spawn(task).detach()).await
    }

    async fn listen_with<F>(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
        spawn: F,
    ) -> io::Result<(Server, std::net::SocketAddr)>
    where
        F: Fn(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) + Clone + Send + 'static,
    {
        let listener = ::smol::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (server, driver) = Server::new(config)?;
        spawn(Box::pin(driver));
        let spawn_conn = spawn.clone();
        let listener: Arc<async_io::Async<std::net::TcpListener>> = listener.into();
        let accept = accept_loop(
            server.handle(),
            move || super::accept_tcp(Arc::clone(&listener)),
            move |handle, stream| spawn_conn(Box::pin(handle.serve(stream))),
        );
        spawn(Box::pin(accept));
        Ok((server, local))
    }
}

/// Listening and spawning on async-std.
///
/// async-std is discontinued upstream; this support stays for existing users, new code
/// should prefer smol.
#[cfg(feature = "async-std")]
pub mod async_std {
    use super::{accept_loop, io, Server, ServerConfig};

    /// Binds `addr`, spawns the driver and an accept loop on async-std's executor, and
    /// returns the server with the address it listens on. The listener closes once a
    /// shutdown has finished.
    ///
    /// Deprecated in spirit: async-std is discontinued upstream. It keeps working here
    /// for existing users; new code should use [`smol::listen`](super::smol::listen).
    pub async fn listen(
        addr: impl ::async_std::net::ToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        // Resolved by async-std; the socket itself goes to async-io, the reactor
        // async-std runs on, for heartline's stream.
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
        let mut bound = None;
        for addr in ::async_std::net::ToSocketAddrs::to_socket_addrs(&addr).await? {
            match async_io::Async::<std::net::TcpListener>::bind(addr) {
                Ok(listener) => {
                    bound = Some(listener);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let listener = std::sync::Arc::new(bound.ok_or(last)?);
        let local = listener.get_ref().local_addr()?;
        let (server, driver) = Server::new(config)?;
        ::async_std::task::spawn(driver);
        let accept = accept_loop(
            server.handle(),
            move || super::accept_tcp(std::sync::Arc::clone(&listener)),
            |handle, stream| {
                ::async_std::task::spawn(handle.serve(stream));
            },
        );
        ::async_std::task::spawn(accept);
        Ok((server, local))
    }
}
