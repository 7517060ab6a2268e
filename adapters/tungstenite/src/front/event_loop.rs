//! The server loop every runtime shares (feature `mio`): one `mio` poller over the
//! listener and every socket, each registered once, edge-triggered, for both
//! directions, and a waker for the application's requests.
//!
//! Runtimes differ only in how they sleep until [`EventLoop::turn`]'s deadline:
//! the blocking server waits in the poller itself ([`EventLoop::run`]); an async
//! runtime registers the poller with its own reactor ([`EventLoop::registry`]: the
//! poller's descriptor is readable whenever readiness waits in it), awaits that or a
//! timer, and then takes what is ready without waiting ([`EventLoop::react`] with a
//! zero timeout). Either way a ping costs one write and one read, and the reactor is
//! asked again only when the whole server was idle, not once per connection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::{Front, FrontChannels, Replies, Sink, Socket};
use crate::cluster::{BackplaneEvent, Inbox};
use crate::hub::{Request, ServerConfig, ServerError, Wait};

/// The listener's token; connections use their key.
const LISTENER: Token = Token(usize::MAX);
/// The handles' wake-up token.
const WAKER: Token = Token(usize::MAX - 1);
/// Readiness events taken from the poller at once.
const EVENTS: usize = 1024;
/// Full batches of readiness events read at most before deadlines are handled again.
const CATCH_UP_BATCHES: usize = 64;

/// A `mio` socket as the front reads and writes it: registered once for both
/// directions, edge-triggered, so readiness needs no asking again.
#[derive(Debug)]
pub struct MioSocket(TcpStream);

impl Read for MioSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for MioSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Socket for MioSocket {
    fn shutdown_write(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}

/// The sending half of an event loop's requests: what a server handle holds.
pub struct Remote<R: Replies> {
    tx: Sender<Request<FrontChannels<R>>>,
    waker: Arc<Waker>,
}

impl<R: Replies> Clone for Remote<R> {
    fn clone(&self) -> Self {
        Remote {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

impl<R: Replies> std::fmt::Debug for Remote<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

impl<R: Replies> Remote<R> {
    /// Queues `request` and wakes the loop; fails once the loop has stopped (then the
    /// request, and its reply sender with it, is dropped: an answer awaited on it ends
    /// rather than hangs).
    pub fn send(&self, request: Request<FrontChannels<R>>) -> Result<(), ServerError> {
        self.tx.send(request).map_err(|_| ServerError::Stopped)?;
        // A loop that cannot be woken has stopped, and dropped the request.
        let _ = self.waker.wake();
        Ok(())
    }
}

/// One server's loop: the front, the poller, the listener and the requests.
pub struct EventLoop<R: Replies> {
    poll: Poll,
    events: Events,
    listener: MioListener,
    front: Front<MioSocket, R>,
    requests: Receiver<Request<FrontChannels<R>>>,
    backplane: Receiver<BackplaneEvent>,
    /// Readiness may be waiting beyond the last batch: then what already arrived is
    /// read before any deadline is handled, so a loop that fell behind does not evict
    /// clients whose answers sit unread in their sockets.
    behind: bool,
    /// Full batches in a row.
    catching_up: usize,
}

impl<R: Replies> std::fmt::Debug for EventLoop<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("front", &self.front)
            .finish_non_exhaustive()
    }
}

impl<R: Replies> EventLoop<R> {
    /// A loop serving `listener` with `config`, its events going to `sink`, and the
    /// remote its handles send requests through.
    pub fn new(
        listener: TcpListener,
        config: ServerConfig,
        sink: Sink<R>,
    ) -> io::Result<(EventLoop<R>, Remote<R>)> {
        listener.set_nonblocking(true)?;
        let mut listener = MioListener::from_std(listener);
        let mut front = Front::new(config, sink, Instant::now())
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, requests) = mpsc::channel();
        // What the cluster's backplane has for this node wakes the loop like a request.
        let (to_loop, backplane) = mpsc::channel();
        let wake = Arc::clone(&waker);
        front.join(Inbox::new(move |event| {
            let taken = to_loop.send(event).is_ok();
            let _ = wake.wake();
            taken
        }))?;
        let remote = Remote { tx, waker };
        let event_loop = EventLoop {
            poll,
            events: Events::with_capacity(EVENTS),
            listener,
            front,
            requests,
            backplane,
            behind: false,
            catching_up: 0,
        };
        Ok((event_loop, remote))
    }

    /// A handle on the poller to register with another reactor: its descriptor is
    /// readable whenever readiness is waiting to be taken with [`EventLoop::react`].
    pub fn registry(&self) -> io::Result<Registry> {
        self.poll.registry().try_clone()
    }

    /// Carries out everything decided so far and says how long the loop may sleep.
    pub fn turn(&mut self) -> Wait {
        self.front.turn(self.behind)
    }

    /// Waits for readiness at most `timeout` (`None`: without limit), then handles
    /// it: reads, writes, accepts and the application's requests. Returns how many
    /// readiness events there were. An error means the poller itself failed: nothing
    /// more can be served.
    pub fn react(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            return match e.kind() {
                ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let count = self.events.iter().count();
        // A full batch: more may be waiting. Bounded, so that a flood of traffic
        // cannot hold the deadlines off for long.
        self.catching_up = if count == EVENTS {
            self.catching_up + 1
        } else {
            0
        };
        self.behind = (1..=CATCH_UP_BATCHES).contains(&self.catching_up);
        let now = Instant::now();
        self.front.read_on(now);
        for event in self.events.iter() {
            match event.token() {
                LISTENER => accept(&mut self.front, &self.listener, self.poll.registry(), now),
                WAKER => {
                    while let Ok(request) = self.requests.try_recv() {
                        self.front.request(now, request);
                    }
                    while let Ok(event) = self.backplane.try_recv() {
                        self.front.backplane(now, event);
                    }
                }
                Token(key) => {
                    if event.is_writable() {
                        self.front.writable(now, key);
                    }
                    if event.is_read_closed() {
                        self.front.read_closed(now, key);
                    } else if event.is_readable() || event.is_error() {
                        self.front.readable(now, key);
                    }
                }
            }
        }
        if self.front.accept_resumes(now) {
            accept(&mut self.front, &self.listener, self.poll.registry(), now);
        }
        Ok(count)
    }

    /// Runs the loop on this thread, sleeping in the poller, until the server stops
    /// (after a shutdown) or the poller fails.
    pub fn run(mut self) {
        loop {
            let timeout = match self.turn() {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
                Wait::Forever => None,
            };
            if self.react(timeout).is_err() {
                break;
            }
        }
    }
}

/// Accepts every waiting connection.
fn accept<R: Replies>(
    front: &mut Front<MioSocket, R>,
    listener: &MioListener,
    registry: &Registry,
    now: Instant,
) {
    if !front.may_accept(now) {
        return;
    }
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors, or a connection reset before it was accepted: the
                // listener is fine. The core says when to try again.
                front.accept_failed(now);
                return;
            }
        };
        // Small messages (pings, chat) go out at once, as browsers and Node expect.
        let _ = stream.set_nodelay(true);
        let Some(key) = front.accept(now, MioSocket(stream)) else {
            continue;
        };
        let registered = match front.socket(key) {
            Some(socket) => registry.register(
                &mut socket.0,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ),
            None => Ok(()),
        };
        if registered.is_err() {
            front.drop_socket(now, key);
        }
    }
}
