//! A WebSocket server on `std::net`: pings its clients, evicts the silent ones, keeps a
//! registry of clients by name and validates upgrade requests before answering 101.
//!
//! # Design
//!
//! One thread runs an event loop (epoll on Linux, kqueue on the BSDs and macOS, through
//! `mio`) over non-blocking sockets, and owns the core's server machine through the
//! [`Hub`](crate::hub::Hub). The core's single deadline ([`Hub::deadline`](crate::hub::Hub::deadline)) is the loop's wait timeout:
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

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::Duration;

use heartline_core::{ConnId, Message};

use heartline_tungstenite::front::event_loop::{EventLoop, Remote};
use heartline_tungstenite::front::{self, FrontChannels, Replies, Sink};
pub use heartline_tungstenite::hub::{
    ClientInfo, ClusterClient, Directory, HttpHandler, Sent, ServerConfig, ServerError, ServerEvent,
};
use heartline_tungstenite::hub::{Request, Target};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse, Request as HttpRequest};

/// How the event loop answers handles: std one-shot channels.
#[derive(Debug)]
pub struct StdReplies;

impl Replies for StdReplies {
    type Reply<T> = SyncSender<T>;
}

/// What an event handler may do on the server's thread (see
/// [`Server::start_with_handler`]): what a [`ServerHandle`] does, at once and without
/// waiting for an answer from another thread.
pub type Responder<'a> = front::Responder<'a, StdReplies>;

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
    /// Binds `addr` (with heartline's listen backlog,
    /// [`LISTEN_BACKLOG`](heartline_tungstenite::net::LISTEN_BACKLOG)) and starts the
    /// server's thread.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = heartline_tungstenite::net::listener(addr.to_socket_addrs()?)?;
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
        let listener = heartline_tungstenite::net::listener(addr.to_socket_addrs()?)?;
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
        handler: Option<front::Handler<StdReplies>>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let (events_tx, events) = mpsc::channel();
        // The loop's thread keeps a sender for its life: the event channel ends when
        // the loop does (a handler gets every event, and nothing is queued).
        let queue = events_tx.clone();
        // An application that dropped its server reads no events: sends may fail.
        let sink = Sink::new(handler, move |e| drop(queue.send(e)));
        let (event_loop, remote) = EventLoop::new(listener, config, sink)?;
        thread::Builder::new()
            .name("heartline-server".into())
            .spawn(move || {
                event_loop.run();
                drop(events_tx);
            })?;
        Ok(Server {
            addr,
            handle: ServerHandle { remote },
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
    remote: Remote<StdReplies>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Sends `message` to the client registered as `name`: in a cluster, wherever it
    /// is ([`Sent::Away`]: the answer comes as a [`ServerEvent::Cluster`]).
    pub fn send(&self, name: &str, message: impl Into<Message>) -> Result<Sent, ServerError> {
        let target = Target::Name(name.to_owned());
        self.ask(|reply| Request::Send(target, message.into(), reply))?
    }

    /// Sends `message` to connection `conn`.
    pub fn send_to(&self, conn: ConnId, message: impl Into<Message>) -> Result<(), ServerError> {
        self.ask(|reply| Request::Send(Target::Conn(conn), message.into(), reply))?
            .map(drop)
    }

    /// Sends `message` to every open connection (in a cluster, on every node); returns
    /// how many on this server took it.
    pub fn broadcast(&self, message: impl Into<Message>) -> Result<usize, ServerError> {
        self.ask(|reply| Request::Broadcast(message.into(), None, reply))
    }

    /// [`ServerHandle::broadcast`] to everyone but `except` (the sender, in a chat).
    pub fn broadcast_except(
        &self,
        except: ConnId,
        message: impl Into<Message>,
    ) -> Result<usize, ServerError> {
        self.ask(|reply| Request::Broadcast(message.into(), Some(except), reply))
    }

    /// The client registered as `name`.
    pub fn lookup(&self, name: &str) -> Result<Option<ClientInfo>, ServerError> {
        self.ask(|reply| Request::Lookup(name.to_owned(), reply))
    }

    /// Every registered client.
    pub fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.ask(Request::Clients)
    }

    /// Every client of the cluster, as this node knows them (`None` without a
    /// cluster).
    pub fn cluster_clients(&self) -> Result<Option<Vec<ClusterClient>>, ServerError> {
        self.ask(Request::ClusterClients)
    }

    /// Starts a graceful shutdown: every client gets a Close frame with 1001, new
    /// upgrades are refused, and the server stops once every connection has ended
    /// (the core aborts those that do not finish the close handshake in time).
    pub fn shutdown(&self) {
        // A stopped server needs no shutdown.
        let _ = self.remote.send(Request::Shutdown);
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(SyncSender<T>) -> Request<FrontChannels<StdReplies>>,
    ) -> Result<T, ServerError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.remote.send(make(reply))?;
        // A loop that stops drops the request, and with it the reply sender: the
        // answer below fails rather than hangs.
        answer.recv().map_err(|_| ServerError::Stopped)
    }
}
