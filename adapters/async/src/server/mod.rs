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
//! decided for the connection, from its mailbox (pings, messages, close, eviction).
//! There is no other timer: a handshake that takes too long and a write that cannot
//! finish are the core's deadlines too, and end with an eviction in the mailbox.
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

mod conn;
mod listen;

pub use listen::accept_loop;
#[cfg(feature = "async-std")]
pub use listen::async_std;
#[cfg(feature = "smol")]
pub use listen::smol;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite};
use heartline_core::{ConnId, Message};

use crate::handoff::Nudge;
use heartline_tungstenite::hub::{self, Hub, Input, MailboxOutbox, Request, Target, Wait};
pub use heartline_tungstenite::hub::{
    ClientInfo, HttpHandler, ServerConfig, ServerError, ServerEvent,
};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse, Request as HttpRequest};

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
        let hub =
            Hub::new(&config, now).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
    tx: Sender<Request<AsyncChannels>>,
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
    /// Runs one accepted connection to its end: reads the request head (the core drops
    /// the socket if the upgrade takes longer than its handshake timeout), answers plain
    /// HTTP or a rejected upgrade with a real status, or upgrades and serves the
    /// WebSocket.
    pub async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        conn::serve(stream, &self.shared, &self.config).await;
    }

    /// Sends `message` to the client registered as `name`.
    pub async fn send(&self, name: &str, message: impl Into<Message>) -> Result<(), ServerError> {
        let target = Target::Name(name.to_owned());
        let message = message.into();
        self.ask(|reply| Request::Send(target, message, reply))
            .await?
    }

    /// Sends `message` to connection `conn`.
    pub async fn send_to(
        &self,
        conn: ConnId,
        message: impl Into<Message>,
    ) -> Result<(), ServerError> {
        let message = message.into();
        self.ask(|reply| Request::Send(Target::Conn(conn), message, reply))
            .await?
    }

    /// Sends `message` to every registered client; returns how many took it.
    pub async fn broadcast(&self, message: impl Into<Message>) -> Result<usize, ServerError> {
        let message = message.into();
        self.ask(|reply| Request::Broadcast(message, reply)).await
    }

    /// The client registered as `name`.
    pub async fn lookup(&self, name: &str) -> Result<Option<ClientInfo>, ServerError> {
        self.ask(|reply| Request::Lookup(name.to_owned(), reply))
            .await
    }

    /// Every registered client.
    pub async fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.ask(Request::Clients).await
    }

    /// Starts a graceful shutdown: every client gets a Close frame with 1001, new
    /// upgrades are refused, and the driver ends once every connection has ended (the
    /// core aborts those that do not finish the close handshake in time).
    pub fn shutdown(&self) {
        // A stopped server needs no shutdown.
        let _ = self.tx.try_send(Request::Shutdown);
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
        make: impl FnOnce(Tx<T>) -> Request<AsyncChannels>,
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

    /// Feeds what a connection observed.
    fn feed(&self, conn: ConnId, input: Input) {
        self.with(|hub, now, emit| hub.input(now, conn, input, emit));
    }

    /// Carries out one of the application's requests.
    fn request(&self, request: Request<AsyncChannels>) {
        self.with(|hub, now, _| hub.request(now, request));
    }
}

/// The driver task: handles the one deadline and the application's requests.
struct Driver {
    /// Dropped when the driver ends, which tells [`ServerHandle::stopped`].
    _done: Sender<()>,
    shared: Arc<Shared>,
    inbox: Receiver<Request<AsyncChannels>>,
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
                Some(Ok(request)) => {
                    shared.request(request);
                    // Take what else is queued: one pass for a burst.
                    while let Ok(request) = inbox.try_recv() {
                        shared.request(request);
                    }
                }
                // A deadline came or a connection changed the hub: the loop looks.
                None => {}
            }
        }
        self.inbox.close();
    }
}
