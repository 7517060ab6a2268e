//! The one server front every heartline server runs: the core's [`Server`] machine, the
//! connections' outboxes, the answer to every request head, and the translation of the
//! core's actions into what each connection executes.
//!
//! Every heartline server runs this hub through the [`front`](crate::front), whose
//! loops differ only in how they sleep:
//!
//! 1. an accepted socket goes to [`Hub::incoming`] with its outbox (its handshake
//!    deadline starts: the core drops it if the upgrade takes too long);
//! 2. its request head goes to [`Hub::answer`], which says what to write (a page, a
//!    real HTTP error, or the 101) and what follows; after a 101, [`Hub::open`];
//! 3. what the connection observes goes to [`Hub::input`] as an [`Input`] (a frame, bytes
//!    written, a write that could not finish, the end), the application's requests to
//!    [`Hub::request`] as a [`Request`];
//! 4. [`Hub::dispatch`] turns the core's actions into [`Out`] items in each connection's
//!    outbox and its notices into [`ServerEvent`]s; [`Hub::poll`] also handles the
//!    deadlines that passed and says how long to wait.
//!
//! A loop never times anything itself: [`Hub::deadline`] is the one timer for every
//! connection, handshakes and stalled writes included.

mod node;
mod types;

pub use types::{
    ClientInfo, ClusterClient, Directory, HttpHandler, Sent, ServerConfig, ServerError,
    ServerEvent, Target,
};

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use heartline_core::{
    ConfigError, ConnId, Disposition, EvictReason, Message, OpenError, PingPayload, Server,
    ServerAction, ServerSendErrorKind, UpgradeRequest,
};
use tungstenite::handshake::server::Request as HttpRequest;
use tungstenite::Message as WsMessage;

use self::node::Node;
use crate::cluster::{BackplaneEvent, Inbox};
use crate::wire::{self, HttpResponse};
pub use crate::Wait;

/// What a connection executes, in order.
#[derive(Debug)]
pub enum Out {
    /// Send a protocol Ping with this payload.
    Ping(PingPayload),
    /// Send this message, then report [`Input::Written`] with its length.
    Send(WsMessage),
    /// Start the close handshake and keep reading until the peer closes.
    Close(u16, String),
    /// Drop the connection now, for this reason; first write the reason's Close frame
    /// ([`Out::eviction_frame`]) if there is one and the socket takes it without
    /// waiting. The core has already forgotten the connection.
    Evict(EvictReason),
    /// Drop the connection now. The core has already forgotten it.
    Abort,
}

impl Out {
    /// The Close frame an eviction writes, if the peer can be told anything.
    pub fn eviction_frame(reason: EvictReason) -> Option<tungstenite::protocol::CloseFrame> {
        let code = reason.close_code()?;
        Some(wire::close_frame(code, reason.description()))
    }
}

/// What a connection observed, for the hub.
#[derive(Debug)]
pub enum Input {
    /// A message arrived.
    Frame(WsMessage),
    /// This many payload bytes of [`Out::Send`]s were written.
    Written(usize),
    /// A write could not finish: the socket takes no more for now.
    Blocked,
    /// Everything written so far is on the socket again (after [`Input::Blocked`]).
    Flushed,
    /// The peer broke the protocol (see [`wire::violation`]): the connection fails
    /// with a Close carrying this code and reason.
    Violation(u16, &'static str),
    /// The connection ended, with the IO error that ended it, if any.
    Ended(Option<String>),
}

/// What the application asks of the server.
pub enum Request<C: Channels> {
    /// Send a message to a client.
    Send(Target, Message, C::Reply<Result<Sent, ServerError>>),
    /// Send a message to every open connection (but the one given), and to every
    /// other node's in a cluster; the answer is how many on this server took it.
    Broadcast(Message, Option<ConnId>, C::Reply<usize>),
    /// Look a name up.
    Lookup(String, C::Reply<Option<ClientInfo>>),
    /// List the registry.
    Clients(C::Reply<Vec<ClientInfo>>),
    /// List the cluster's registry (`None` without a cluster).
    ClusterClients(C::Reply<Option<Vec<ClusterClient>>>),
    /// Start a graceful shutdown.
    Shutdown,
}

/// Where a connection's [`Out`] items go.
pub trait Outbox {
    /// Queues `out`. A connection that has ended drops it.
    fn push(&self, out: Out);
}

/// A one-shot reply to a [`Request`].
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

/// What to write in answer to a request head, and what follows once it is written.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP answer: a page, an error status, or the 101.
    pub bytes: Vec<u8>,
    /// What follows.
    pub then: Then,
}

/// What follows an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Close the socket (and report [`Input::Ended`]).
    Close,
    /// The 101 went out: call [`Hub::open`] with this name, then speak WebSocket.
    Open(Option<String>),
}

impl Answer {
    /// The answer to a request head that does not parse or is too large.
    pub fn bad_head(status: u16) -> Answer {
        Answer::refuse(&HttpResponse::text(status, "bad request\n"))
    }

    fn refuse(response: &HttpResponse) -> Answer {
        Answer {
            bytes: response.to_bytes(),
            then: Then::Close,
        }
    }
}

/// The core's server machine and the outboxes of the connections it holds.
pub struct Hub<C: Channels> {
    core: Server<WsMessage>,
    conns: HashMap<ConnId, C::Outbox>,
    http: Option<HttpHandler>,
    cluster: Option<Node>,
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
    pub fn new(config: &ServerConfig, now: Instant) -> Result<Self, ConfigError> {
        Ok(Hub {
            core: Server::with_payload_len(config.core.clone(), now, WsMessage::len)?,
            conns: HashMap::new(),
            http: config.http.clone(),
            cluster: config
                .cluster
                .as_ref()
                .map(|setup| Node::new(setup, now))
                .transpose()?,
        })
    }

    /// Joins the cluster's backplane (a server with [`ServerConfig::cluster`]; else
    /// nothing to do). What the backplane has for this node must come back to
    /// [`Hub::backplane`], through `inbox`.
    pub fn join(&mut self, inbox: Inbox) -> std::io::Result<()> {
        match self.cluster.as_mut() {
            Some(node) => node.join(inbox),
            None => Ok(()),
        }
    }

    /// The one deadline for every connection (and the cluster's heartbeats, node
    /// expiries and send timeouts): call [`Hub::timeout`] then.
    pub fn deadline(&self) -> Option<Instant> {
        let cluster = self.cluster.as_ref().and_then(|n| n.machine.poll_timeout());
        match (self.core.poll_timeout(), cluster) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline passed.
    pub fn timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        if let Some(node) = self.cluster.as_mut() {
            node.machine.handle_timeout(now);
        }
    }

    /// Who is connected: this server's registry, and the cluster's.
    pub fn directory(&self) -> Directory<'_> {
        Directory {
            core: &self.core,
            cluster: self.cluster.as_ref().map(|n| &n.machine),
        }
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

    /// A socket was accepted; it takes what is decided for it from `outbox`, starting
    /// with its handshake deadline. `Err` (shutting down, full): drop the socket.
    pub fn incoming(&mut self, now: Instant, outbox: C::Outbox) -> Result<ConnId, OpenError> {
        let conn = self.core.incoming(now)?;
        self.conns.insert(conn, outbox);
        Ok(conn)
    }

    /// Accepting a socket failed; the answer is when to try again (the core's
    /// [`heartline_core::ServerConfig::accept_pause`] from now).
    pub fn accept_failed(&mut self, now: Instant) -> Instant {
        self.core.handle_accept_failed(now)
    }

    /// The answer to a request head: a plain HTTP request goes to the server's
    /// HTTP handler; an upgrade is judged by the core's rules before any 101, so a bad
    /// one gets a real HTTP status (a rejection the core reports as
    /// [`heartline_core::ServerNotice::Rejected`]); a request that breaks the WebSocket
    /// handshake rules (a plain GET, no key, wrong version) gets 400.
    pub fn answer(&mut self, now: Instant, request: &HttpRequest) -> Answer {
        if !wire::is_upgrade(request) {
            let directory = self.directory();
            if let Some(response) = self.http.as_ref().and_then(|h| h(request, &directory)) {
                return Answer::refuse(&response);
            }
        }
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let name = match self
            .core
            .accept(now, &UpgradeRequest::new(target, &headers))
        {
            Ok(accepted) => accepted.name,
            Err(rejection) => {
                let body = format!("{}\n", rejection.body);
                return Answer::refuse(&HttpResponse::text(rejection.status, body));
            }
        };
        match wire::upgrade_response(request) {
            Ok(bytes) => Answer {
                bytes,
                then: Then::Open(name),
            },
            Err(response) => Answer::refuse(&response),
        }
    }

    /// `conn`'s 101 went out: it is open under `name`. `Err`: it is gone (its handshake
    /// timed out, the server is shutting down): drop the socket.
    pub fn open(
        &mut self,
        now: Instant,
        conn: ConnId,
        name: Option<String>,
    ) -> Result<(), OpenError> {
        let opened = self.core.open(now, conn, name);
        if opened.is_err() {
            self.conns.remove(&conn);
        }
        opened
    }

    /// What `conn` observed. A delivered message goes to `events`, after the notices the
    /// core has not yet passed on (so `Opened` always comes before a client's messages,
    /// however rarely the owner dispatches).
    pub fn input(
        &mut self,
        now: Instant,
        conn: ConnId,
        input: Input,
        mut events: impl FnMut(ServerEvent),
    ) {
        match input {
            Input::Frame(message) => {
                let Some(frame) = wire::as_frame(&message) else {
                    return;
                };
                if self.core.handle_frame(now, conn, frame) != Disposition::Deliver {
                    return;
                }
                if let Some(delivered) = wire::from_message(message) {
                    self.notices(now, &mut events);
                    let name = self.core.name(conn).map(Arc::from);
                    events(ServerEvent::Message {
                        conn,
                        name,
                        message: delivered,
                    });
                }
            }
            Input::Written(bytes) => self.core.handle_written(conn, bytes),
            Input::Blocked => self.core.handle_write_blocked(now, conn),
            Input::Flushed => self.core.handle_write_flushed(conn),
            Input::Violation(code, reason) => {
                // Already closing: the close under way ends it, bounded by its timeout.
                let _ = self.core.close(now, conn, code, reason);
            }
            Input::Ended(error) => {
                self.conns.remove(&conn);
                self.core.handle_disconnected(now, conn, error.as_deref());
            }
        }
    }

    /// Carries out one of the application's requests; what it decides goes out with
    /// the next [`Hub::dispatch`].
    pub fn request(&mut self, now: Instant, request: Request<C>) {
        match request {
            Request::Send(target, message, reply) => reply.reply(self.send(now, &target, message)),
            Request::Broadcast(message, except, reply) => {
                reply.reply(self.broadcast(now, message, except));
            }
            Request::Lookup(name, reply) => reply.reply(self.lookup(&name)),
            Request::Clients(reply) => reply.reply(self.clients()),
            Request::ClusterClients(reply) => reply.reply(self.directory().cluster_clients()),
            Request::Shutdown => self.shutdown(now),
        }
    }

    /// What the backplane has for this node (see [`Hub::join`]).
    pub fn backplane(&mut self, now: Instant, event: BackplaneEvent) {
        if let Some(node) = self.cluster.as_mut() {
            node.backplane(now, event);
        }
    }

    /// Sends `message` to a client: in a cluster, a name held on another node is sent
    /// there ([`Sent::Away`]).
    pub fn send(
        &mut self,
        now: Instant,
        target: &Target,
        message: Message,
    ) -> Result<Sent, ServerError> {
        if let (Target::Name(name), Some(node)) = (target, self.cluster.as_mut()) {
            if node.is_elsewhere(name) {
                return match node.machine.send_to(now, name, None, message) {
                    heartline_core::Route::Remote(id) => Ok(Sent::Away(id)),
                    _ => Err(ServerError::NotConnected),
                };
            }
        }
        let message = wire::to_message(message);
        let sent = match target {
            Target::Conn(conn) => self.core.send(now, *conn, message),
            Target::Name(name) => self.core.send_to(now, name, message),
        };
        sent.map(|()| Sent::Here).map_err(|e| match e.kind {
            ServerSendErrorKind::NotOpen | ServerSendErrorKind::UnknownName => {
                ServerError::NotConnected
            }
            ServerSendErrorKind::TooLarge => ServerError::TooLarge,
            ServerSendErrorKind::Evicted => ServerError::Evicted,
        })
    }

    /// Sends `message` to every open connection but `except`, and in a cluster to
    /// every other node's clients (at most once each); returns how many on this
    /// server took it.
    pub fn broadcast(&mut self, now: Instant, message: Message, except: Option<ConnId>) -> usize {
        if let Some(node) = self.cluster.as_mut() {
            node.broadcast(now, message.clone());
        }
        self.core
            .broadcast_except(now, wire::to_message(message), except)
    }

    /// The client registered as `name` on this server.
    pub fn lookup(&self, name: &str) -> Option<ClientInfo> {
        self.directory().lookup(name)
    }

    /// Every client registered on this server.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.directory().clients()
    }

    /// Starts a graceful shutdown (see [`Request::Shutdown`]).
    pub fn shutdown(&mut self, now: Instant) {
        self.core.shutdown(now);
    }

    /// Hands the core's actions to their connections' outboxes and its notices to
    /// `events`. Call after every [`Hub::input`], [`Hub::request`] and [`Hub::timeout`].
    pub fn dispatch(&mut self, mut events: impl FnMut(ServerEvent)) {
        loop {
            self.dispatch_core(&mut events);
            let Some(node) = self.cluster.as_mut() else {
                return;
            };
            let now = Instant::now();
            let acted = node.pump(now, &mut self.core, |n| events(ServerEvent::Cluster(n)));
            if !acted {
                return;
            }
        }
    }

    /// The core's notices, to `events`; the cluster learns of clients opened and
    /// closed here.
    fn notices(&mut self, now: Instant, events: &mut impl FnMut(ServerEvent)) {
        while let Some(notice) = self.core.poll_notice() {
            crate::trace::server_notice(&notice);
            if let Some(node) = self.cluster.as_mut() {
                node.noticed(now, &notice);
            }
            events(ServerEvent::Notice(notice));
        }
    }

    fn dispatch_core(&mut self, events: &mut impl FnMut(ServerEvent)) {
        while let Some(action) = self.core.poll_action() {
            let conn = action.conn();
            let out = match action {
                ServerAction::SendPing { payload, .. } => {
                    crate::trace::server_ping(conn);
                    Out::Ping(payload)
                }
                ServerAction::Send { message, .. } => Out::Send(message),
                ServerAction::Reply { message, .. } => Out::Send(wire::to_message(message)),
                ServerAction::Close { code, reason, .. } => Out::Close(code, reason.into_owned()),
                // The core has forgotten the connection: so does the hub, and dropping
                // the outbox closes it behind this last item.
                ServerAction::Evict { reason, .. } => {
                    if let Some(outbox) = self.conns.remove(&conn) {
                        outbox.push(Out::Evict(reason));
                    }
                    continue;
                }
                ServerAction::Abort { .. } => {
                    if let Some(outbox) = self.conns.remove(&conn) {
                        outbox.push(Out::Abort);
                    }
                    continue;
                }
            };
            // A connection that already ended has no outbox: its action is moot.
            if let Some(outbox) = self.conns.get(&conn) {
                outbox.push(out);
            }
        }
        self.notices(Instant::now(), events);
    }
}

/// A std one-shot reply, as the blocking server's handles use.
impl<T> Reply<T> for std::sync::mpsc::SyncSender<T> {
    fn reply(self, value: T) {
        let _ = self.try_send(value);
    }
}
