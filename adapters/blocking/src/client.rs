//! The blocking client: a builder, the event iterator, and the driver that runs the
//! [`heartline_core::Client`] over tungstenite on `std::net`.
//!
//! The driver is a loop on its own thread. Each turn it drains the core's actions and
//! executes them, then blocks in a read whose timeout is the time to the core's next
//! deadline (at least 1 ms, at most [`ClientBuilder::command_latency`]); a read that
//! times out is a timer check. After waking it takes a fresh [`Instant::now()`] and
//! feeds the core. Every decision (when to ping, when the peer is dead, when to
//! reconnect) is the core's.
//!
//! A connection attempt blocks the driver: the TCP connect and the TLS and WebSocket
//! handshakes for at most the connect timeout (name resolution for as long as the OS
//! resolver takes); a `close()` requested meanwhile takes effect when the attempt ends.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{ConnId, Disposition, Event};
use tungstenite::handshake::HandshakeError;
use tungstenite::WebSocket;

use crate::tls::{self, MaybeTls};
use heartline_tungstenite::client::{
    AttemptError, BuildError, ClientEvent, ClientHandle, Options, Prepared, SharedCore, Step,
};

/// Default command latency: 5 ms. While a connection is open the driver blocks in a
/// read, so a message sent from a handle reaches the wire within this time; a shorter
/// value costs more wake-ups on an idle connection (200 per second at 5 ms).
pub const DEFAULT_COMMAND_LATENCY: Duration = Duration::from_millis(5);

/// Builds a blocking client: URL, heartline configuration, WebSocket buffer sizes,
/// timeouts, TLS roots and an optional per-attempt callback.
#[derive(Debug)]
pub struct ClientBuilder {
    options: Options,
    command_latency: Duration,
}

impl ClientBuilder {
    /// A client for `url` (`ws://` or `wss://`) with the default configuration.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            options: Options::new(url),
            command_latency: DEFAULT_COMMAND_LATENCY,
        }
    }

    heartline_tungstenite::client_builder_options!();

    /// The longest the driver blocks in a read before it looks at what the handles did:
    /// a message sent or a close requested from a handle reaches the wire within this
    /// time. Default [`DEFAULT_COMMAND_LATENCY`]; at least 1 ms.
    pub fn command_latency(mut self, latency: Duration) -> Self {
        self.command_latency = latency.max(Duration::from_millis(1));
        self
    }

    /// Builds the client and starts its driver on a thread of its own: a handle and the
    /// event iterator.
    pub fn connect(self) -> Result<(ClientHandle, ClientEvents), BuildError> {
        let (handle, events, driver) = self.build()?;
        thread::Builder::new()
            .name("heartline-client".into())
            .spawn(move || driver.run())
            .map_err(BuildError::Spawn)?;
        Ok((handle, events))
    }

    /// Builds the client without starting it: a handle, the event iterator, and the
    /// driver, whose [`Driver::run`] blocks the calling thread until the client is
    /// closed for good.
    pub fn build(self) -> Result<(ClientHandle, ClientEvents, Driver), BuildError> {
        let (wake_tx, wake_rx) = mpsc::sync_channel(1);
        // Full means a wake is already pending: the driver will see this change too.
        let (handle, prepared) = self.options.prepare(move || {
            let _ = wake_tx.try_send(());
        })?;
        let (events_tx, events_rx) = mpsc::channel();
        let driver = Driver {
            prepared,
            command_latency: self.command_latency,
            wake: wake_rx,
            events: events_tx,
        };
        Ok((handle, ClientEvents { rx: events_rx }, driver))
    }
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

/// One connection attempt: target, TCP, TLS, WebSocket handshake, within `timeout`.
fn attempt(prepared: &Prepared, number: u32, timeout: Duration) -> Result<Ws, AttemptError> {
    let deadline = Instant::now() + timeout;
    let (request, endpoint) = prepared.target(number)?;
    let (host, port) = (endpoint.host.as_str(), endpoint.port);
    let io_err = |e: io::Error| AttemptError::Io(format!("connect to {host}:{port}: {e}"));
    // Name resolution has no timeout of its own in std; the OS resolver bounds it.
    let addrs = (host, port).to_socket_addrs().map_err(io_err)?;
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
    ws.get_ref()
        .tcp()
        .set_write_timeout(Some(prepared.write_timeout))
        .map_err(io_err)?;
    Ok(ws)
}

/// Runs the client on the calling thread until it is closed for good. Usually started
/// by [`ClientBuilder::connect`].
#[must_use = "the client does nothing until its driver runs"]
pub struct Driver {
    prepared: Prepared,
    command_latency: Duration,
    /// Wakes the driver while it has no connection to read from.
    wake: mpsc::Receiver<()>,
    events: mpsc::Sender<ClientEvent>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// The open connection and the read timeout last set on it.
struct Link {
    conn: ConnId,
    ws: Ws,
    read_timeout: Option<Duration>,
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
    pub fn run(self) {
        let mut link: Option<Link> = None;
        loop {
            // Execute every action the core has for us: messages go into tungstenite's
            // buffer one after the other and are flushed once at the end.
            let mut unflushed = false;
            while let Some(action) = self.core().next_action(self.notify()) {
                unflushed |= self.execute(self.prepared.step(action), &mut link);
            }
            if unflushed {
                self.flush(&mut link);
            }
            let Some(deadline) = self.core().next_deadline(link.is_none()) else {
                break;
            };
            let now = Instant::now();
            let wait = deadline.map_or(Some(Duration::MAX), |d| d.checked_duration_since(now));
            match wait {
                // Due now: no wait.
                None | Some(Duration::ZERO) => {}
                Some(wait) if link.is_some() => {
                    self.read(&mut link, wait.min(self.command_latency));
                }
                // Nothing to read: wait for a handle's wake or the deadline.
                Some(wait) => {
                    let _ = self.wake.recv_timeout(wait);
                }
            }
            self.core().lock().handle_timeout(Instant::now());
        }
        let _ = self.core().next_action(self.notify());
    }

    /// Reads one message (or times out after `wait`, a timer check) and feeds it in.
    fn read(&self, slot: &mut Option<Link>, wait: Duration) {
        let Some(open) = slot.as_mut() else { return };
        let conn = open.conn;
        let wait = wait.max(Duration::from_millis(1));
        if open.read_timeout != Some(wait) {
            if let Err(e) = open.ws.get_ref().tcp().set_read_timeout(Some(wait)) {
                *slot = None;
                self.disconnected(conn, Some(&e.to_string()));
                return;
            }
            open.read_timeout = Some(wait);
        }
        let error = match open.ws.read() {
            Ok(message) => {
                // A Ping or Close makes tungstenite queue its reply: send it now, not
                // at the next write, so the peer's heartbeat is answered at once.
                let reply = matches!(
                    message,
                    tungstenite::Message::Ping(_) | tungstenite::Message::Close(_)
                );
                self.core().feed(conn, message, self.notify());
                if !reply {
                    return;
                }
                match open.ws.flush() {
                    Ok(()) | Err(tungstenite::Error::ConnectionClosed) => return,
                    Err(e) => Some(e.to_string()),
                }
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => None,
            Err(e) => Some(e.to_string()),
        };
        *slot = None;
        self.disconnected(conn, error.as_deref());
    }

    fn disconnected(&self, conn: ConnId, error: Option<&str>) {
        self.core()
            .event(Event::Disconnected(conn, error), self.notify());
    }

    /// Executes one action of the core's; `true` if it wrote without flushing.
    fn execute(&self, step: Step, link: &mut Option<Link>) -> bool {
        match step {
            Step::Connect {
                conn,
                attempt: number,
                timeout,
            } => {
                *link = None;
                match attempt(&self.prepared, number, timeout) {
                    Ok(ws) => {
                        let d = self.core().event(Event::Connected(conn), self.notify());
                        // Stale: the application closed meanwhile; drop the socket.
                        if d != Disposition::Stale {
                            *link = Some(Link {
                                conn,
                                ws,
                                read_timeout: None,
                            });
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
            Step::Abort { conn } => {
                if link.as_ref().is_some_and(|l| l.conn == conn) {
                    *link = None;
                    self.disconnected(conn, None);
                }
            }
            Step::Write { conn, message } => {
                let Some(open) = link.as_mut().filter(|l| l.conn == conn) else {
                    return false;
                };
                let result = open.ws.write(message);
                return self.wrote(link, conn, result);
            }
            Step::Nothing => {}
        }
        false
    }

    /// Flushes what [`Driver::execute`] wrote.
    fn flush(&self, link: &mut Option<Link>) {
        if let Some(open) = link.as_mut() {
            let conn = open.conn;
            let result = open.ws.flush();
            self.wrote(link, conn, result);
        }
    }

    /// Handles the outcome of a write or flush: `true` if the connection is still fine.
    fn wrote(
        &self,
        link: &mut Option<Link>,
        conn: ConnId,
        result: Result<(), tungstenite::Error>,
    ) -> bool {
        let error = match result {
            Ok(()) => return true,
            // The close handshake finished: the read side reports the end.
            Err(tungstenite::Error::ConnectionClosed) => return false,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                "write timed out: the peer is not reading".to_owned()
            }
            Err(e) => e.to_string(),
        };
        *link = None;
        self.disconnected(conn, Some(&error));
        false
    }
}
