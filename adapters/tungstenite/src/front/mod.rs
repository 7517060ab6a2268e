//! The one server front: every connection of a server, from its accept to its end,
//! driven by the [`Hub`] (and through it the core), over non-blocking sockets.
//!
//! A server loop is this front plus four things of its own: how it learns that a
//! socket is readable or writable (an edge-triggered poller, a reactor's wakers), how it
//! accepts, how it sleeps until [`Front::turn`]'s deadline, and how the application's
//! requests reach it. heartline's servers all run it on one `mio` loop
//! ([`event_loop`], feature `mio`), which sleeps on a thread (blocking) or on a
//! runtime's reactor (async); the front reads, answers, writes and times nothing on its
//! own account beyond what the core decides.
//!
//! Sockets are read and written directly (tungstenite over a non-blocking [`Socket`]),
//! with no task or buffer per connection beyond tungstenite's own: an idle connection
//! costs its socket and a couple of kilobytes.

mod conn;
#[cfg(feature = "mio")]
pub mod event_loop;

use std::collections::VecDeque;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use heartline_core::{ConfigError, ConnId, Message};
use tungstenite::protocol::Role;
use tungstenite::{Message as WsMessage, WebSocket};

use crate::hub::{
    Answer, Channels, ClientInfo, Hub, Input, Out, Outbox, Reply, Request, Sent, ServerConfig,
    ServerError, ServerEvent, Target, Then, Wait,
};
use crate::{lock, wire};
use conn::{Conn, Ended, Io, Open, Phase, Slab, Slot};

/// Most messages read from one connection before the others get their turn.
const READ_BATCH: usize = 64;

/// A non-blocking socket as the front reads and writes it.
///
/// For a poller that registers each socket once, edge-triggered, for both directions
/// (`mio`), the `wait_*` methods do nothing: readiness comes anyway. A reactor that
/// must be asked again after each time a socket ran dry (async-io, tokio) asks there.
pub trait Socket: Read + Write {
    /// The socket has its key: the one its readiness is reported under
    /// ([`Front::readable`], [`Front::writable`]).
    fn attach(&mut self, key: usize) {
        let _ = key;
    }
    /// A read found nothing: report the key readable once there may be more.
    fn wait_readable(&mut self) {}
    /// A write could not finish: report the key writable once it may take more.
    fn wait_writable(&mut self) {}
    /// Ends the writing half (after a plain HTTP answer).
    fn shutdown_write(&mut self);
}

/// How one server loop answers the application's requests.
pub trait Replies {
    /// A one-shot reply sender.
    type Reply<T>: Reply<T>;
}

/// The hub's channel types for a front whose loop answers with `R`.
pub struct FrontChannels<R>(PhantomData<R>);

impl<R: Replies> Channels for FrontChannels<R> {
    type Outbox = FrontOutbox;
    type Reply<T> = R::Reply<T>;
}

/// What the hub decided for connections, in order, until the front executes it.
type Outgoing = Arc<Mutex<Vec<(Slot, Out)>>>;

/// The hub's outbox for one connection: appends to the front's list.
#[derive(Debug)]
pub struct FrontOutbox {
    slot: Slot,
    outgoing: Outgoing,
}

impl Outbox for FrontOutbox {
    fn push(&self, out: Out) {
        lock(&self.outgoing).push((self.slot, out));
    }
}

/// An application's event handler, called on the server loop (see [`Sink::Handler`]).
pub type Handler<R> = Box<dyn FnMut(ServerEvent, &mut Responder<'_, R>) + Send>;

/// Where the server's events go.
pub enum Sink<R: Replies> {
    /// Queued for the application (a channel's sender, say).
    Queue(Box<dyn FnMut(ServerEvent) + Send>),
    /// Handed to a handler on the loop itself, which answers at once.
    Handler(Handler<R>),
}

impl<R: Replies> Sink<R> {
    /// Events to `handler` if there is one, else to `queue`.
    pub fn new(
        handler: Option<Handler<R>>,
        queue: impl FnMut(ServerEvent) + Send + 'static,
    ) -> Self {
        match handler {
            Some(handler) => Sink::Handler(handler),
            None => Sink::Queue(Box::new(queue)),
        }
    }
}

/// What an event handler may do on the server loop: what a server handle does, at once
/// and without waiting for an answer from another thread or task.
pub struct Responder<'a, R: Replies> {
    hub: &'a mut Hub<FrontChannels<R>>,
    now: Instant,
}

impl<R: Replies> fmt::Debug for Responder<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl<R: Replies> Responder<'_, R> {
    /// Sends `message` to the client registered as `name`: in a cluster, wherever it
    /// is ([`Sent::Away`] when on another node).
    pub fn send(&mut self, name: &str, message: impl Into<Message>) -> Result<Sent, ServerError> {
        let target = Target::Name(name.to_owned());
        self.hub.send(self.now, &target, message.into())
    }

    /// Sends `message` to connection `conn`.
    pub fn send_to(
        &mut self,
        conn: ConnId,
        message: impl Into<Message>,
    ) -> Result<(), ServerError> {
        let target = Target::Conn(conn);
        self.hub.send(self.now, &target, message.into()).map(drop)
    }

    /// Sends `message` to every open connection (in a cluster, on every node); returns
    /// how many on this server took it.
    pub fn broadcast(&mut self, message: impl Into<Message>) -> usize {
        self.hub.broadcast(self.now, message.into(), None)
    }

    /// [`Responder::broadcast`] to everyone but `except` (the sender, in a chat).
    pub fn broadcast_except(&mut self, except: ConnId, message: impl Into<Message>) -> usize {
        self.hub.broadcast(self.now, message.into(), Some(except))
    }

    /// Who is connected, here and in the cluster.
    pub fn directory(&self) -> crate::hub::Directory<'_> {
        self.hub.directory()
    }

    /// The client registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<ClientInfo> {
        self.hub.lookup(name)
    }

    /// Every registered client.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.hub.clients()
    }

    /// Starts a graceful shutdown, as a handle's `shutdown` does.
    pub fn shutdown(&mut self) {
        self.hub.shutdown(self.now);
    }
}

/// Every connection of one server, driven by its hub.
pub struct Front<S, R: Replies> {
    hub: Hub<FrontChannels<R>>,
    sink: Sink<R>,
    /// Events the hub produced and nobody has seen yet, in order.
    pending: Vec<ServerEvent>,
    conns: Slab<S>,
    outgoing: Outgoing,
    /// Room for taking `outgoing` without allocating each turn.
    outs: Vec<(Slot, Out)>,
    serial: u64,
    /// Connections that stopped reading at [`READ_BATCH`] with more to read.
    ready: VecDeque<Slot>,
    /// Accepting resumes at this time, as the core said after an error.
    accept_paused: Option<Instant>,
    config: ServerConfig,
}

impl<S, R: Replies> fmt::Debug for Front<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Front")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl<S: Socket, R: Replies> Front<S, R> {
    /// A front for a server with `config`, whose events go to `sink`.
    pub fn new(config: ServerConfig, sink: Sink<R>, now: Instant) -> Result<Self, ConfigError> {
        Ok(Front {
            hub: Hub::new(&config, now)?,
            sink,
            pending: Vec::new(),
            conns: Slab::default(),
            outgoing: Arc::default(),
            outs: Vec::new(),
            serial: 0,
            ready: VecDeque::new(),
            accept_paused: None,
            config,
        })
    }

    /// Carries out everything decided so far (the hub's actions, the events for the
    /// application, what a handler sent in answer) and says how the loop waits next:
    /// until the deadline (the core's, or the end of an accept pause), not at all while
    /// connections wait for their turn to read, or stop. With `behind`, the loop has more
    /// readiness to take first: deadlines wait for it.
    pub fn turn(&mut self, behind: bool) -> Wait {
        loop {
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
            std::mem::swap(&mut self.outs, &mut *lock(&self.outgoing));
            if self.outs.is_empty() {
                return match wait {
                    Wait::Stop => Wait::Stop,
                    _ if !self.ready.is_empty() => Wait::Until(Instant::now()),
                    Wait::Until(at) => Wait::Until(self.accept_paused.map_or(at, |p| p.min(at))),
                    Wait::Forever => self.accept_paused.map_or(Wait::Forever, Wait::Until),
                };
            }
            let now = Instant::now();
            let mut outs = std::mem::take(&mut self.outs);
            for (slot, out) in outs.drain(..) {
                self.execute(now, slot, out);
            }
            self.outs = outs;
        }
    }

    /// Reads on from the connections that stopped at their read batch.
    pub fn read_on(&mut self, now: Instant) {
        for _ in 0..self.ready.len() {
            if let Some(slot) = self.ready.pop_front() {
                self.readable_slot(now, slot);
            }
        }
    }

    /// Joins the cluster's backplane, if the server is in one (see [`Hub::join`]).
    pub fn join(&mut self, inbox: crate::cluster::Inbox) -> std::io::Result<()> {
        self.hub.join(inbox)
    }

    /// What the backplane has for this node.
    pub fn backplane(&mut self, now: Instant, event: crate::cluster::BackplaneEvent) {
        self.hub.backplane(now, event);
    }

    /// Carries out one of the application's requests.
    pub fn request(&mut self, now: Instant, request: Request<FrontChannels<R>>) {
        self.hub.request(now, request);
    }

    /// Whether the loop may accept now (not in a pause after a failed accept).
    pub fn may_accept(&mut self, now: Instant) -> bool {
        if self.accept_paused.is_some_and(|until| now < until) {
            return false;
        }
        self.accept_paused = None;
        true
    }

    /// Accepting failed (out of descriptors, a reset before the accept): the core says
    /// when to try again, and [`Front::may_accept`] says no until then.
    pub fn accept_failed(&mut self, now: Instant) {
        self.accept_paused = Some(self.hub.accept_failed(now));
    }

    /// Whether an accept pause has run out: the loop accepts again.
    pub fn accept_resumes(&self, now: Instant) -> bool {
        self.accept_paused.is_some_and(|until| until <= now)
    }

    /// Takes an accepted socket; its key comes back (to register it under), or `None`
    /// when the server takes no more (shutting down, full) and the socket was dropped.
    pub fn accept(&mut self, now: Instant, stream: S) -> Option<usize> {
        self.serial += 1;
        let serial = self.serial;
        let index = self.conns.insert(Conn {
            serial,
            // Set below, once the core has taken the socket.
            id: ConnId::default(),
            phase: Phase::Head {
                io: Io {
                    stream,
                    drained: false,
                    peer_closed: false,
                },
                buf: Vec::new(),
            },
        });
        let slot = Slot { index, serial };
        let outbox = FrontOutbox {
            slot,
            outgoing: self.outgoing.clone(),
        };
        let (Some(conn), Ok(id)) = (self.conns.get(slot), self.hub.incoming(now, outbox)) else {
            self.conns.remove(index);
            return None;
        };
        conn.id = id;
        if let Some(stream) = conn.phase.stream() {
            stream.attach(index);
        }
        Some(index)
    }

    /// The socket under `key`, to register it with a poller.
    pub fn socket(&mut self, key: usize) -> Option<&mut S> {
        let slot = self.conns.slot(key)?;
        self.conns.get(slot)?.phase.stream()
    }

    /// Drops the socket under `key` as ended (it could not be registered, say).
    pub fn drop_socket(&mut self, now: Instant, key: usize) {
        if let Some(slot) = self.conns.slot(key) {
            self.end(now, slot, None);
        }
    }

    /// The socket under `key` may have something to read (or its peer went away).
    pub fn readable(&mut self, now: Instant, key: usize) {
        if let Some(slot) = self.conns.slot(key) {
            self.readable_slot(now, slot);
        }
    }

    /// The peer of the socket under `key` ended its half of the connection (the
    /// poller saw its FIN): its reads go on to the end of stream.
    pub fn read_closed(&mut self, now: Instant, key: usize) {
        let Some(slot) = self.conns.slot(key) else {
            return;
        };
        if let Some(conn) = self.conns.get(slot) {
            match &mut conn.phase {
                Phase::Head { io, .. } | Phase::Answer { io, .. } => io.peer_closed = true,
                Phase::Open(open) => open.ws.get_mut().peer_closed = true,
                Phase::Gone => {}
            }
        }
        self.readable_slot(now, slot);
    }

    /// The socket under `key` may take more.
    pub fn writable(&mut self, now: Instant, key: usize) {
        let Some(slot) = self.conns.slot(key) else {
            return;
        };
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Head { .. } | Phase::Gone => {}
            Phase::Answer { .. } => self.write_answer(now, slot),
            Phase::Open(open) if open.stalled => {
                if let Ended::Yes(error) = conn::resume(open, &mut self.hub, now) {
                    self.end(now, slot, error);
                }
            }
            Phase::Open(_) => {}
        }
    }

    /// Hands the pending events to the handler, or queues them for the application.
    fn deliver(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        match &mut self.sink {
            Sink::Handler(handler) => {
                let mut responder = Responder {
                    hub: &mut self.hub,
                    now: Instant::now(),
                };
                for event in pending.drain(..) {
                    handler(event, &mut responder);
                }
            }
            Sink::Queue(queue) => pending.drain(..).for_each(queue),
        }
        // Keep the room for next time.
        self.pending = pending;
    }

    fn readable_slot(&mut self, now: Instant, slot: Slot) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Head { io, buf } => {
                io.drained = false;
                match conn::read_head(io, buf) {
                    Ok(None) => {}
                    Ok(Some((request, tail))) => {
                        let answer = self.hub.answer(now, &request);
                        self.respond(now, slot, answer, tail);
                    }
                    Err(Some(status)) => self.respond(now, slot, Answer::bad_head(status), vec![]),
                    Err(None) => self.end(now, slot, None),
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

    /// Starts writing an HTTP answer.
    fn respond(&mut self, now: Instant, slot: Slot, answer: Answer, tail: Vec<u8>) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let Phase::Head { io, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        conn.phase = Phase::Answer {
            io,
            answer,
            written: 0,
            tail,
        };
        self.write_answer(now, slot);
    }

    /// Writes what the socket takes of an HTTP answer (the core's handshake deadline
    /// bounds how long that may take); once all is written, closes or opens the
    /// connection.
    fn write_answer(&mut self, now: Instant, slot: Slot) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let Phase::Answer {
            io,
            answer,
            written,
            ..
        } = &mut conn.phase
        else {
            return;
        };
        while *written < answer.bytes.len() {
            match io.stream.write(&answer.bytes[*written..]) {
                Ok(0) => return self.end(now, slot, None),
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    io.stream.wait_writable();
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.end(now, slot, None),
            }
        }
        let id = conn.id;
        let Phase::Answer {
            mut io,
            answer,
            tail,
            ..
        } = std::mem::replace(&mut conn.phase, Phase::Gone)
        else {
            return;
        };
        match answer.then {
            Then::Close => {
                io.stream.shutdown_write();
                self.end(now, slot, None);
            }
            Then::Open(name) => {
                if self.hub.open(now, id, name).is_err() {
                    // The core has forgotten it (shutting down): drop the socket.
                    self.conns.remove(slot.index);
                    return;
                }
                let config = self.config.buffers.websocket_config(&self.config.core);
                // Frames may have come with the request head, or since.
                io.drained = false;
                let ws = WebSocket::from_partially_read(io, tail, Role::Server, Some(config));
                conn.phase = Phase::Open(Box::new(Open {
                    ws,
                    conn: id,
                    queue: VecDeque::new(),
                    stalled: false,
                    unflushed: 0,
                    failed: false,
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
        if open.failed {
            if let Ended::Yes(error) = conn::drain(open) {
                self.end(now, slot, error);
            }
            return;
        }
        let mut replied = false;
        for _ in 0..READ_BATCH {
            match open.ws.read() {
                Ok(message) => {
                    replied |= matches!(message, WsMessage::Ping(_));
                    let pending = &mut self.pending;
                    let message = wire::unshare(message, open.ws.get_config());
                    self.hub
                        .input(now, conn, Input::Frame(message), |e| pending.push(e));
                }
                Err(e) if wire::would_block(&e) => {
                    open.ws.get_mut().stream.wait_readable();
                    // tungstenite queued a Pong: put it on the wire now.
                    if replied && !open.stalled {
                        if let Err(e) = open.ws.flush() {
                            if !wire::would_block(&e) {
                                return self.end(now, slot, wire::end_reason(e));
                            }
                            conn::stall(open, &mut self.hub, now);
                        }
                    }
                    return;
                }
                Err(e) => match wire::violation(&e) {
                    Some((code, reason)) => {
                        open.failed = true;
                        self.hub
                            .input(now, conn, Input::Violation(code, reason), drop);
                        if let Ended::Yes(error) = conn::drain(open) {
                            self.end(now, slot, error);
                        }
                        return;
                    }
                    None => return self.end(now, slot, wire::end_reason(e)),
                },
            }
        }
        // More may be waiting: come back after the others had their turn.
        self.ready.push_back(slot);
    }

    /// Executes one item the hub queued for a connection.
    fn execute(&mut self, now: Instant, slot: Slot, out: Out) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let (open, out) = match (&mut conn.phase, out) {
            (Phase::Open(open), Out::Evict(reason)) => {
                // Only what the socket takes at once: the peer may not be reading.
                if let (false, Some(frame)) = (open.stalled, Out::eviction_frame(reason)) {
                    let _ = open.ws.close(Some(frame));
                    let _ = open.ws.flush();
                }
                // The core has already forgotten the connection.
                self.conns.remove(slot.index);
                return;
            }
            // A handshake that took too long, or any abort.
            (_, Out::Evict(_) | Out::Abort) => {
                self.conns.remove(slot.index);
                return;
            }
            (Phase::Open(open), out) => (open, out),
            _ => return,
        };
        if open.stalled {
            return open.queue.push_back(out);
        }
        match conn::write(open, &mut self.hub, now, out) {
            Ok(()) => {}
            Err(e) if wire::would_block(&e) => conn::stall(open, &mut self.hub, now),
            Err(e) => self.end(now, slot, wire::end_reason(e)),
        }
    }

    /// A connection ended: forget it (closing its socket) and tell the hub.
    fn end(&mut self, now: Instant, slot: Slot, error: Option<String>) {
        if self.conns.get(slot).is_none() {
            return;
        }
        let Some(conn) = self.conns.remove(slot.index) else {
            return;
        };
        let pending = &mut self.pending;
        self.hub
            .input(now, conn.id, Input::Ended(error), |e| pending.push(e));
    }
}
