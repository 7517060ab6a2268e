//! One socket of a server, in each of its phases, and the slab that holds them by key
//! (the poller token, or the index a readiness waker reports).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::time::Instant;

use heartline_core::ConnId;
use tungstenite::WebSocket;

use crate::hub::{Answer, Hub, Input, Out};
use crate::wire::{self, Head, Request};

use super::{FrontChannels, Replies, Socket};

/// Request head bytes read at a time.
const HEAD_CHUNK: usize = 1024;

/// A connection's slot: its slab index and the serial that tells it apart from later
/// connections in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) index: usize,
    pub(super) serial: u64,
}

/// A non-blocking socket that remembers when a read emptied it, so that tungstenite's
/// next read says "would block" without a system call; a readiness event clears that.
#[derive(Debug)]
pub(super) struct Io<S> {
    pub(super) stream: S,
    pub(super) drained: bool,
    /// The peer ended its half: a short read no longer means "nothing more", since
    /// the end of stream waits behind the data and brings no readiness of its own.
    pub(super) peer_closed: bool,
}

impl<S: Socket> Read for Io<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained {
            return Err(ErrorKind::WouldBlock.into());
        }
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    // A short read took everything there was (a zero-length buffer aside).
                    self.drained = n < buf.len() && !self.peer_closed;
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drained = e.kind() == ErrorKind::WouldBlock;
                    return Err(e);
                }
            }
        }
    }
}

impl<S: Socket> Write for Io<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                written => return written,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One accepted socket: the core's id for it (from its accept on), and where it is.
pub(super) struct Conn<S> {
    pub(super) serial: u64,
    pub(super) id: ConnId,
    pub(super) phase: Phase<S>,
}

pub(super) enum Phase<S> {
    /// Reading the request head.
    Head { io: Io<S>, buf: Vec<u8> },
    /// Writing an HTTP answer (a rejection, a page, or the 101), then what follows,
    /// with the bytes read after the request head.
    Answer {
        io: Io<S>,
        answer: Answer,
        written: usize,
        tail: Vec<u8>,
    },
    /// An open WebSocket connection.
    Open(Box<Open<S>>),
    /// Moved out while changing phase; never seen outside that.
    Gone,
}

impl<S: Socket> Phase<S> {
    pub(super) fn stream(&mut self) -> Option<&mut S> {
        match self {
            Phase::Head { io, .. } | Phase::Answer { io, .. } => Some(&mut io.stream),
            Phase::Open(open) => Some(&mut open.ws.get_mut().stream),
            Phase::Gone => None,
        }
    }
}

pub(super) struct Open<S> {
    pub(super) ws: WebSocket<Io<S>>,
    pub(super) conn: ConnId,
    /// Items waiting while the socket takes no more.
    pub(super) queue: VecDeque<Out>,
    /// The socket takes no more (reported to the hub as [`Input::Blocked`]).
    pub(super) stalled: bool,
    /// Payload bytes of messages handed to tungstenite but not yet on the wire.
    pub(super) unflushed: usize,
    /// The peer broke the protocol: what it sends is no longer parsed, only drained
    /// until it closes (or the core's close timeout aborts it).
    pub(super) failed: bool,
}

/// Reads and discards what a failed connection still sends, so that dropping it later
/// does not reset the Close frame on its way to the peer.
pub(super) fn drain<S: Socket>(open: &mut Open<S>) -> Ended {
    let mut scratch = [0u8; 4096];
    // Straight from the socket: a short read may leave its end of stream unread.
    let stream = &mut open.ws.get_mut().stream;
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => return Ended::Yes(None),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stream.wait_readable();
                return Ended::No;
            }
            Err(e) => return Ended::Yes(Some(e.to_string())),
        }
    }
}

/// How an open connection's write ended.
pub(super) enum Ended {
    /// Still open.
    No,
    /// Over, with the error that ended it, if any.
    Yes(Option<String>),
}

/// Connections by slab index.
pub(super) struct Slab<S> {
    entries: Vec<Option<Conn<S>>>,
    free: Vec<usize>,
}

impl<S> Default for Slab<S> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<S> Slab<S> {
    pub(super) fn insert(&mut self, conn: Conn<S>) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.entries[index] = Some(conn);
                index
            }
            None => {
                self.entries.push(Some(conn));
                self.entries.len() - 1
            }
        }
    }

    pub(super) fn get(&mut self, slot: Slot) -> Option<&mut Conn<S>> {
        self.entries
            .get_mut(slot.index)
            .and_then(Option::as_mut)
            .filter(|c| c.serial == slot.serial)
    }

    /// The slot of whatever holds `index` now.
    pub(super) fn slot(&self, index: usize) -> Option<Slot> {
        let serial = self.entries.get(index)?.as_ref()?.serial;
        Some(Slot { index, serial })
    }

    pub(super) fn remove(&mut self, index: usize) -> Option<Conn<S>> {
        let conn = self.entries.get_mut(index)?.take()?;
        self.free.push(index);
        Some(conn)
    }
}

/// Writes one item to an open connection; a message that went out is reported as
/// written. `WouldBlock` means tungstenite holds the frame until the socket takes it.
pub(super) fn write<S: Socket, R: Replies>(
    open: &mut Open<S>,
    hub: &mut Hub<FrontChannels<R>>,
    now: Instant,
    out: Out,
) -> tungstenite::Result<()> {
    match out {
        Out::Ping(payload) => open.ws.send(wire::ping(&payload)),
        Out::Send(message) => {
            let len = message.len();
            let sent = open.ws.send(message);
            match &sent {
                Ok(()) => hub.input(now, open.conn, Input::Written(len), drop),
                Err(e) if wire::would_block(e) => open.unflushed += len,
                Err(_) => {}
            }
            sent
        }
        Out::Close(code, reason) => open.ws.close(Some(wire::close_frame(code, reason))),
        // Handled by the caller.
        Out::Evict(_) | Out::Abort => Ok(()),
    }
}

/// The socket may take data again: flush, report what went out, and write what waited.
pub(super) fn resume<S: Socket, R: Replies>(
    open: &mut Open<S>,
    hub: &mut Hub<FrontChannels<R>>,
    now: Instant,
) -> Ended {
    match open.ws.flush() {
        Ok(()) => {}
        Err(e) if wire::would_block(&e) => return Ended::No,
        Err(e) => return Ended::Yes(wire::end_reason(e)),
    }
    open.stalled = false;
    hub.input(now, open.conn, Input::Flushed, drop);
    if open.unflushed > 0 {
        let written = Input::Written(std::mem::take(&mut open.unflushed));
        hub.input(now, open.conn, written, drop);
    }
    while let Some(out) = open.queue.pop_front() {
        match write(open, hub, now, out) {
            Ok(()) => {}
            Err(e) if wire::would_block(&e) => {
                stall(open, hub, now);
                return Ended::No;
            }
            Err(e) => return Ended::Yes(wire::end_reason(e)),
        }
    }
    Ended::No
}

/// A write could not finish: the rest waits for the socket to take more, and the core's
/// write timeout runs.
pub(super) fn stall<S: Socket, R: Replies>(
    open: &mut Open<S>,
    hub: &mut Hub<FrontChannels<R>>,
    now: Instant,
) {
    open.ws.get_mut().stream.wait_writable();
    if !open.stalled {
        open.stalled = true;
        hub.input(now, open.conn, Input::Blocked, drop);
    }
}

/// Reads a request head: `Ok(None)` needs more bytes, `Ok(Some(_))` is the request and
/// the bytes after it, `Err(Some(status))` a head to refuse with that status,
/// `Err(None)` means drop the connection silently (closed, IO error).
#[allow(clippy::type_complexity)]
pub(super) fn read_head<S: Socket>(
    io: &mut Io<S>,
    buf: &mut Vec<u8>,
) -> Result<Option<(Request, Vec<u8>)>, Option<u16>> {
    let mut chunk = [0u8; HEAD_CHUNK];
    loop {
        let n = match io.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                io.stream.wait_readable();
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        match wire::parse_head(buf) {
            Head::Partial => {}
            Head::Complete(request, len) => {
                let tail = buf.split_off(len);
                return Ok(Some((*request, tail)));
            }
            Head::Invalid(status) => return Err(Some(status)),
        }
    }
}
