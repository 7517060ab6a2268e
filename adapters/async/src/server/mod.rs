//! A WebSocket server for async code: pings its clients, evicts the silent ones, keeps
//! a registry of clients by name and validates upgrade requests before answering 101.
//!
//! # Design
//!
//! One task serves every connection: the server loop of `heartline-blocking`
//! (heartline-tungstenite's `front::event_loop`, one `mio` poller over non-blocking
//! sockets, each registered once, edge-triggered) with the core's single deadline for
//! every connection's pings and evictions. The task sleeps on the runtime's reactor:
//! it registers the poller's descriptor with async-io, which reports it readable
//! whenever sockets have something for the loop, and awaits that or one async-io timer
//! set to the core's deadline. There is no task, timer or buffer per connection: an
//! idle connection costs its socket and about 2 KB (measured with 10,000 clients,
//! `benches/load.sh`), and a ping costs one write and one read, as on the blocking
//! server.
//!
//! [`Server::start`] works on any executor whose tasks may use async-io (smol's,
//! async-std's, or a thread of your own with `async_io::block_on`):
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use heartline_async::server::{Server, ServerConfig, ServerEvent};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
//! let (server, driver) = Server::start(listener, ServerConfig::default())?;
//! smol::spawn(driver).detach();
//! smol::block_on(async {
//!     while let Some(event) = server.next_event().await {
//!         if let ServerEvent::Message { name, message, .. } = event {
//!             println!("{name:?} sent {message:?}");
//!         }
//!     }
//! });
//! # Ok(())
//! # }
//! ```
//!
//! With the `smol` or `async-std` feature, [`listen`](crate::server::smol::listen)
//! binds and spawns in one call.
//!
//! The server speaks `ws://` over TCP; terminate TLS in front of it (a proxy or load
//! balancer) for `wss://`.

mod listen;

#[cfg(feature = "async-std")]
pub use listen::async_std;
#[cfg(feature = "smol")]
pub use listen::smol;
#[cfg(feature = "tokio")]
pub use listen::tokio;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};

use async_channel::{Receiver, Sender};
use heartline_core::{ConnId, Message};

use heartline_tungstenite::front::event_loop::{EventLoop, Remote};

#[cfg(feature = "async-io")]
use crate::runtime::AsyncIo;
use crate::runtime::Runtime;
use heartline_tungstenite::front::{self, FrontChannels, Replies, Sink};
use heartline_tungstenite::hub::{self, Request, Target};
pub use heartline_tungstenite::hub::{
    ClientInfo, ClusterClient, Directory, HttpHandler, Sent, ServerConfig, ServerError, ServerEvent,
};
pub use heartline_tungstenite::wire::{Buffers, HttpResponse, Request as HttpRequest};

/// How the server loop answers the handles: async one-shot replies.
#[derive(Debug)]
pub struct AsyncReplies;

impl Replies for AsyncReplies {
    type Reply<T> = Reply<T>;
}

/// A one-shot answer to a handle's request, awaited by the handle.
#[derive(Debug)]
pub struct Reply<T>(Sender<T>);

impl<T> hub::Reply<T> for Reply<T> {
    fn reply(self, value: T) {
        // Bounded(1) and used once: never full. An asker that went away is ignored.
        let _ = self.0.try_send(value);
    }
}

/// What an event handler may do on the server's task (see
/// [`Server::start_with_handler`]): what a [`ServerHandle`] does, at once and without
/// waiting for an answer.
pub type Responder<'a> = front::Responder<'a, AsyncReplies>;

/// A running server: its event stream and a handle. The driver future returned next
/// to it must run (be spawned) for anything to happen; dropping the server does not
/// stop it: call [`ServerHandle::shutdown`].
///
/// Events wait in an unbounded queue until read: read them ([`Server::next_event`])
/// for as long as the server runs, or memory grows with every event.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    events: Receiver<ServerEvent>,
}

impl Server {
    /// Serves connections accepted from `listener`: returns the server and its
    /// driver, the one task that does all of its IO. Spawn the driver on an executor
    /// whose tasks may use async-io.
    #[cfg(feature = "async-io")]
    pub fn start(
        listener: TcpListener,
        config: ServerConfig,
    ) -> io::Result<(Server, impl Future<Output = ()> + Send + 'static)> {
        Server::start_on::<AsyncIo>(listener, config)
    }

    /// Like [`Server::start`], handing every event to `handler` on the driver's task
    /// instead of queueing it. What the handler does through its [`Responder`] (send,
    /// broadcast, look up) happens at once, without the round trip to the driver that
    /// a [`ServerHandle`] call costs: the way to answer messages at full speed. Events
    /// are not queued: [`Server::next_event`] yields nothing and returns `None` once the
    /// server has stopped.
    ///
    /// The handler runs between the reads and writes of every connection: keep it short
    /// and never block in it, or every client waits.
    #[cfg(feature = "async-io")]
    pub fn start_with_handler<F>(
        listener: TcpListener,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<(Server, impl Future<Output = ()> + Send + 'static)>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        Server::start_on_with_handler::<AsyncIo, F>(listener, config, handler)
    }

    /// Like [`Server::start`], with the driver on runtime `R`: `AsyncIo` or `Tokio`
    /// (see [`runtime`](crate::runtime)). The `tokio` and `smol` helpers of this module
    /// call this and spawn the driver.
    pub fn start_on<R: Runtime>(
        listener: TcpListener,
        config: ServerConfig,
    ) -> io::Result<(Server, impl Future<Output = ()> + Send + 'static)> {
        Server::start_inner::<R>(listener, config, None)
    }

    /// Like [`Server::start_with_handler`], with the driver on runtime `R`.
    pub fn start_on_with_handler<R: Runtime, F>(
        listener: TcpListener,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<(Server, impl Future<Output = ()> + Send + 'static)>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        Server::start_inner::<R>(listener, config, Some(Box::new(handler)))
    }

    fn start_inner<R: Runtime>(
        listener: TcpListener,
        config: ServerConfig,
        handler: Option<front::Handler<AsyncReplies>>,
    ) -> io::Result<(Server, impl Future<Output = ()> + Send + 'static)> {
        let addr = listener.local_addr()?;
        let (events_tx, events) = async_channel::unbounded();
        let queue = events_tx.clone();
        // Unbounded: never full. An application that dropped its server reads no
        // events, so sends may fail.
        let sink = Sink::new(handler, move |e| drop(queue.try_send(e)));
        let (event_loop, remote) = EventLoop::new(listener, config, sink)?;
        let (done_tx, done) = async_channel::bounded(1);
        let driver = async move {
            drive::<R>(event_loop).await;
            // The event stream ends with the loop (with a handler, nothing else holds
            // a sender), and `stopped` returns.
            drop(events_tx);
            drop(done_tx);
        };
        let handle = ServerHandle { remote, done };
        Ok((
            Server {
                addr,
                handle,
                events,
            },
            driver,
        ))
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
    pub async fn next_event(&self) -> Option<ServerEvent> {
        self.events.recv().await.ok()
    }

    /// The next event if one is ready.
    pub fn try_next_event(&self) -> Option<ServerEvent> {
        self.events.try_recv().ok()
    }
}

/// Runs the loop on the runtime's reactor until the server stops: what is ready is
/// taken without waiting; when nothing is, the task sleeps until the poller has
/// something or the core's deadline comes.
#[cfg(unix)]
async fn drive<R: Runtime>(mut event_loop: EventLoop<AsyncReplies>) {
    use crate::runtime::Timer;
    use futures_lite::future;
    use heartline_tungstenite::Wait;
    use std::time::{Duration, Instant};

    let Ok(poller) = event_loop.registry().and_then(R::watch) else {
        return;
    };
    let mut timer = R::Timer::never();
    // The deadline `timer` is set to: re-arming a timer costs a message to the
    // reactor (async-io) or a move in the wheel (tokio), so it is re-armed only when
    // the deadline moves.
    let mut armed = None;
    loop {
        let deadline = match event_loop.turn() {
            Wait::Stop => return,
            Wait::Until(deadline) => Some(deadline),
            Wait::Forever => None,
        };
        match event_loop.react(Some(Duration::ZERO)) {
            Err(_) => return,
            Ok(0) if deadline.is_none_or(|d| d > Instant::now()) => {}
            // Something was ready, or the deadline is here: let other tasks run, then
            // take the next turn.
            Ok(_) => {
                future::yield_now().await;
                continue;
            }
        }
        if let Some(deadline) = deadline {
            if armed != Some(deadline) {
                timer.set_at(deadline);
                armed = Some(deadline);
            }
        }
        let ready = async { R::readable(&poller).await.map(|()| false) };
        let due = async {
            match deadline {
                Some(_) => {
                    (&mut timer).await;
                }
                None => future::pending::<()>().await,
            }
            Ok(true)
        };
        match future::or(ready, due).await {
            Ok(true) => armed = None,
            Ok(false) => {}
            // The reactor cannot watch the poller: nothing more can be served.
            Err(_) => return,
        }
    }
}

/// Without a descriptor to hand the reactor, the loop runs on a thread of its own,
/// sleeping in the poller; the driver waits for it to end.
#[cfg(not(unix))]
async fn drive<R: Runtime>(event_loop: EventLoop<AsyncReplies>) {
    let (ended, end) = async_channel::bounded::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("heartline-server".into())
        .spawn(move || {
            event_loop.run();
            drop(ended);
        });
    if spawned.is_ok() {
        let _ = end.recv().await;
    }
}

/// A cloneable handle to a server.
#[derive(Clone)]
pub struct ServerHandle {
    remote: Remote<AsyncReplies>,
    /// Closed when the driver ends: nothing is ever sent on it.
    done: Receiver<()>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Sends `message` to the client registered as `name`: in a cluster, wherever it
    /// is ([`Sent::Away`]: the answer comes as a [`ServerEvent::Cluster`]).
    pub async fn send(&self, name: &str, message: impl Into<Message>) -> Result<Sent, ServerError> {
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
            .map(drop)
    }

    /// Sends `message` to every open connection (in a cluster, on every node); returns
    /// how many on this server took it.
    pub async fn broadcast(&self, message: impl Into<Message>) -> Result<usize, ServerError> {
        let message = message.into();
        self.ask(|reply| Request::Broadcast(message, None, reply))
            .await
    }

    /// [`ServerHandle::broadcast`] to everyone but `except` (the sender, in a chat).
    pub async fn broadcast_except(
        &self,
        except: ConnId,
        message: impl Into<Message>,
    ) -> Result<usize, ServerError> {
        let message = message.into();
        self.ask(|reply| Request::Broadcast(message, Some(except), reply))
            .await
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

    /// Every client of the cluster, as this node knows them (`None` without a
    /// cluster).
    pub async fn cluster_clients(&self) -> Result<Option<Vec<ClusterClient>>, ServerError> {
        self.ask(Request::ClusterClients).await
    }

    /// Starts a graceful shutdown: every client gets a Close frame with 1001, new
    /// upgrades are refused, and the driver ends once every connection has ended (the
    /// core aborts those that do not finish the close handshake in time).
    pub fn shutdown(&self) {
        // A stopped server needs no shutdown.
        let _ = self.remote.send(Request::Shutdown);
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
        make: impl FnOnce(Reply<T>) -> Request<FrontChannels<AsyncReplies>>,
    ) -> Result<T, ServerError> {
        let (reply, answer) = async_channel::bounded(1);
        self.remote.send(make(Reply(reply)))?;
        // A loop that stops drops the request, and with it the reply sender: the
        // answer below fails rather than hangs.
        answer.recv().await.map_err(|_| ServerError::Stopped)
    }
}
