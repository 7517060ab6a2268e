//! What the client machine says and hears: actions for its driver, the driver's
//! events, notices for the application, and its errors.

use std::fmt;
use std::time::{Duration, Instant};

use crate::frame::{Frame, Message};
use crate::{ConnId, Initiator, PingPayload};

/// What the client asks its driver to do. Every action names the connection it is
/// for; a driver ignores actions for a connection it no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new connection (TCP, TLS, HTTP upgrade) and report the outcome with
    /// [`Event::Connected`] or [`Event::ConnectFailed`]. The core gives up on the attempt
    /// at `deadline` by itself (with [`Action::Abort`]); a driver whose connect calls
    /// block bounds them by it.
    Connect {
        /// The new connection.
        conn: ConnId,
        /// 0 for the first connection, `n` for the n-th reconnect attempt in a row.
        attempt: u32,
        /// When the core gives up on the attempt: `connect_timeout` from now.
        deadline: Instant,
    },
    /// Send a protocol Ping with this payload.
    SendPing {
        /// The connection.
        conn: ConnId,
        /// The payload (a sequence number).
        payload: PingPayload,
    },
    /// Send the application heartbeat message from [`AppHeartbeat::message`](crate::AppHeartbeat::message).
    SendHeartbeat {
        /// The connection.
        conn: ConnId,
    },
    /// Send an application message.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Start the close handshake: send a Close frame and keep reading until the peer
    /// closes, then report [`Event::Disconnected`]. The core sends [`Action::Abort`] if
    /// that takes too long.
    Close {
        /// The connection.
        conn: ConnId,
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes).
        reason: String,
    },
    /// Drop the connection (or the attempt) now, without a handshake. The core has
    /// already moved on (a timeout, or [`Client::close`](crate::Client::close) while
    /// connecting): report nothing more for it; an event for it is stale.
    Abort {
        /// The connection.
        conn: ConnId,
    },
}

/// What the driver tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The connection opened (the server answered the upgrade with 101).
    Connected(ConnId),
    /// The connection attempt failed.
    ConnectFailed(ConnId, ConnectError<'a>),
    /// A frame arrived on the connection.
    Frame(ConnId, Frame<'a>),
    /// A write to the connection could not finish: the socket takes no more for now.
    /// Unless [`Event::WriteFlushed`] follows within
    /// [`ClientConfig::write_timeout`](crate::ClientConfig::write_timeout), the core drops
    /// the connection. Reporting it again while blocked changes nothing.
    WriteBlocked(ConnId),
    /// Everything written to the connection so far is on its socket.
    WriteFlushed(ConnId),
    /// The transport ended: the peer closed TCP (after a close handshake or not), or an
    /// IO error happened; `error` describes it, if there was one.
    Disconnected(ConnId, Option<&'a str>),
    /// The peer broke the protocol: `code` is 1002 for a malformed frame, 1007 for text
    /// that is not UTF-8, 1009 for a message or frame over the limit, and the text says
    /// what. The core fails the connection: it sends a Close with that code
    /// ([`Action::Close`]) and, as what follows on the wire cannot be parsed, the
    /// driver stops reading and reports [`Event::Disconnected`] once that Close is
    /// written. The connection counts as lost: reconnects follow the policy.
    Violation(ConnId, u16, &'a str),
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError<'a> {
    /// The server answered the upgrade with an HTTP status other than 101.
    Http {
        /// The status code.
        status: u16,
        /// The `Retry-After` header as a delay, if the server sent one.
        retry_after: Option<Duration>,
    },
    /// TCP, TLS or the handshake failed; the text says how.
    Io(&'a str),
}

/// Why a connection attempt failed, owned, as reported to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The server answered with this HTTP status.
    Http {
        /// The status code.
        status: u16,
        /// The `Retry-After` delay the server asked for.
        retry_after: Option<Duration>,
    },
    /// TCP, TLS or the handshake failed.
    Io(String),
    /// The attempt took longer than the connect timeout.
    Timeout,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Http { status, .. } => write!(f, "HTTP {status}"),
            ConnectFailure::Io(e) => f.write_str(e),
            ConnectFailure::Timeout => f.write_str("connect timeout"),
        }
    }
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A connection attempt started.
    Connecting {
        /// The connection.
        conn: ConnId,
        /// 0 for the first connection, `n` for the n-th reconnect attempt in a row.
        attempt: u32,
    },
    /// The connection is open; queued messages follow it onto the wire.
    Open {
        /// The connection.
        conn: ConnId,
    },
    /// A heartbeat reply arrived after this round-trip time.
    Rtt(Duration),
    /// No heartbeat reply within the timeout: the connection is being dropped.
    HeartbeatMissed {
        /// The connection.
        conn: ConnId,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: ConnectFailure,
    },
    /// An open connection closed.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The close code (1006 when it ended without a close frame).
        code: u16,
        /// The close reason, or a description of what ended it.
        reason: String,
        /// Who ended it.
        by: Initiator,
    },
    /// The next attempt will start after `delay`.
    ReconnectScheduled {
        /// Which reconnect attempt in a row this is (1 for the first).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// The client stopped trying; it is closed for good.
    GaveUp {
        /// Why.
        reason: GiveUpReason,
    },
    /// The client lost this much time (suspended, frozen, or the wall clock jumped; see
    /// [`HeartbeatConfig::suspend_threshold`](crate::HeartbeatConfig::suspend_threshold)):
    /// an open connection is being probed, and the backoff starts fresh.
    Resumed {
        /// How much time the client did not see pass.
        lost: Duration,
    },
    /// A connection ended with messages it had taken to write that the peer was not
    /// seen to read: written after the last heartbeat it answered (TCP delivers in
    /// order, so an answer proves everything before it arrived). They may have
    /// arrived or not; they are not sent again, which could deliver them twice. An
    /// application that must know acknowledges its messages itself.
    Unconfirmed {
        /// The connection that ended.
        conn: ConnId,
        /// How many messages.
        messages: usize,
        /// How many payload bytes.
        bytes: usize,
    },
    /// Queued messages were discarded.
    Dropped {
        /// How many messages.
        messages: usize,
        /// How many payload bytes.
        bytes: usize,
        /// Why.
        cause: DropCause,
    },
}

/// Why the client stopped reconnecting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// `max_attempts` reconnect attempts in a row failed.
    AttemptsExhausted {
        /// How many reconnect attempts were made.
        attempts: u32,
    },
    /// The server answered the handshake with a status configured as terminal.
    HttpStatus(u16),
    /// The server closed with a code configured as terminal.
    CloseCode {
        /// The code.
        code: u16,
        /// The server's reason.
        reason: String,
    },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::AttemptsExhausted { attempts } => {
                write!(f, "{attempts} reconnect attempts failed")
            }
            GiveUpReason::HttpStatus(s) => write!(f, "server answered HTTP {s}"),
            GiveUpReason::CloseCode { code, reason } => {
                write!(f, "server closed with code {code}")?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
        }
    }
}

/// Why queued messages were discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropCause {
    /// The queue was full and the policy is [`Overflow::DropOldest`](crate::Overflow::DropOldest).
    Overflow,
    /// The client closed for good with messages still queued.
    Closed,
}

/// A message the client would not take; the message comes back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The message that was not sent.
    pub message: Message,
    /// Why.
    pub kind: SendErrorKind,
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The client is closed or closing for good.
    Closed,
    /// The queue is full and the policy is [`Overflow::RejectNew`](crate::Overflow::RejectNew).
    QueueFull,
    /// The message alone is larger than the queue's byte bound.
    TooLarge,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SendErrorKind::Closed => f.write_str("client is closed"),
            SendErrorKind::QueueFull => f.write_str("send queue is full"),
            SendErrorKind::TooLarge => f.write_str("message is larger than the send queue"),
        }
    }
}

impl std::error::Error for SendError {}

/// `close` was called with a code or reason that cannot go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseError {
    /// The code is not one an endpoint may send (RFC 6455 section 7.4).
    InvalidCode(u16),
    /// The reason is over 123 bytes (a control frame holds 125, two are the code).
    ReasonTooLong(usize),
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::InvalidCode(c) => write!(f, "{c} may not be sent as a close code"),
            CloseError::ReasonTooLong(n) => {
                write!(f, "close reason is {n} bytes, at most 123 fit")
            }
        }
    }
}

impl std::error::Error for CloseError {}
