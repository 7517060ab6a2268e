//! The blocking server's thread: one readiness loop over every socket, with the hub's
//! one deadline as its wait timeout.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use heartline_core::ConnId;
use mio::net::TcpListener as MioListener;
use mio::{Events, Interest, Poll, Token};
use tungstenite::protocol::Role;
use tungstenite::{Message as WsMessage, WebSocket};

use heartline_tungstenite::hub::{
    Answer, Hub, Input, Out, Request, ServerConfig, ServerEvent, Then, Wait,
};
use heartline_tungstenite::lock;
use heartline_tungstenite::wire;

use super::conn::{self, Conn, Ended, Io, Open, Phase, Slab, Slot};
use super::{EventHandler, LoopChannels, LoopOutbox, Outgoing, Responder};

/// The listener's token; connections use their slab index.
pub(super) const LISTENER: Token = Token(usize::MAX);
/// The handles' wake-up token.
pub(super) const WAKER: Token = Token(usize::MAX - 1);
/// Most messages read from one connection before the others get their turn.
const READ_BATCH: usize = 64;
/// Readiness events taken from the poller at once.
const EVENTS: usize = 1024;
/// Full batches of readiness events read at most before deadlines are handled again.
const CATCH_UP_BATCHES: usize = 64;

/// The server's thread.
pub(super) struct EventLoop {
    pub(super) poll: Poll,
    pub(super) listener: MioListener,
    pub(super) hub: Hub<LoopChannels>,
    pub(super) requests: Receiver<Request<LoopChannels>>,
    pub(super) events: Sender<ServerEvent>,
    /// The application's event handler, if it gave one: events go to it, not `events`.
    pub(super) handler: Option<EventHandler>,
    /// Events the hub produced and nobody has seen yet, in order.
    pub(super) pending: Vec<ServerEvent>,
    pub(super) conns: Slab,
    pub(super) outgoing: Outgoing,
    pub(super) serial: u64,
    /// Connections that stopped reading at [`READ_BATCH`] with more to read.
    pub(super) ready: VecDeque<Slot>,
    /// Accepting resumes at this time, as the core said after an error.
    pub(super) accept_paused: Option<Instant>,
    pub(super) config: ServerConfig,
}

impl EventLoop {
    pub(super) fn run(mut self) {
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
            let deadline = deadline.into_iter().chain(self.accept_paused).min();
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
                    WAKER => self.requests(now),
                    Token(index) => {
                        let Some(slot) = self.conns.slot(index) else {
                            continue;
                        };
                        if event.is_writable() {
                            self.writable(now, slot);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(now, slot);
                        }
                    }
                }
            }
            if self.accept_paused.is_some_and(|until| until <= now) {
                self.accept(now);
            }
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

    /// Carries out the queued requests from handles.
    fn requests(&mut self, now: Instant) {
        while let Ok(request) = self.requests.try_recv() {
            self.hub.request(now, request);
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
                    // the listener is fine. The core says when to try again.
                    self.accept_paused = Some(self.hub.accept_failed(now));
                    return;
                }
            };
            // Small messages (pings, chat) go out at once, as browsers and Node expect.
            let _ = stream.set_nodelay(true);
            self.serial += 1;
            let serial = self.serial;
            let io = Io {
                stream,
                drained: false,
            };
            let index = self.conns.insert(Conn {
                serial,
                // Set below, once the core has taken the socket.
                id: ConnId::default(),
                phase: Phase::Head {
                    io,
                    buf: Vec::new(),
                },
            });
            let slot = Slot { index, serial };
            let outbox = LoopOutbox {
                slot,
                outgoing: self.outgoing.clone(),
            };
            let (Some(conn), Ok(id)) = (self.conns.get(slot), self.hub.incoming(now, outbox))
            else {
                // Shutting down or full: the socket closes without more ado.
                self.conns.remove(index);
                continue;
            };
            conn.id = id;
            let registered = match conn.phase.stream() {
                Some(stream) => self.poll.registry().register(
                    stream,
                    Token(index),
                    Interest::READABLE | Interest::WRITABLE,
                ),
                None => Ok(()),
            };
            if registered.is_err() {
                self.end(now, slot, None);
            }
        }
    }

    fn readable(&mut self, now: Instant, slot: Slot) {
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

    fn writable(&mut self, now: Instant, slot: Slot) {
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
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.end(now, slot, None),
            }
        }
        let id = conn.id;
        let Phase::Answer {
            io, answer, tail, ..
        } = std::mem::replace(&mut conn.phase, Phase::Gone)
        else {
            return;
        };
        match answer.then {
            Then::Close => {
                let mut io = io;
                let _ = io.stream.shutdown(std::net::Shutdown::Write);
                let _ = self.poll.registry().deregister(&mut io.stream);
                self.end(now, slot, None);
            }
            Then::Open(name) => {
                if self.hub.open(now, id, name).is_err() {
                    // The core has forgotten it (shutting down): drop the socket.
                    let mut io = io;
                    let _ = self.poll.registry().deregister(&mut io.stream);
                    self.conns.remove(slot.index);
                    return;
                }
                let config = self.config.buffers.websocket_config(&self.config.core);
                let mut io = io;
                // Frames may have come with the request head, or since.
                io.drained = false;
                let ws = WebSocket::from_partially_read(io, tail, Role::Server, Some(config));
                conn.phase = Phase::Open(Box::new(Open {
                    ws,
                    conn: id,
                    queue: VecDeque::new(),
                    stalled: false,
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
                    self.hub
                        .input(now, conn, Input::Frame(message), |e| pending.push(e));
                }
                Err(e) if wire::would_block(&e) => {
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
                Err(e) => return self.end(now, slot, wire::end_reason(e)),
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
        let open = match (&mut conn.phase, out) {
            (Phase::Open(open), Out::Evict(reason)) => {
                // Only what the socket takes at once: the peer may not be reading.
                if let (false, Some(frame)) = (open.stalled, Out::eviction_frame(reason)) {
                    let _ = open.ws.close(Some(frame));
                    let _ = open.ws.flush();
                }
                // The core has already forgotten the connection.
                return self.drop_conn(slot.index);
            }
            // A handshake that took too long, or any abort.
            (_, Out::Evict(_) | Out::Abort) => return self.drop_conn(slot.index),
            (Phase::Open(open), out) => (open, out),
            _ => return,
        };
        let (open, out) = open;
        if open.stalled {
            return open.queue.push_back(out);
        }
        match conn::write(open, &mut self.hub, now, out) {
            Ok(()) => {}
            Err(e) if wire::would_block(&e) => conn::stall(open, &mut self.hub, now),
            Err(e) => self.end(now, slot, wire::end_reason(e)),
        }
    }

    /// A connection ended: forget it and tell the hub.
    fn end(&mut self, now: Instant, slot: Slot, error: Option<String>) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let id = conn.id;
        self.drop_conn(slot.index);
        let pending = &mut self.pending;
        self.hub
            .input(now, id, Input::Ended(error), |e| pending.push(e));
    }

    /// Deregisters and closes a socket.
    fn drop_conn(&mut self, index: usize) {
        let Some(mut conn) = self.conns.remove(index) else {
            return;
        };
        // Closing the socket removes it from the poller anyway.
        if let Some(stream) = conn.phase.stream() {
            let _ = self.poll.registry().deregister(stream);
        }
    }
}
