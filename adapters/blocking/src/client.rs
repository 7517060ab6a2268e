//! The blocking client: a builder, the event iterator, and the driver that runs the
//! [`heartline_core::Client`] over tungstenite on `std::net`.
//!
//! The driver is a loop on its own thread. Each turn it drains the core's actions and
//! executes them, then waits (epoll/kqueue, through `mio`) until the socket is ready,
//! a handle wakes it, or the core's next deadline comes; then it takes a fresh
//! [`Instant::now()`] and feeds the core. What a handle sends reaches the wire at once,
//! and an idle connection costs no wake-ups. Every decision (when to ping, when the peer
//! is dead, when to reconnect) is the core's.
//!
//! A connection attempt blocks the driver for at most the connect timeout: name
//! resolution (on a thread of its own, as the OS resolver cannot be interrupted), the
//! TCP connect and the TLS and WebSocket handshakes; a `close()` requested meanwhile
//! takes effect when the attempt ends.
//! Once open, the socket is non-blocking: a peer that stops reading makes writes wait
//! in tungstenite's buffer, for at most the write timeout.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use heartline_core::{ConnId, Disposition, Event};
use tungstenite::handshake::HandshakeError;
use tungstenite::WebSocket;

use crate::tls::{self, MaybeTls};
use heartline_tungstenite::client::{
    handle_due, AttemptError, BuildError, ClientBuilder, ClientEvent, ClientHandle, Prepared,
    SharedCore, Step,
};
use heartline_tungstenite::resolve::resolve;
use heartline_tungstenite::{wire, Wait};

/// Builds the client from `builder` and starts its driver on a thread of its own: a
/// handle and the event iterator.
pub fn connect(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError> {
    let (handle, events, driver) = build(builder)?;
    thread::Builder::new()
        .name("heartline-client".into())
        .spawn(move || driver.run())
        .map_err(BuildError::Spawn)?;
    Ok((handle, events))
}

/// Builds the client from `builder` without starting it: a handle, the event iterator,
/// and the driver, whose [`Driver::run`] blocks the calling thread until the client is
/// closed for good.
pub fn build(builder: ClientBuilder) -> Result<(ClientHandle, ClientEvents, Driver), BuildError> {
    let poll = Poll::new().map_err(BuildError::Spawn)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(BuildError::Spawn)?);
    // A failed wake-up leaves the change for the driver's next turn: its deadline or
    // socket wakes it.
    let (handle, prepared) = builder.into_options().prepare(move || {
        let _ = waker.wake();
    })?;
    let (events_tx, events_rx) = mpsc::channel();
    let driver = Driver {
        prepared,
        poll,
        events: events_tx,
    };
    Ok((handle, ClientEvents { rx: events_rx }, driver))
}

/// The client's events, in order. Iteration blocks for the next event and ends after
/// the client is closed for good (closed by the application, or gave up). Events queue
/// without bound, so an application that reads slowly never stalls the connection's
/// heartbeat.
#[derive(Debug)]
pub struct ClientEvents {
    rx: mpsc::Receiver<ClientEvent>,
}

impl ClientEvents {
    /// The next event, waiting at most `timeout`. `Err(Timeout)` if none came,
    /// `Err(Disconnected)` after the client is closed for good.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ClientEvent, mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next event if one is ready.
    pub fn try_recv(&self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for ClientEvents {
    type Item = ClientEvent;

    fn next(&mut self) -> Option<ClientEvent> {
        self.rx.recv().ok()
    }
}

type Ws = WebSocket<MaybeTls>;

fn remaining(deadline: Instant) -> Result<Duration, AttemptError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(AttemptError::Io("connect timeout".to_owned()))
    } else {
        Ok(left)
    }
}

/// One connection attempt: target, TCP, TLS, WebSocket handshake, each blocking call
/// bounded by the core's `deadline` for the attempt.
fn attempt(prepared: &Prepared, number: u32, deadline: Instant) -> Result<Ws, AttemptError> {
    let (request, endpoint) = prepared.target(number)?;
    let (host, port) = (endpoint.host.as_str(), endpoint.port);
    let io_err = |e: io::Error| AttemptError::Io(format!("connect to {host}:{port}: {e}"));
    // The resolver cannot be cancelled: it runs on a thread of its own, and the attempt
    // stops waiting for it at the deadline.
    let (tx, rx) = mpsc::sync_channel(1);
    resolve(host, port, move |result| drop(tx.try_send(result))).map_err(io_err)?;
    let addrs = match rx.recv_timeout(remaining(deadline)?) {
        Ok(result) => result.map_err(io_err)?,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(AttemptError::Io(format!(
                "connect to {host}:{port}: connect timeout while resolving the name"
            )))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(AttemptError::Io(format!(
                "connect to {host}:{port}: name resolution ended without an answer"
            )))
        }
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or_else(|| io_err(last))?;
    tcp.set_nodelay(true).map_err(io_err)?;
    // The TLS and WebSocket handshakes must also finish before the deadline.
    let left = remaining(deadline)?;
    tcp.set_read_timeout(Some(left)).map_err(io_err)?;
    tcp.set_write_timeout(Some(left)).map_err(io_err)?;
    let stream = tls::wrap(tcp, &endpoint, prepared).map_err(AttemptError::Io)?;
    let (ws, _response) =
        match tungstenite::client::client_with_config(request, stream, Some(prepared.ws_config)) {
            Ok(ok) => ok,
            Err(HandshakeError::Failure(e)) => return Err(e.into()),
            Err(HandshakeError::Interrupted(_)) => {
                return Err(AttemptError::Io(
                    "connect timeout during the handshake".to_owned(),
                ))
            }
        };
    Ok(ws)
}

/// The socket's token; the handles' wake-up has its own.
const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Most messages read in one turn before the core's actions and deadlines get theirs.
const READ_BATCH: usize = 64;

/// Runs the client on the calling thread until it is closed for good. Usually started
/// by [`connect`].
#[must_use = "the client does nothing until its driver runs"]
pub struct Driver {
    prepared: Prepared,
    /// Waits for the socket, the handles' wake-ups and the deadlines.
    poll: Poll,
    events: mpsc::Sender<ClientEvent>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// The open connection.
struct Link {
    conn: ConnId,
    ws: Ws,
    /// A second descriptor of the same socket, registered with the poller: the
    /// connection's own stream may sit inside TLS.
    registered: mio::net::TcpStream,
    /// The socket takes no more (reported to the core, whose write timeout runs).
    stalled: bool,
    /// Reading stopped at [`READ_BATCH`] with more to read.
    more: bool,
    /// The peer broke the protocol: nothing more is read, and the connection is
    /// dropped once the core's Close frame is written.
    failed: bool,
}

impl Driver {
    fn core(&self) -> &SharedCore {
        &self.prepared.core
    }

    /// Passes an event on. A dropped iterator is not an error: the client keeps running
    /// for its handles.
    fn notify(&self) -> impl FnMut(ClientEvent) + '_ {
        |event| {
            let _ = self.events.send(event);
        }
    }

    /// Runs the client until it is closed for good, then returns.
    pub fn run(mut self) {
        let mut link: Option<Link> = None;
        let mut ready = Events::with_capacity(4);
        let mut actions = VecDeque::new();
        loop {
            // Execute every action the core has for us: messages go into tungstenite's
            // buffer one after the other and are flushed once at the end.
            let mut unflushed = false;
            // While the socket takes no more, new messages wait in the core (counted in
            // `buffered_amount`, given back to the queue if the connection is lost)
            // instead of piling up in tungstenite's buffer; the core's write timeout
            // bounds the wait. A connection the core has given up on meanwhile is
            // dropped.
            if let Some(open) = link.as_ref().filter(|l| l.stalled) {
                if self.core().lock().current_conn() != Some(open.conn) {
                    self.close_link(&mut link);
                }
            }
            let stalled = |link: &Option<Link>| link.as_ref().is_some_and(|l| l.stalled);
            if stalled(&link) {
                self.core().pass_notices(self.notify());
            }
            while !stalled(&link) {
                let idle = link.is_none();
                self.core()
                    .take_actions(None, idle, &mut actions, self.notify());
                if actions.is_empty() {
                    break;
                }
                while let Some(action) = actions.pop_front() {
                    let open = link.as_ref().map(|l| l.conn);
                    unflushed |= self.execute(self.prepared.step(action), &mut link);
                    // A failed write ended the connection: what is left for it waits
                    // for the next one.
                    if let (Some(conn), None) = (open, &link) {
                        self.core().give_back(conn, &mut actions);
                    }
                }
            }
            if unflushed {
                self.flush(&mut link);
            }
            if let Some(open) = link.as_ref().filter(|l| l.failed && !l.stalled) {
                let conn = open.conn;
                self.close_link(&mut link);
                self.disconnected(conn, None);
                continue;
            }
            let wake_at = match self.core().wait(link.is_none()) {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            let timeout = if link.as_ref().is_some_and(|l| l.more) {
                Some(Duration::ZERO)
            } else {
                wake_at.map(|at| at.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut ready, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // The poller failed: nothing can be waited for any more. Give the
                    // connection up; the core decides what comes next.
                    if let Some(open) = link.take() {
                        self.disconnected(open.conn, Some(&format!("poll failed: {e}")));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let (mut readable, mut writable) = (false, false);
            for event in ready.iter() {
                if event.token() == SOCKET {
                    writable |= event.is_writable();
                    readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                }
            }
            if writable && link.as_ref().is_some_and(|l| l.stalled) {
                self.flush(&mut link);
            }
            if (readable || link.as_ref().is_some_and(|l| l.more))
                && !link.as_ref().is_some_and(|l| l.failed)
            {
                self.read(&mut link);
            }
            handle_due(&mut self.core().lock(), Instant::now());
        }
        self.close_link(&mut link);
        let _ = self.core().next_action(self.notify());
    }

    /// Reads what the socket has (up to [`READ_BATCH`] messages) and feeds it in, all
    /// under one lock of the core.
    fn read(&self, slot: &mut Option<Link>) {
        let Some(open) = slot.as_mut() else { return };
        let conn = open.conn;
        open.more = false;
        let mut reply = false;
        let mut messages = Vec::new();
        let mut violation = None;
        let error = loop {
            if messages.len() == READ_BATCH {
                open.more = true;
                break None;
            }
            match open.ws.read() {
                Ok(message) => {
                    // A Ping or Close makes tungstenite queue its reply: send it now,
                    // so the peer's heartbeat is answered at once.
                    reply |= matches!(
                        message,
                        tungstenite::Message::Ping(_) | tungstenite::Message::Close(_)
                    );
                    messages.push(wire::unshare(message, open.ws.get_config()));
                }
                Err(e) if wire::would_block(&e) => break None,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    break Some(None)
                }
                Err(e) => match wire::violation(&e) {
                    Some(code) => {
                        violation = Some(code);
                        break None;
                    }
                    None => break Some(Some(e.to_string())),
                },
            }
        };
        if !messages.is_empty() {
            let mut events = VecDeque::new();
            self.core()
                .feed_all(conn, Instant::now(), messages, &mut events);
            events.into_iter().for_each(self.notify());
        }
        if let Some((code, reason)) = violation {
            open.failed = true;
            open.more = false;
            self.core()
                .event(Event::Violation(conn, code, reason), self.notify());
        }
        match error {
            None if reply => self.flush(slot),
            None => {}
            Some(error) => {
                self.close_link(slot);
                self.disconnected(conn, error.as_deref());
            }
        }
    }

    fn disconnected(&self, conn: ConnId, error: Option<&str>) {
        self.core()
            .event(Event::Disconnected(conn, error), self.notify());
    }

    /// Drops the connection, taking its socket off the poller.
    fn close_link(&self, link: &mut Option<Link>) {
        if let Some(mut open) = link.take() {
            // Closing the descriptors removes them from the poller anyway.
            let _ = self.poll.registry().deregister(&mut open.registered);
        }
    }

    /// Makes a fresh connection non-blocking and registers it with the poller.
    fn open(&self, conn: ConnId, ws: Ws) -> io::Result<Link> {
        let tcp = ws.get_ref().tcp();
        tcp.set_nonblocking(true)?;
        let mut registered = mio::net::TcpStream::from_std(tcp.try_clone()?);
        self.poll.registry().register(
            &mut registered,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(Link {
            conn,
            ws,
            registered,
            stalled: false,
            // What came with the handshake, or is buffered in TLS, is read at once.
            more: true,
            failed: false,
        })
    }

    /// Executes one action of the core's; `true` if it wrote without flushing.
    fn execute(&self, step: Step, link: &mut Option<Link>) -> bool {
        match step {
            Step::Connect {
                conn,
                attempt: number,
                deadline,
            } => {
                self.close_link(link);
                match attempt(&self.prepared, number, deadline) {
                    Ok(ws) => {
                        let d = self.core().event(Event::Connected(conn), self.notify());
                        // Stale: the application closed meanwhile; drop the socket.
                        if d != Disposition::Stale {
                            match self.open(conn, ws) {
                                Ok(open) => *link = Some(open),
                                Err(e) => self.disconnected(conn, Some(&e.to_string())),
                            }
                        }
                    }
                    Err(failure) => {
                        self.core().event(
                            Event::ConnectFailed(conn, failure.as_error()),
                            self.notify(),
                        );
                    }
                }
            }
            // The core has moved on: nothing to report.
            Step::Abort { conn } => {
                if link.as_ref().is_some_and(|l| l.conn == conn) {
                    self.close_link(link);
                }
            }
            Step::Write { conn, message } => {
                let Some(open) = link.as_mut().filter(|l| l.conn == conn) else {
                    return false;
                };
                let result = open.ws.write(message);
                return self.wrote(link, result);
            }
            Step::Nothing => {}
        }
        false
    }

    /// Flushes what [`Driver::execute`] wrote.
    fn flush(&self, link: &mut Option<Link>) {
        if let Some(open) = link.as_mut() {
            let result = open.ws.flush();
            if self.wrote(link, result) {
                if let Some(open) = link.as_mut().filter(|l| l.stalled) {
                    open.stalled = false;
                    self.core()
                        .event(Event::WriteFlushed(open.conn), self.notify());
                }
            }
        }
    }

    /// Handles the outcome of a write or flush: `true` if all of it is on the wire.
    /// A socket that takes no more leaves the rest in tungstenite's buffer until it
    /// is writable again, for at most the core's write timeout.
    fn wrote(&self, link: &mut Option<Link>, result: Result<(), tungstenite::Error>) -> bool {
        let Some(open) = link.as_mut() else {
            return false;
        };
        let conn = open.conn;
        let error = match result {
            Ok(()) => return true,
            // The close handshake finished: the read side reports the end.
            Err(tungstenite::Error::ConnectionClosed) => return false,
            Err(e) if wire::would_block(&e) => {
                if !open.stalled {
                    open.stalled = true;
                    self.core().event(Event::WriteBlocked(conn), self.notify());
                }
                return false;
            }
            Err(e) => e.to_string(),
        };
        self.close_link(link);
        self.disconnected(conn, Some(&error));
        false
    }
}
