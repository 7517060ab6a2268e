//! The async client: a builder, the event stream, and the driver that runs the
//! [`heartline_core::Client`] over async-tungstenite.
//!
//! The driver is one future. Each turn it drains the core's actions and executes them,
//! then waits for whichever comes first: a frame (or the handshake's end) on the
//! connection, a nudge from a handle, or the core's one next deadline on the
//! runtime's timer ([`Connector::Runtime`]). After waking it reads the clock once
//! ([`Instant::now()`]) and feeds the core everything that arrived, with that time.
//! Every decision (when to ping, when the peer is dead, when to reconnect) is the core's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_tungstenite::tungstenite;
use async_tungstenite::WebSocketStream;
use futures_lite::future;
use futures_util::{Sink, SinkExt};
use heartline_core::{Action, ConnId, Disposition, Event};
use heartline_tungstenite::client::{
    handle_due, AttemptError, ClientEvent, Prepared, SharedCore, Step,
};
use heartline_tungstenite::{wire, Wait};

mod build;
mod connector;
mod events;
mod readable;
mod responder;

#[cfg(feature = "async-io")]
pub use build::{build, build_handler};
pub use build::{build_with, build_with_handler};
#[cfg(feature = "tokio")]
pub(crate) use connector::connect_first;
pub use connector::Connector;
#[cfg(feature = "tokio-rustls")]
pub(crate) use connector::Secured;
#[cfg(feature = "async-io")]
pub use connector::TcpConnector;
pub use events::ClientEvents;
pub use responder::Responder;

use readable::Readable;
use responder::{DirectSink, DirectWrite, Handler};

use crate::handoff::{EventReceiver, EventSender, Nudge};
use crate::runtime::{self, Runtime, Timer};
use crate::tls::MaybeTls;
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
        let stream = if endpoint.tls {
            connector
                .secure(tcp, &endpoint, &prepared)
                .await
                .map_err(AttemptError::Io)?
        } else {
            MaybeTls::Plain(tcp)
        };
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
    Connecting {
        conn: ConnId,
        attempt: Attempt<C>,
    },
    /// `failed`: the peer broke the protocol; nothing more is read, and the connection
    /// is dropped once the core's Close frame is written.
    Open {
        conn: ConnId,
        ws: Ws<C>,
        failed: bool,
    },
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

/// The future that runs the client: spawn it on an executor of the connector's runtime
/// (smol or async-std for async-io, tokio for tokio), or `await` it there. It completes once the client is closed for good.
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
        let (Some(_), Link::Open { conn, ws, .. }) = (&self.handler, &mut *link) else {
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
        let mut timer = <C::Runtime as Runtime>::Timer::never();
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
                    Link::Open { failed: true, .. } => future::pending().await,
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
                    if let (true, Link::Open { conn, ws, .. }) = (replied, &mut link) {
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
                    *link = Link::Open {
                        conn,
                        ws: *ws,
                        failed: false,
                    };
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
        let Link::Open { conn, ws, .. } = link else {
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
                Poll::Ready(Some(Err(e))) => match wire::violation(&e) {
                    Some(code) => break Some(Err(code)),
                    None => break Some(Ok(Some(e.to_string()))),
                },
                Poll::Ready(None) => break Some(Ok(None)),
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
        let mut push = |event| scratch.events.push_back(event);
        match ended {
            Some(Ok(error)) => {
                // The reply, if any, goes nowhere now: the caller flushes only an open
                // link.
                *link = Link::Idle;
                self.core()
                    .event(Event::Disconnected(conn, error.as_deref()), &mut push);
            }
            Some(Err((code, reason))) => {
                if let Link::Open { failed, .. } = link {
                    *failed = true;
                }
                self.core()
                    .event(Event::Violation(conn, code, reason), &mut push);
            }
            None => {}
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
                // Every action is written and flushed, the Close after a violation
                // among them: that connection ends here.
                if let Link::Open {
                    conn, failed: true, ..
                } = *link
                {
                    *link = Link::Idle;
                    self.core()
                        .event(Event::Disconnected(conn, None), self.notify());
                    continue;
                }
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
        let Link::Open { conn: open, ws, .. } = link else {
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
                    let Link::Open { conn: open, ws, .. } = link else {
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
                handle_due(&mut core, Instant::now());
                if core.current_conn() != Some(conn) {
                    return Err(None);
                }
                core.poll_timeout()
            };
            let outcome = future::or(async { Some(io.as_mut().await) }, async {
                match wake {
                    Some(at) => runtime::sleep_until::<C::Runtime>(at).await,
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
#[inline]
pub(super) fn written(result: Result<(), tungstenite::Error>) -> Result<(), Option<String>> {
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
/// Most messages taken from the socket in one turn of the driver's loop without
/// waiting; bounds how long actions (and the handles' sends) wait behind a flood.
const READ_BATCH: usize = 64;
