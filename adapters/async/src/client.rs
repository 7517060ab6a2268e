//! The async client: a builder, the event stream, and the driver that runs the
//! [`heartline_core::Client`] over async-tungstenite.
//!
//! The driver is one future. Each turn it drains the core's actions and executes them,
//! then waits for whichever comes first: a frame (or the handshake's end) on the
//! connection, a nudge from a handle, or the core's one next deadline on an
//! [`async_io::Timer`]. After waking it reads the clock once ([`Instant::now()`]) and
//! feeds the core everything that arrived, with that time.
//! Every decision (when to ping, when the peer is dead, when to reconnect) is the core's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_io::{Async, Timer};
use async_tungstenite::tungstenite;
use async_tungstenite::WebSocketStream;
use futures_lite::{future, AsyncRead, AsyncWrite, Stream, StreamExt};
use futures_util::task::AtomicWaker;
use futures_util::{Sink, SinkExt};
use heartline_core::{Action, CloseError, ConnId, Disposition, Event, Message, SendError};
use heartline_tungstenite::client::{
    AttemptError, BuildError, ClientEvent, ClientHandle, Options, Prepared, SharedCore, Step,
};
use heartline_tungstenite::{wire, Wait};

use crate::handoff::{self, EventReceiver, EventSender, Nudge};
use crate::tls::{self, MaybeTls};

/// Opens the TCP (or other byte) stream for a connection attempt; TLS and the WebSocket
/// handshake happen on top. Implement it to run the client over any futures-io stream.
pub trait Connector: Send + Sync + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `host:port`. The driver bounds the whole attempt by the core's
    /// connect timeout, so this need not time out by itself.
    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>>;
}

/// The default connector: a [`TcpStream`](crate::TcpStream) registered with the
/// async-io reactor (the one smol and async-std share), with `TCP_NODELAY` set. Host
/// names are resolved on a short-lived thread so resolution never blocks the executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = crate::TcpStream;

    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'static>> {
        Box::pin(async move {
            let addrs = resolve(host, port).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
            for addr in addrs {
                match Async::<TcpStream>::connect(addr).await {
                    Ok(stream) => {
                        stream.get_ref().set_nodelay(true)?;
                        return Ok(crate::TcpStream::new(stream));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

/// Resolves `host`; an IP literal needs no lookup, a name is looked up on a thread.
async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    let (tx, rx) = async_channel::bounded(1);
    heartline_tungstenite::resolve::resolve(&host, port, move |result| {
        let _ = tx.try_send(result);
    })?;
    rx.recv()
        .await
        .map_err(|_| io::Error::other("name resolution thread ended without an answer"))?
}

/// Builds an async client: URL, heartline configuration, WebSocket buffer sizes, write
/// timeout, TLS roots and an optional per-attempt callback.
#[derive(Debug)]
pub struct ClientBuilder {
    options: Options,
}

impl ClientBuilder {
    /// A client for `url` (`ws://` or `wss://`) with the default configuration.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            options: Options::new(url),
        }
    }

    heartline_tungstenite::client_builder_options!();

    /// Builds the client with the default [`TcpConnector`]: a handle, the event stream,
    /// and the driver future, which must be spawned (or awaited) for anything to happen.
    pub fn build(self) -> Result<(ClientHandle, ClientEvents, Driver<TcpConnector>), BuildError> {
        self.build_with(TcpConnector)
    }

    /// Builds the client with the default [`TcpConnector`] and an event handler instead
    /// of an event stream; see [`ClientBuilder::build_with_handler`].
    pub fn build_handler<F>(
        self,
        handler: F,
    ) -> Result<(ClientHandle, Driver<TcpConnector>), BuildError>
    where
        F: FnMut(ClientEvent, &Responder<'_>) + Send + 'static,
    {
        self.build_with_handler(TcpConnector, handler)
    }

    /// Builds the client with a custom [`Connector`].
    pub fn build_with<C: Connector>(
        self,
        connector: C,
    ) -> Result<(ClientHandle, ClientEvents, Driver<C>), BuildError> {
        let (handle, events, driver) = self.build_parts(connector, None)?;
        Ok((handle, ClientEvents { rx: events }, driver))
    }

    /// Builds the client with an event handler instead of an event stream: the driver
    /// calls `handler` with every event, in order, on its own task. What the handler
    /// sends through its [`Responder`] goes out in the same turn of the driver, with no
    /// task switch: the fastest way to answer messages.
    ///
    /// The handler runs between the driver's reads and writes: keep it short and never
    /// block in it (hand long work to a task of your own), or heartbeats wait for it. A
    /// panic in the handler ends the driver.
    pub fn build_with_handler<C, F>(
        self,
        connector: C,
        handler: F,
    ) -> Result<(ClientHandle, Driver<C>), BuildError>
    where
        C: Connector,
        F: FnMut(ClientEvent, &Responder<'_>) + Send + 'static,
    {
        let (handle, _, driver) = self.build_parts(connector, Some(Box::new(handler)))?;
        Ok((handle, driver))
    }

    fn build_parts<C: Connector>(
        self,
        connector: C,
        handler: Option<Handler>,
    ) -> Result<(ClientHandle, EventReceiver, Driver<C>), BuildError> {
        let nudge = Arc::new(Nudge::default());
        let handles_nudge = Arc::clone(&nudge);
        let (handle, prepared) = self.options.prepare(move || handles_nudge.nudge())?;
        let (events_tx, events_rx) = handoff::events();
        let (events_rx, handler) = match handler {
            // The driver reads its own queue and hands each event to the handler.
            Some(handler) => {
                let (_, unused) = handoff::events();
                (unused, Some(Mutex::new((events_rx, handler))))
            }
            None => (events_rx, None),
        };
        let driver = Driver {
            prepared: Arc::new(prepared),
            nudge,
            events: events_tx,
            handler,
            connector: Arc::new(connector),
        };
        Ok((handle, events_rx, driver))
    }
}

/// An application's event handler, called on the driver's task.
type Handler = Box<dyn FnMut(ClientEvent, &Responder<'_>) + Send>;

/// What an event handler may do from the driver's task: send and close. Its sends are
/// written in the same turn of the driver, without waking anyone.
pub struct Responder<'a> {
    core: &'a SharedCore,
    /// The open connection, when the handler runs right after a read: a message the
    /// core lets through is written to it at once, not queued as an action.
    direct: Option<RefCell<&'a mut dyn DirectWrite>>,
}

impl fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder<'_> {
    /// Sends a message, as [`ClientHandle::send`] does.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let message = message.into();
        let Some(direct) = &self.direct else {
            // The driver takes the core's actions right after the handler returns.
            return self.core.lock().send_untimed(message);
        };
        let mut direct = direct.borrow_mut();
        let Some(conn) = direct.conn() else {
            return self.core.lock().send_untimed(message);
        };
        // The core decides; the write itself happens outside its lock.
        let Some(message) = self.core.lock().send_now(conn, message)? else {
            return Ok(());
        };
        match direct.write(message) {
            Ok(()) => Ok(()),
            // The socket's buffer is full: queue it (first in line, as nothing was
            // pending) for the driver to write once the socket takes more.
            Err(message) => self.core.lock().send_untimed(message),
        }
    }

    /// Sends a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send(Message::Binary(data.into()))
    }

    /// Closes for good, as [`ClientHandle::close`] does.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        self.core.lock().close(Instant::now(), code, reason)
    }
}

/// The open connection as a [`Responder`] writes to it directly.
trait DirectWrite {
    /// The connection, while it can still be written to.
    fn conn(&self) -> Option<ConnId>;
    /// Writes `message` into the WebSocket's buffer (flushed by the driver after the
    /// handler returns), or gives it back if the buffer is full. A failed write ends
    /// direct writing; the driver reports the failure.
    fn write(&mut self, message: Message) -> Result<(), Message>;
}

/// [`DirectWrite`] over the driver's open stream, within one poll of the driver.
struct DirectSink<'a, 'b, S> {
    ws: &'a mut S,
    cx: &'a mut Context<'b>,
    conn: ConnId,
    /// Something was written and needs a flush.
    wrote: bool,
    /// The write failed, with the error if it is worth reporting.
    failed: Option<Option<String>>,
}

impl<S> DirectWrite for DirectSink<'_, '_, S>
where
    S: Sink<tungstenite::Message, Error = tungstenite::Error> + Unpin,
{
    fn conn(&self) -> Option<ConnId> {
        self.failed.is_none().then_some(self.conn)
    }

    fn write(&mut self, message: Message) -> Result<(), Message> {
        let result = match Pin::new(&mut *self.ws).poll_ready(self.cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut *self.ws).start_send(wire::to_message(message)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => return Err(message),
        };
        match written(result) {
            Ok(()) => self.wrote = true,
            Err(error) => self.failed = Some(error),
        }
        Ok(())
    }
}

/// The client's events, in order. The stream ends after the client is closed for good
/// (closed by the application, or gave up).
///
/// Events queue without bound, so an application that reads slowly never stalls the
/// connection's heartbeat; the queue holds what the application has not read yet.
/// Once this is dropped, events are discarded (the client keeps running for its
/// handles).
#[derive(Debug)]
pub struct ClientEvents {
    rx: EventReceiver,
}

impl ClientEvents {
    /// The next event, or `None` after the client is closed for good.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.rx.poll_recv(Some(cx))).await
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        match self.rx.poll_recv(None) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }
}

impl Stream for ClientEvents {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(Some(cx))
    }
}

type Ws<C> = WebSocketStream<MaybeTls<<C as Connector>::Stream>>;
// The stream comes boxed: it is large, and what woke the driver passes through every
// turn's select.
type Attempt<C> = Pin<Box<dyn Future<Output = Result<Box<Ws<C>>, AttemptError>> + Send>>;

/// One connection attempt: target, TCP, TLS, WebSocket handshake. The core bounds it:
/// at its connect deadline it says [`Step::Abort`], and the driver drops the attempt.
fn attempt<C: Connector>(connector: Arc<C>, prepared: Arc<Prepared>, number: u32) -> Attempt<C> {
    Box::pin(async move {
        let (request, endpoint) = prepared.target(number)?;
        let (host, port) = (endpoint.host.clone(), endpoint.port);
        let tcp = connector
            .connect(host.clone(), port)
            .await
            .map_err(|e| AttemptError::Io(format!("connect to {host}:{port}: {e}")))?;
        let stream = tls::wrap(tcp, &endpoint, &prepared)
            .await
            .map_err(AttemptError::Io)?;
        let config = Some(prepared.ws_config);
        let (ws, _response) =
            async_tungstenite::client_async_with_config(request, stream, config).await?;
        Ok(Box::new(ws))
    })
}

/// The connection as the driver holds it. One per client, so the open stream is kept
/// inline rather than boxed.
#[allow(clippy::large_enum_variant)]
enum Link<C: Connector> {
    Idle,
    Connecting { conn: ConnId, attempt: Attempt<C> },
    Open { conn: ConnId, ws: Ws<C> },
}

impl<C: Connector> Link<C> {
    fn conn(&self) -> Option<ConnId> {
        match self {
            Link::Idle => None,
            Link::Connecting { conn, .. } | Link::Open { conn, .. } => Some(*conn),
        }
    }
}

/// What woke the driver (a short-lived value on the driver's stack).
enum Wake<C: Connector> {
    Connected(Result<Box<Ws<C>>, AttemptError>),
    Read(Option<Result<tungstenite::Message, tungstenite::Error>>),
    Nudge,
    Deadline,
}

/// The future that runs the client: spawn it on any executor whose reactor is async-io
/// (smol, async-std), or `await` it. It completes once the client is closed for good.
#[must_use = "the client does nothing until its driver runs"]
pub struct Driver<C: Connector> {
    prepared: Arc<Prepared>,
    nudge: Arc<Nudge>,
    events: EventSender,
    /// With an event handler: the driver's own end of the event queue and the handler
    /// (locked only by the driver, which keeps the driver future `Send`).
    handler: Option<Mutex<(EventReceiver, Handler)>>,
    connector: Arc<C>,
}

impl<C: Connector> fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl<C: Connector> Driver<C> {
    /// Passes an event on. A dropped stream is not an error: the client keeps running
    /// for its handles.
    fn notify(&self) -> impl FnMut(ClientEvent) + '_ {
        |event| self.events.push(event)
    }

    fn core(&self) -> &SharedCore {
        &self.prepared.core
    }

    /// Hands the queued events to the handler, if there is one. Whatever it sends is
    /// taken by the driver's next look at the core, which comes right after: those
    /// sends need not wake it.
    fn deliver(&self) {
        self.deliver_with(&mut VecDeque::new(), None);
    }

    /// Like [`Driver::deliver`], then hands `more` (leaving it empty) straight to the
    /// handler, without the queue. Without a handler, `more` goes to the queue. With
    /// `direct`, the handler's sends are written to the open connection at once.
    fn deliver_with<'s>(
        &'s self,
        more: &mut VecDeque<ClientEvent>,
        direct: Option<&'s mut (dyn DirectWrite + 's)>,
    ) {
        let Some(handler) = &self.handler else {
            self.events.push_all(more);
            return;
        };
        // A handler that panicked left its state as it was: call it again regardless.
        let mut handler = heartline_tungstenite::lock(handler);
        let (events, handler) = &mut *handler;
        self.nudge.hold();
        let responder = Responder {
            core: self.core(),
            direct: direct.map(RefCell::new),
        };
        while let Poll::Ready(Some(event)) = events.poll_recv(None) {
            handler(event, &responder);
        }
        for event in more.drain(..) {
            handler(event, &responder);
        }
    }

    /// Passes on the events of a read. A handler's answers are written to the open
    /// connection as it sends them; `true` if any was, so a flush is due.
    async fn deliver_read(&self, link: &mut Link<C>, events: &mut VecDeque<ClientEvent>) -> bool {
        let (Some(_), Link::Open { conn, ws }) = (&self.handler, &mut *link) else {
            self.deliver_with(events, None);
            return false;
        };
        let conn = *conn;
        let (wrote, failed) = future::poll_fn(|cx| {
            let mut sink = DirectSink {
                ws: &mut *ws,
                cx,
                conn,
                wrote: false,
                failed: None,
            };
            self.deliver_with(events, Some(&mut sink));
            Poll::Ready((sink.wrote, sink.failed))
        })
        .await;
        match failed {
            Some(error) => {
                self.write_failed(link, conn, error);
                false
            }
            None => wrote,
        }
    }

    /// Runs the client until it is closed for good.
    pub async fn run(self) {
        let mut link: Link<C> = Link::Idle;
        // One timer for the driver's life, re-armed only when the core's deadline moves
        // earlier; a deadline that moved later costs one early wake-up instead of a
        // timer registration per message.
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        // Room reused every turn: the core's actions, the messages read in one go, and
        // the events they make.
        let mut scratch = Scratch {
            actions: VecDeque::new(),
            read: Vec::new(),
            events: VecDeque::new(),
        };
        let mut readable = Readable::new();
        let mut now = Instant::now();
        loop {
            self.deliver();
            let deadline = match self.run_actions(&mut link, now, &mut scratch.actions).await {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            if let Some(d) = deadline {
                // `now` is from this turn's start: a deadline that came due since makes
                // the timer fire at once.
                if d <= now {
                    continue;
                }
                if armed.is_none_or(|a| d < a) {
                    timer.set_at(d);
                    armed = Some(d);
                }
            }
            let io = async {
                match &mut link {
                    Link::Idle => future::pending().await,
                    Link::Connecting { attempt, .. } => Wake::Connected(attempt.as_mut().await),
                    Link::Open { ws, .. } => {
                        Wake::Read(future::poll_fn(|cx| readable.poll_next(ws, cx)).await)
                    }
                }
            };
            let nudge = async {
                future::poll_fn(|cx| self.nudge.poll(cx)).await;
                Wake::Nudge
            };
            let tick = async {
                (&mut timer).await;
                Wake::Deadline
            };
            let woke: Wake<C> = future::or(io, future::or(nudge, tick)).await;
            // The one clock reading of this turn.
            now = Instant::now();
            match woke {
                Wake::Connected(result) => {
                    self.connected(&mut link, result);
                    readable.set();
                }
                Wake::Read(item) => {
                    let replied = self
                        .read(&mut link, item, now, &readable, &mut scratch)
                        .await;
                    // tungstenite queued a Pong (or Close) reply: flush it now, so the
                    // peer's heartbeat is answered at once.
                    if let (true, Link::Open { conn, ws }) = (replied, &mut link) {
                        let conn = *conn;
                        if let Err(error) = self.bounded(ws.flush(), conn).await {
                            self.write_failed(&mut link, conn, error);
                        }
                    }
                    // Let the application see the new messages first: what it sends in
                    // answer then goes out with this turn's flush, not a turn later. The
                    // driver looks at the core right after, so those sends need not
                    // wake it. A handler is called at the top of the loop, in this turn.
                    if self.handler.is_none() {
                        self.nudge.hold();
                        future::yield_now().await;
                    }
                }
                Wake::Deadline => armed = None,
                Wake::Nudge => {}
            }
        }
        let _ = self.core().next_action(self.notify());
        self.deliver();
    }

    /// The attempt ended: open, or report the failure.
    fn connected(&self, link: &mut Link<C>, result: Result<Box<Ws<C>>, AttemptError>) {
        let Link::Connecting { conn, .. } = *link else {
            return;
        };
        *link = Link::Idle;
        match result {
            Ok(ws) => {
                let d = self.core().event(Event::Connected(conn), self.notify());
                // Stale: the application closed meanwhile; drop the socket.
                if d != Disposition::Stale {
                    *link = Link::Open { conn, ws: *ws };
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

    /// Feeds what a read gave (a message, the end of the connection, or an error) and
    /// whatever else has already arrived, to the core in one go; then passes the events
    /// on. `true` if a flush is due: tungstenite queued an automatic reply (to a Ping or
    /// Close), or a handler's answers were written.
    async fn read(
        &self,
        link: &mut Link<C>,
        item: Option<Result<tungstenite::Message, tungstenite::Error>>,
        now: Instant,
        readable: &Readable,
        scratch: &mut Scratch,
    ) -> bool {
        let Link::Open { conn, ws } = link else {
            return false;
        };
        let conn = *conn;
        let mut replied = false;
        let mut item = Poll::Ready(item);
        // `Some` once the connection ended, with the error if there was one. Whatever
        // else has already arrived is taken without waiting.
        let ended = loop {
            match std::mem::replace(&mut item, Poll::Pending) {
                Poll::Ready(Some(Ok(message))) => {
                    replied |= matches!(
                        message,
                        tungstenite::Message::Ping(_) | tungstenite::Message::Close(_)
                    );
                    scratch.read.push(wire::unshare(message, ws.get_config()));
                }
                Poll::Ready(Some(Err(e))) => break Some(Some(e.to_string())),
                Poll::Ready(None) => break Some(None),
                Poll::Pending => break None,
            }
            if scratch.read.len() >= READ_BATCH {
                // More may be waiting: the next turn reads on.
                readable.set();
                break None;
            }
            item = readable.poll_more(ws);
        };
        self.core()
            .feed_all(conn, now, scratch.read.drain(..), &mut scratch.events);
        if let Some(error) = ended {
            // The reply, if any, goes nowhere now: the caller flushes only an open link.
            *link = Link::Idle;
            let mut push = |event| scratch.events.push_back(event);
            self.core()
                .event(Event::Disconnected(conn, error.as_deref()), &mut push);
        }
        replied | self.deliver_read(link, &mut scratch.events).await
    }

    /// Executes every action the core has. Messages are written into tungstenite's
    /// buffer one after the other and flushed once at the end. `now` is when the driver
    /// last woke: deadlines due by then are handled first. Returns how to wait next
    /// (see [`SharedCore::wait`]).
    async fn run_actions(
        &self,
        link: &mut Link<C>,
        now: Instant,
        actions: &mut VecDeque<Action>,
    ) -> Wait {
        // Whatever a handle changed until here is taken below: a nudge before this
        // point needs no wake-up of its own.
        self.nudge.clear();
        let mut now = Some(now);
        loop {
            let mut unflushed = None;
            let idle = matches!(link, Link::Idle);
            if let Some(wait) = self
                .core()
                .take_actions(now.take(), idle, actions, self.notify())
            {
                return wait;
            }
            while !actions.is_empty() {
                // All that can be done at once, without an `await` per action; then the
                // one write that has to wait, if any.
                let waiting = future::poll_fn(|cx| {
                    Poll::Ready(self.execute_ready(cx, link, actions, &mut unflushed))
                })
                .await;
                let Some((conn, message)) = waiting else {
                    continue;
                };
                let Link::Open { ws, .. } = link else {
                    continue;
                };
                match self.bounded(ws.feed(message), conn).await {
                    Ok(()) => unflushed = Some(conn),
                    Err(error) => {
                        self.core().give_back(conn, actions);
                        self.write_failed(link, conn, error);
                    }
                }
            }
            self.flush(link, unflushed).await;
        }
    }

    /// Flushes what was written to `conn`, if it is still the open connection.
    async fn flush(&self, link: &mut Link<C>, unflushed: Option<ConnId>) {
        let Some(conn) = unflushed else { return };
        let Link::Open { conn: open, ws } = link else {
            return;
        };
        if *open == conn {
            if let Err(error) = self.bounded(ws.flush(), conn).await {
                self.write_failed(link, conn, error);
            }
        }
    }

    /// Executes actions from the front of `actions` until they are done or a message
    /// cannot be written at once: that one comes back, with its connection, for the
    /// caller to wait on. A message written and not yet flushed sets `unflushed`.
    fn execute_ready(
        &self,
        cx: &mut Context<'_>,
        link: &mut Link<C>,
        actions: &mut VecDeque<Action>,
        unflushed: &mut Option<ConnId>,
    ) -> Option<(ConnId, tungstenite::Message)> {
        while let Some(action) = actions.pop_front() {
            match self.prepared.step(action) {
                Step::Connect {
                    conn,
                    attempt: number,
                    ..
                } => {
                    let prepared = Arc::clone(&self.prepared);
                    let connector = Arc::clone(&self.connector);
                    *link = Link::Connecting {
                        conn,
                        attempt: attempt(connector, prepared, number),
                    };
                }
                // The core has moved on (a timeout, a close while connecting): drop the
                // connection or the attempt, and report nothing.
                Step::Abort { conn } => {
                    if link.conn() == Some(conn) {
                        *link = Link::Idle;
                    }
                }
                Step::Write { conn, message } => {
                    let Link::Open { conn: open, ws } = link else {
                        continue;
                    };
                    if *open != conn {
                        continue;
                    }
                    let result = match Pin::new(&mut *ws).poll_ready(cx) {
                        Poll::Ready(Ok(())) => Pin::new(&mut *ws).start_send(message),
                        Poll::Ready(Err(e)) => Err(e),
                        Poll::Pending => return Some((conn, message)),
                    };
                    match written(result) {
                        Ok(()) => *unflushed = Some(conn),
                        Err(error) => {
                            self.core().give_back(conn, actions);
                            self.write_failed(link, conn, error);
                        }
                    }
                }
                Step::Nothing => {}
            }
        }
        None
    }

    fn write_failed(&self, link: &mut Link<C>, conn: ConnId, error: Option<String>) {
        *link = Link::Idle;
        if let Some(error) = error {
            self.core()
                .event(Event::Disconnected(conn, Some(&error)), self.notify());
        }
    }

    /// Runs one write or flush. A write stuck on a peer that does not read is reported
    /// to the core, whose deadlines (its write timeout among them) run meanwhile; once
    /// the core gives up on the connection the write is abandoned (`Err(None)`).
    /// `Err(Some(e))` is an IO error.
    async fn bounded<F>(&self, io: F, conn: ConnId) -> Result<(), Option<String>>
    where
        F: Future<Output = Result<(), tungstenite::Error>>,
    {
        futures_lite::pin!(io);
        // Usually the socket takes the bytes at once: nothing to report, no timer.
        if let Some(result) = future::poll_once(io.as_mut()).await {
            return written(result);
        }
        self.core().event(Event::WriteBlocked(conn), self.notify());
        loop {
            let wake = {
                let mut core = self.core().lock();
                core.handle_timeout(Instant::now());
                if core.current_conn() != Some(conn) {
                    return Err(None);
                }
                core.poll_timeout()
            };
            let outcome = future::or(async { Some(io.as_mut().await) }, async {
                match wake {
                    Some(at) => Timer::at(at).await,
                    None => future::pending().await,
                };
                None
            })
            .await;
            if let Some(result) = outcome {
                self.core().event(Event::WriteFlushed(conn), self.notify());
                return written(result);
            }
        }
    }
}

/// A finished write or flush as [`Driver::bounded`] reports it.
fn written(result: Result<(), tungstenite::Error>) -> Result<(), Option<String>> {
    match result {
        // The close handshake finished while writing: the read side reports it.
        Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            Ok(())
        }
        Err(e) => Err(Some(e.to_string())),
    }
}

/// What the driver's loop reuses from turn to turn.
struct Scratch {
    /// The core's actions, taken all at once.
    actions: VecDeque<Action>,
    /// Messages read in one go, fed to the core together.
    read: Vec<tungstenite::Message>,
    /// The events they made, passed on together.
    events: VecDeque<ClientEvent>,
}

/// Whether the open connection may have something to read.
///
/// The driver reads with a waker of its own, which marks the connection readable
/// before it wakes the task. Once a read found the socket empty, a turn of the driver
/// reads again when the reactor has reported the socket readable, or on a hunch.
///
/// The peer may answer while a turn runs, and the reactor hears of it only once the
/// executor runs out of work: a read on a hunch then saves a round through the
/// reactor (a wait on epoll and a wake-up). With many busy connections it mostly
/// finds the socket still empty, one wasted system call per turn. So the driver reads
/// on a hunch while such reads find something about once in three tries or more, and
/// otherwise once every [`HUNCH_PROBE`] turns, to notice when they start to. (Over
/// [`TcpStream`](crate::TcpStream), which itself waits for the reactor after a short
/// read, a read on a hunch costs no system call and seldom finds anything; hunches
/// pay over streams that try the socket on every read.)
struct Readable {
    flag: Arc<ReadFlag>,
    waker: Waker,
    /// How well reads on a hunch paid lately: up 2 for each that found something,
    /// down 1 for each that did not, at most [`HUNCH_MAX`]. Zero: no hunches.
    hunch: u8,
    /// Turns since the last read on a hunch.
    since_hunch: u8,
}

/// The most [`Readable::hunch`] keeps: after a run of hits, a few misses in a row turn
/// hunches off.
const HUNCH_MAX: u8 = 6;

/// With hunches off, a read on a hunch every this many turns.
const HUNCH_PROBE: u8 = 16;

#[derive(Default)]
struct ReadFlag {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl std::task::Wake for ReadFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Readable {
    fn new() -> Self {
        let flag = Arc::new(ReadFlag::default());
        Readable {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            hunch: 0,
            since_hunch: 0,
        }
    }

    /// The connection may have something to read: a new one, or a read that stopped
    /// before it found the socket empty.
    fn set(&self) {
        self.flag.ready.store(true, Ordering::Release);
    }

    /// Polls `ws` for its next message if it may have one (or on a hunch); otherwise
    /// `cx` is woken once it may.
    fn poll_next<S: Stream + Unpin>(
        &mut self,
        ws: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Option<S::Item>> {
        // Registered before the flag is looked at: a wake-up in between is not lost.
        self.flag.task.register(cx.waker());
        if self.flag.ready.swap(false, Ordering::AcqRel) {
            return self.poll_more(ws);
        }
        self.since_hunch = self.since_hunch.saturating_add(1);
        if self.hunch == 0 && self.since_hunch < HUNCH_PROBE {
            return Poll::Pending;
        }
        self.since_hunch = 0;
        let polled = self.poll_more(ws);
        self.hunch = match polled {
            Poll::Ready(_) => (self.hunch + 2).min(HUNCH_MAX),
            Poll::Pending => self.hunch.saturating_sub(1),
        };
        polled
    }

    /// Polls `ws` for its next message, in the turn in which [`Readable::poll_next`]
    /// registered the task: after it, or after a message this gave.
    fn poll_more<S: Stream + Unpin>(&self, ws: &mut S) -> Poll<Option<S::Item>> {
        ws.poll_next(&mut Context::from_waker(&self.waker))
    }
}

/// Most messages taken from the socket in one turn of the driver's loop without
/// waiting; bounds how long actions (and the handles' sends) wait behind a flood.
const READ_BATCH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use heartline_tungstenite::client::Options;

    /// A sink that takes `room` messages, then reports a full buffer (or, with
    /// `fail`, a broken connection).
    struct FakeSink {
        written: Vec<tungstenite::Message>,
        room: usize,
        fail: bool,
    }

    impl Sink<tungstenite::Message> for FakeSink {
        type Error = tungstenite::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.fail {
                Poll::Ready(Err(tungstenite::Error::Io(
                    io::ErrorKind::BrokenPipe.into(),
                )))
            } else if self.written.len() < self.room {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }

        fn start_send(
            mut self: Pin<&mut Self>,
            item: tungstenite::Message,
        ) -> Result<(), Self::Error> {
            self.written.push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A core with an open connection, and that connection.
    fn open_core() -> (ClientHandle, Prepared, ConnId) {
        let (handle, prepared) = Options::new("ws://127.0.0.1:9/")
            .prepare(|| {})
            .expect("valid options");
        let mut actions = VecDeque::new();
        prepared
            .core
            .take_actions(Some(Instant::now()), true, &mut actions, |_| {});
        let Some(Action::Connect { conn, .. }) = actions.pop_front() else {
            panic!("the client connects first: {actions:?}");
        };
        prepared.core.event(Event::Connected(conn), |_| {});
        (handle, prepared, conn)
    }

    /// Sends `0..count` as text through a responder writing to `sink`; returns the
    /// sink's report and the core's queued sends.
    fn send_through(
        sink: &mut FakeSink,
        count: usize,
    ) -> (bool, Option<Option<String>>, Vec<String>) {
        let (_handle, prepared, conn) = open_core();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut direct = DirectSink {
            ws: sink,
            cx: &mut cx,
            conn,
            wrote: false,
            failed: None,
        };
        {
            let responder = Responder {
                core: &prepared.core,
                direct: Some(RefCell::new(&mut direct)),
            };
            for i in 0..count {
                responder.send_text(i.to_string()).expect("accepted");
            }
        }
        let mut actions = VecDeque::new();
        prepared
            .core
            .take_actions(None, false, &mut actions, |_| {});
        let queued = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Send {
                    message: Message::Text(t),
                    ..
                } => Some(t),
                _ => None,
            })
            .collect();
        (direct.wrote, direct.failed, queued)
    }

    fn texts(written: &[tungstenite::Message]) -> Vec<String> {
        written
            .iter()
            .map(|m| m.to_text().expect("text").to_owned())
            .collect()
    }

    /// A stream standing in for a connection: `ready` items to read; when it has none
    /// it keeps the waker it was polled with, as a reactor registration would.
    #[derive(Default)]
    struct FakeConn {
        ready: VecDeque<u32>,
        reads: usize,
        registered: Option<Waker>,
    }

    impl Stream for FakeConn {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.reads += 1;
            match self.ready.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None => {
                    self.registered = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    #[test]
    fn a_drained_connection_is_read_again_only_once_the_reactor_wakes_it() {
        let (wakes, task) = crate::handoff::tests::counting();
        let mut cx = Context::from_waker(&task);
        let mut conn = FakeConn {
            ready: VecDeque::from([1]),
            ..FakeConn::default()
        };
        let mut readable = Readable::new();
        readable.set();

        // A new connection is read; the read after the message finds it empty.
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(1)));
        assert_eq!(readable.poll_more(&mut conn), Poll::Pending);
        assert_eq!(conn.reads, 2);

        // Later turns do not read it again while nothing arrived (until a probe).
        for _ in 1..HUNCH_PROBE {
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
        }
        assert_eq!(conn.reads, 2, "no read attempt on a drained connection");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

        // Data arrives: the registration wakes the task, and the next turn reads.
        conn.ready.push_back(2);
        conn.registered.take().expect("registered").wake();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(2)));
        assert_eq!(conn.reads, 3);
    }

    #[test]
    fn reads_on_a_hunch_go_on_while_they_find_something() {
        let (_, task) = crate::handoff::tests::counting();
        let mut cx = Context::from_waker(&task);
        let mut conn = FakeConn::default();
        let mut readable = Readable::new();
        // Hunches off: one read in HUNCH_PROBE turns, which here finds a message that
        // the reactor has not reported yet.
        for _ in 1..HUNCH_PROBE {
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
        }
        assert_eq!(conn.reads, 0);
        conn.ready.push_back(1);
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(1)));
        // That paid: the next turns read on a hunch, until misses turn hunches off.
        let mut reads = Vec::new();
        for _ in 0..4 {
            let before = conn.reads;
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
            reads.push(conn.reads - before);
        }
        assert_eq!(reads, [1, 1, 0, 0], "a hit earns two tries on a hunch");
    }

    #[test]
    fn an_open_connection_takes_the_handlers_sends_at_once() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: usize::MAX,
            fail: false,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 5);
        assert!(wrote && failed.is_none());
        assert_eq!(texts(&sink.written), ["0", "1", "2", "3", "4"]);
        assert!(queued.is_empty(), "nothing left for the driver: {queued:?}");
    }

    #[test]
    fn a_full_socket_queues_the_rest_in_order() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: 2,
            fail: false,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 5);
        assert!(wrote && failed.is_none());
        assert_eq!(texts(&sink.written), ["0", "1"]);
        assert_eq!(
            queued,
            ["2", "3", "4"],
            "the driver writes these next, in order"
        );
    }

    #[test]
    fn a_failed_write_is_reported_and_later_sends_wait_in_the_core() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: usize::MAX,
            fail: true,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 3);
        assert!(!wrote);
        assert!(
            matches!(&failed, Some(Some(e)) if e.contains("Broken pipe") || e.contains("broken pipe")),
            "{failed:?}"
        );
        // The first message went down with the connection, as a failed write of a
        // taken action does; the driver reports the loss to the core.
        assert_eq!(queued, ["1", "2"]);
    }
}
