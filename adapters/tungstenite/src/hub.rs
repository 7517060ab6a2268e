//! The IO-free half of a heartline server driver: the core's [`Server`] machine, the
//! connections' outboxes, and the commands that connections and handles give it.
//!
//! heartline's blocking and async servers are this hub plus their own loops: a
//! request head goes to [`Hub::upgrade`], an upgraded connection to [`Hub::open`] with
//! its outbox, and frames, writes, ends and the application's requests to
//! [`Hub::handle`] as [`Command`]s. [`Hub::dispatch`] turns the core's actions into
//! [`Out`] items for each connection's outbox and its notices into [`ServerEvent`]s.
//! [`Hub::deadline`] is the single timer for every connection; [`Hub::poll`]
//! dispatches, handles the deadlines that passed and says how long to wait.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Instant;

use heartline_core::{
    ConfigError, ConnId, Disposition, Message, OpenError, PingPayload, Server, ServerAction,
    ServerConfig, ServerNotice, ServerSendErrorKind, UpgradeRequest,
};
use tungstenite::handshake::server::Request;
use tungstenite::Message as WsMessage;

use crate::wire::{self, HttpResponse};

/// What the server tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Something the core decided or observed: a client opened, was replaced, evicted
    /// or closed, an upgrade was rejected, shutdown completed.
    Notice(ServerNotice),
    /// An application message from a client.
    Message {
        /// The connection.
        conn: ConnId,
        /// The name the client registered under, if it has one.
        name: Option<Arc<str>>,
        /// The message.
        message: Message,
    },
}

/// A client in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection.
    pub conn: ConnId,
    /// The name it registered under.
    pub name: String,
}

/// A request to the server could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// No open client has this name or id.
    NotConnected,
    /// The message alone is larger than the client's backlog bound.
    TooLarge,
    /// The client could not keep up: it was evicted instead of sent the message.
    Evicted,
    /// The server has shut down.
    Stopped,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerError::NotConnected => "no such client",
            ServerError::TooLarge => "message is larger than the backlog bound",
            ServerError::Evicted => "client could not keep up and was evicted",
            ServerError::Stopped => "the server has stopped",
        })
    }
}

impl std::error::Error for ServerError {}

/// Which client a send is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The client registered under this name.
    Name(String),
    /// This connection.
    Conn(ConnId),
}

/// What a connection executes, in order.
#[derive(Debug)]
pub enum Out {
    /// Send a protocol Ping with this payload.
    Ping(PingPayload),
    /// Send this message, then report [`Command::Written`] with its length.
    Send(WsMessage),
    /// Start the close handshake and keep reading until the peer closes.
    Close(u16, String),
    /// Eviction: write this Close only if the socket takes it without waiting, then
    /// drop the connection. The core has already forgotten it.
    Evict(u16, String),
    /// Drop the connection now. The core has already forgotten it.
    Abort,
}

/// A connection's queue of [`Out`] items, shared by the hub (which pushes) and the
/// connection (which pops, by polling between reads or by awaiting [`Mailbox::next`]).
///
/// A deque behind a mutex, with the waiting task's waker beside it, holds only what is
/// queued: an idle connection's mailbox is a few dozen bytes, where a pair of channels
/// costs about a kilobyte per connection and a channel's block allocator another 1.7
/// KB once anything was sent.
#[derive(Debug, Default)]
pub struct Mailbox {
    state: Mutex<MailState>,
}

#[derive(Debug, Default)]
struct MailState {
    queue: VecDeque<Out>,
    /// The hub will queue nothing more.
    closed: bool,
    /// An Evict or Abort was queued: the connection must drop at once, even from the
    /// middle of a write.
    killed: bool,
    /// The task waiting in [`Mailbox::next`].
    waker: Option<Waker>,
    /// The task waiting in [`Mailbox::killed`].
    kill_waker: Option<Waker>,
}

/// What [`Mailbox::pop`] found.
#[derive(Debug)]
pub enum Mail {
    /// The next item.
    Item(Out),
    /// Nothing queued for now.
    Empty,
    /// Nothing queued, and the hub will queue nothing more: it forgot the connection or
    /// stopped.
    Closed,
}

/// Deques that grew past this many items give their memory back once drained.
const MAILBOX_KEEP: usize = 8;

impl Mailbox {
    fn state(&self) -> std::sync::MutexGuard<'_, MailState> {
        crate::lock(&self.state)
    }

    /// Queues `out` and wakes the connection; dropped once the mailbox is closed.
    pub fn push(&self, out: Out) {
        let (waker, kill_waker) = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            let kill = matches!(out, Out::Evict(..) | Out::Abort);
            state.queue.push_back(out);
            state.killed |= kill;
            let kill_waker = if kill { state.kill_waker.take() } else { None };
            (state.waker.take(), kill_waker)
        };
        waker.into_iter().chain(kill_waker).for_each(Waker::wake);
    }

    /// Takes the next item.
    pub fn pop(&self) -> Mail {
        Self::take(&mut self.state())
    }

    fn take(state: &mut MailState) -> Mail {
        match state.queue.pop_front() {
            Some(out) => {
                if state.queue.is_empty() && state.queue.capacity() > MAILBOX_KEEP {
                    state.queue = VecDeque::new();
                }
                Mail::Item(out)
            }
            None if state.closed => Mail::Closed,
            None => Mail::Empty,
        }
    }

    /// Waits for the next item; `None` once the mailbox is closed and drained.
    pub async fn next(&self) -> Option<Out> {
        std::future::poll_fn(|cx| {
            // One lock: a push cannot slip in between the look and the waker's
            // registration.
            let mut state = self.state();
            match Self::take(&mut state) {
                Mail::Item(out) => Poll::Ready(Some(out)),
                Mail::Closed => Poll::Ready(None),
                Mail::Empty => {
                    if !state
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        state.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until an Evict or Abort was queued, or the mailbox closed.
    pub async fn killed(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.state();
            if state.killed || state.closed {
                Poll::Ready(())
            } else {
                state.kill_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Closes the mailbox: what is queued can still be popped, nothing more is taken.
    pub fn close(&self) {
        let (waker, kill_waker) = {
            let mut state = self.state();
            state.closed = true;
            (state.waker.take(), state.kill_waker.take())
        };
        waker.into_iter().chain(kill_waker).for_each(Waker::wake);
    }
}

/// The hub's end of a mailbox; dropping it closes the mailbox.
#[derive(Debug)]
pub struct MailboxOutbox(pub Arc<Mailbox>);

impl Outbox for MailboxOutbox {
    fn push(&self, out: Out) {
        // A closed mailbox belongs to a connection that ended: nothing to do.
        self.0.push(out);
    }
}

impl Drop for MailboxOutbox {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Where a connection's [`Out`] items go.
pub trait Outbox {
    /// Queues `out`. A connection that has ended drops it.
    fn push(&self, out: Out);
}

/// A one-shot reply to a [`Command`].
pub trait Reply<T> {
    /// Sends the answer; an asker that went away is ignored.
    fn reply(self, value: T);
}

/// The channel types of one driver.
pub trait Channels {
    /// A connection's outbox.
    type Outbox: Outbox;
    /// A one-shot reply sender.
    type Reply<T>: Reply<T>;
}

/// The answer to an upgrade request.
#[derive(Debug)]
pub enum Verdict {
    /// Upgrade, and open the connection under this name.
    Accept(Option<String>),
    /// Answer this instead of 101.
    Reject(HttpResponse),
}

/// How the hub's owner waits, from [`Hub::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// For the next command, or until this deadline, whichever comes first.
    Until(Instant),
    /// For the next command: no deadline is set.
    Forever,
    /// Not at all: shutdown finished, stop.
    Stop,
}

/// What connections and handles tell the hub.
pub enum Command<C: Channels> {
    /// A message arrived on a connection.
    Frame(ConnId, WsMessage),
    /// This many payload bytes were written to a connection.
    Written(ConnId, usize),
    /// A connection ended, with the IO error that ended it, if any.
    Ended(ConnId, Option<String>),
    /// Send a message to a client.
    Send(Target, Message, C::Reply<Result<(), ServerError>>),
    /// Send a message to every open connection; the answer is how many took it.
    Broadcast(Message, C::Reply<usize>),
    /// Look a name up.
    Lookup(String, C::Reply<Option<ClientInfo>>),
    /// List the registry.
    Clients(C::Reply<Vec<ClientInfo>>),
    /// Start a graceful shutdown.
    Shutdown,
}

/// The core's server machine and the outboxes of the open connections.
pub struct Hub<C: Channels> {
    core: Server<WsMessage>,
    conns: HashMap<ConnId, C::Outbox>,
}

impl<C: Channels> fmt::Debug for Hub<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl<C: Channels> Hub<C> {
    /// A hub for a server with `config`.
    pub fn new(config: ServerConfig, now: Instant) -> Result<Self, ConfigError> {
        Ok(Hub {
            core: Server::with_payload_len(config, now, WsMessage::len)?,
            conns: HashMap::new(),
        })
    }

    /// The one deadline for every connection: call [`Hub::timeout`] then.
    pub fn deadline(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The deadline passed.
    pub fn timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// Whether a shutdown finished and every connection has ended: the owner may stop.
    pub fn is_done(&self) -> bool {
        self.core.is_shut_down() && self.conns.is_empty()
    }

    /// Dispatches what is pending (handling deadlines already passed) and says how
    /// the owner waits next.
    pub fn poll(&mut self, mut events: impl FnMut(ServerEvent)) -> Wait {
        loop {
            self.dispatch(&mut events);
            if self.is_done() {
                return Wait::Stop;
            }
            let Some(deadline) = self.deadline() else {
                return Wait::Forever;
            };
            let now = Instant::now();
            if now < deadline {
                return Wait::Until(deadline);
            }
            self.timeout(now);
        }
    }

    /// Handles one command; a delivered message goes to `events`, after the notices the
    /// core has not yet passed on (so `Opened` always comes before a client's messages,
    /// however rarely the owner dispatches).
    pub fn handle(
        &mut self,
        now: Instant,
        command: Command<C>,
        mut events: impl FnMut(ServerEvent),
    ) {
        match command {
            Command::Frame(conn, message) => {
                let Some(frame) = wire::as_frame(&message) else {
                    return;
                };
                if self.core.handle_frame(now, conn, frame) == Disposition::Deliver {
                    if let Some(delivered) = wire::from_message(message) {
                        while let Some(notice) = self.core.poll_notice() {
                            events(ServerEvent::Notice(notice));
                        }
                        let name = self.core.name(conn).map(Arc::from);
                        events(ServerEvent::Message {
                            conn,
                            name,
                            message: delivered,
                        });
                    }
                }
            }
            Command::Written(conn, bytes) => self.core.handle_written(conn, bytes),
            Command::Ended(conn, error) => {
                self.conns.remove(&conn);
                self.core.handle_disconnected(now, conn, error.as_deref());
            }
            Command::Send(target, message, reply) => reply.reply(self.send(now, &target, message)),
            Command::Broadcast(message, reply) => reply.reply(self.broadcast(now, message)),
            Command::Lookup(name, reply) => reply.reply(self.lookup(&name)),
            Command::Clients(reply) => reply.reply(self.clients()),
            Command::Shutdown => self.shutdown(now),
        }
    }

    /// Sends `message` to a client; its actions go out with the next
    /// [`Hub::dispatch`].
    pub fn send(
        &mut self,
        now: Instant,
        target: &Target,
        message: Message,
    ) -> Result<(), ServerError> {
        let message = wire::to_message(message);
        let sent = match target {
            Target::Conn(conn) => self.core.send(now, *conn, message),
            Target::Name(name) => self.core.send_to(now, name, message),
        };
        sent.map_err(|e| match e.kind {
            ServerSendErrorKind::NotOpen | ServerSendErrorKind::UnknownName => {
                ServerError::NotConnected
            }
            ServerSendErrorKind::TooLarge => ServerError::TooLarge,
            ServerSendErrorKind::Evicted => ServerError::Evicted,
        })
    }

    /// Sends `message` to every open connection; returns how many took it.
    pub fn broadcast(&mut self, now: Instant, message: Message) -> usize {
        self.core.broadcast(now, wire::to_message(message))
    }

    /// The client registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<ClientInfo> {
        self.core.lookup(name).map(|conn| ClientInfo {
            conn,
            name: name.to_owned(),
        })
    }

    /// Every registered client.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.core
            .clients()
            .map(|(name, conn)| ClientInfo {
                conn,
                name: name.to_owned(),
            })
            .collect()
    }

    /// Starts a graceful shutdown (see [`Command::Shutdown`]).
    pub fn shutdown(&mut self, now: Instant) {
        self.core.shutdown(now);
    }

    /// Opens a connection whose 101 went out; it takes its actions from `outbox`.
    pub fn open(
        &mut self,
        now: Instant,
        name: Option<String>,
        outbox: C::Outbox,
    ) -> Result<ConnId, OpenError> {
        let opened = self.core.open(now, name);
        if let Ok(conn) = opened {
            self.conns.insert(conn, outbox);
        }
        opened
    }

    /// Whether an upgrade request is accepted, and under which name.
    pub fn upgrade(&mut self, now: Instant, request: &Request) -> Verdict {
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        match self
            .core
            .accept(now, &UpgradeRequest::new(target, &headers))
        {
            Ok(accepted) => Verdict::Accept(accepted.name),
            Err(rejection) => Verdict::Reject(HttpResponse::text(
                rejection.status,
                format!("{}\n", rejection.body),
            )),
        }
    }

    /// Hands the core's actions to their connections' outboxes and its notices to
    /// `events`. Call after every [`Hub::handle`] and [`Hub::timeout`].
    pub fn dispatch(&mut self, mut events: impl FnMut(ServerEvent)) {
        let mut pending = self.core.poll_action();
        while let Some(action) = pending.take() {
            let next = self.core.poll_action();
            let (conn, out) = match action {
                ServerAction::SendPing { conn, payload } => (conn, Out::Ping(payload)),
                ServerAction::Send { conn, message } => (conn, Out::Send(message)),
                ServerAction::Reply { conn, message } => {
                    (conn, Out::Send(wire::to_message(message)))
                }
                ServerAction::Close { conn, code, reason } => {
                    match next {
                        // An eviction: close without waiting, then drop.
                        Some(ServerAction::Abort { conn: aborted }) if aborted == conn => {
                            pending = self.core.poll_action();
                            if let Some(outbox) = self.conns.remove(&conn) {
                                outbox.push(Out::Evict(code, reason.into_owned()));
                            }
                            continue;
                        }
                        next => {
                            pending = next;
                            if let Some(outbox) = self.conns.get(&conn) {
                                outbox.push(Out::Close(code, reason.into_owned()));
                            }
                            continue;
                        }
                    }
                }
                ServerAction::Abort { conn } => {
                    pending = next;
                    if let Some(outbox) = self.conns.remove(&conn) {
                        outbox.push(Out::Abort);
                    }
                    continue;
                }
            };
            pending = next;
            // A connection that already ended has no outbox: its action is moot.
            if let Some(outbox) = self.conns.get(&conn) {
                outbox.push(out);
            }
        }
        while let Some(notice) = self.core.poll_notice() {
            events(ServerEvent::Notice(notice));
        }
    }
}

/// A std one-shot reply, as the blocking server's handles use.
impl<T> Reply<T> for std::sync::mpsc::SyncSender<T> {
    fn reply(self, value: T) {
        let _ = self.try_send(value);
    }
}
