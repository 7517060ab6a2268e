//! The blocking server's thread: one `mio` loop over every socket, each registered
//! once, edge-triggered, with the front's one deadline as its wait timeout.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use heartline_tungstenite::front::{Front, FrontChannels, Socket};
use heartline_tungstenite::hub::{Request, ServerEvent, Wait};

use super::StdReplies;

/// The listener's token; connections use their key.
pub(super) const LISTENER: Token = Token(usize::MAX);
/// The handles' wake-up token.
pub(super) const WAKER: Token = Token(usize::MAX - 1);
/// Readiness events taken from the poller at once.
const EVENTS: usize = 1024;
/// Full batches of readiness events read at most before deadlines are handled again.
const CATCH_UP_BATCHES: usize = 64;

/// A `mio` socket as the front reads and writes it: registered once for both
/// directions, edge-triggered, so readiness needs no asking again.
#[derive(Debug)]
pub(super) struct MioSocket(pub(super) TcpStream);

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
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }
}

/// The server's thread.
pub(super) struct EventLoop {
    pub(super) poll: Poll,
    pub(super) listener: MioListener,
    pub(super) front: Front<MioSocket, StdReplies>,
    pub(super) requests: Receiver<Request<FrontChannels<StdReplies>>>,
    /// Held until the loop ends, which ends the application's event channel.
    pub(super) _events: Sender<ServerEvent>,
}

impl EventLoop {
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        // Readiness may be waiting beyond the last batch: then what already arrived is
        // read before any deadline is handled, so a loop that fell behind does not
        // evict clients whose answers sit unread in their sockets.
        let mut behind = false;
        let mut catching_up = 0;
        loop {
            let timeout = match self.front.turn(behind) {
                Wait::Stop => break,
                Wait::Until(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
                Wait::Forever => None,
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
            self.front.read_on(now);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {
                        while let Ok(request) = self.requests.try_recv() {
                            self.front.request(now, request);
                        }
                    }
                    Token(key) => {
                        if event.is_writable() {
                            self.front.writable(now, key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.front.readable(now, key);
                        }
                    }
                }
            }
            if self.front.accept_resumes(now) {
                self.accept(now);
            }
        }
    }

    /// Accepts every waiting connection.
    fn accept(&mut self, now: Instant) {
        if !self.front.may_accept(now) {
            return;
        }
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // the listener is fine. The core says when to try again.
                    self.front.accept_failed(now);
                    return;
                }
            };
            // Small messages (pings, chat) go out at once, as browsers and Node expect.
            let _ = stream.set_nodelay(true);
            let Some(key) = self.front.accept(now, MioSocket(stream)) else {
                continue;
            };
            let registered = match self.front.socket(key) {
                Some(socket) => self.poll.registry().register(
                    &mut socket.0,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                ),
                None => Ok(()),
            };
            if registered.is_err() {
                self.front.drop_socket(now, key);
            }
        }
    }
}
