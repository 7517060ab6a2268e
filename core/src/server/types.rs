//! What the server machine says: actions for its driver, notices for the application,
//! and its errors.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::frame::{close_code, Message};
use crate::{ConnId, Initiator, PingPayload};

/// What the server asks its driver to do. Every action names the connection it is for;
/// a driver ignores actions for a connection it no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction<P = Message> {
    /// Send a protocol Ping with this payload.
    SendPing {
        /// The connection.
        conn: ConnId,
        /// The payload (a sequence number).
        payload: PingPayload,
    },
    /// Send an application message. Report its length with
    /// [`Server::handle_written`](crate::Server::handle_written) once written.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: P,
    },
    /// Answer an application heartbeat with this message. Report its length with
    /// [`Server::handle_written`](crate::Server::handle_written) once written.
    Reply {
        /// The connection.
        conn: ConnId,
        /// The answer.
        message: Message,
    },
    /// Send a Close frame and keep reading until the peer closes; then drop the
    /// connection and report
    /// [`Server::handle_disconnected`](crate::Server::handle_disconnected). The server
    /// sends [`ServerAction::Abort`] if that takes too long.
    Close {
        /// The connection.
        conn: ConnId,
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes).
        reason: Cow<'static, str>,
    },
    /// Drop the connection now, for `reason`. Where the reason has a close code
    /// ([`EvictReason::close_code`]), first write a Close frame with it and
    /// [`EvictReason::as_str`], but only if the socket takes it without waiting: the
    /// peer may not be reading. The server has already forgotten the connection: no
    /// `handle_disconnected` is needed (one is ignored).
    Evict {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: EvictReason,
    },
    /// Drop the connection now, without a frame: its close handshake took longer than
    /// the close timeout, or the server shut down before its upgrade finished. The
    /// server has already forgotten it: no `handle_disconnected` is needed (one is
    /// ignored).
    Abort {
        /// The connection.
        conn: ConnId,
    },
}

impl<P> ServerAction<P> {
    /// The connection the action is for.
    pub fn conn(&self) -> ConnId {
        match self {
            ServerAction::SendPing { conn, .. }
            | ServerAction::Send { conn, .. }
            | ServerAction::Reply { conn, .. }
            | ServerAction::Close { conn, .. }
            | ServerAction::Evict { conn, .. }
            | ServerAction::Abort { conn } => *conn,
        }
    }
}

/// What the server tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerNotice {
    /// A connection opened (and, with a name, was registered).
    Opened {
        /// The connection.
        conn: ConnId,
        /// Its registry name.
        name: Option<Arc<str>>,
    },
    /// A newer connection took over `name`; the older one is being closed with
    /// [`close_code::REPLACED`].
    Replaced {
        /// The name.
        name: Arc<str>,
        /// The replaced connection.
        old: ConnId,
        /// The connection now registered under `name`.
        new: ConnId,
    },
    /// A connection is gone: removed from the server and the registry. Every
    /// [`ServerNotice::Opened`] is followed by exactly one of these.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Its registry name.
        name: Option<Arc<str>>,
        /// The close code (1006 when it ended without a close frame; an eviction's
        /// code otherwise).
        code: u16,
        /// The close reason, or what ended it.
        reason: Cow<'static, str>,
        /// Who ended it.
        by: Initiator,
        /// Why the server dropped it, when it did so without a close handshake.
        evicted: Option<EvictReason>,
    },
    /// An upgrade request was refused.
    Rejected {
        /// The request path.
        path: String,
        /// The HTTP status answered.
        status: u16,
    },
    /// [`Server::shutdown`](crate::Server::shutdown) finished: every connection is gone.
    ShutdownComplete,
    /// The server lost this much time (suspended or frozen; see
    /// [`ServerConfig::suspend_threshold`](crate::ServerConfig::suspend_threshold)):
    /// every deadline moved by it, so no client is evicted for the time the server did
    /// not see pass.
    Resumed {
        /// How far past its deadline the server woke.
        lost: std::time::Duration,
    },
}

/// Why the server dropped a connection at once, without a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvictReason {
    /// Silent for [`ServerConfig::idle_timeout`](crate::ServerConfig::idle_timeout);
    /// closed with [`close_code::IDLE_TIMEOUT`].
    Idle,
    /// Its backlog passed
    /// [`ServerConfig::max_backlog_bytes`](crate::ServerConfig::max_backlog_bytes);
    /// closed with [`close_code::BACKLOG`].
    Backlog,
    /// Its socket took nothing for
    /// [`ServerConfig::write_timeout`](crate::ServerConfig::write_timeout): the peer
    /// stopped reading. Closed with [`close_code::BACKLOG`] if the socket still takes it.
    WriteStall,
    /// Its upgrade did not finish within
    /// [`ServerConfig::handshake_timeout`](crate::ServerConfig::handshake_timeout). No
    /// WebSocket yet, so no Close frame: the socket is just dropped.
    HandshakeTimeout,
}

impl EvictReason {
    /// `idle`, `backlog`, `write_stall` or `handshake_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::Idle => "idle",
            EvictReason::Backlog => "backlog",
            EvictReason::WriteStall => "write_stall",
            EvictReason::HandshakeTimeout => "handshake_timeout",
        }
    }

    /// The close code the peer is told, if it can be told anything.
    pub fn close_code(self) -> Option<u16> {
        match self {
            EvictReason::Idle => Some(close_code::IDLE_TIMEOUT),
            EvictReason::Backlog | EvictReason::WriteStall => Some(close_code::BACKLOG),
            EvictReason::HandshakeTimeout => None,
        }
    }

    /// The close reason sent with [`EvictReason::close_code`], and reported in
    /// [`ServerNotice::Closed`].
    pub fn description(self) -> &'static str {
        match self {
            EvictReason::Idle => "idle timeout",
            EvictReason::Backlog => "too far behind",
            EvictReason::WriteStall => "write timed out: the peer is not reading",
            EvictReason::HandshakeTimeout => "handshake timeout",
        }
    }
}

impl fmt::Display for EvictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// [`Server::incoming`](crate::Server::incoming) or
/// [`Server::open`](crate::Server::open) could not take the connection; the driver
/// drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// [`Server::shutdown`](crate::Server::shutdown) was called.
    ShuttingDown,
    /// The server holds the most connections it can address (16,777,215).
    Full,
    /// The connection is not waiting for its upgrade: its handshake timed out (the
    /// server sent [`ServerAction::Evict`] for it), it was opened already, or it never
    /// came from [`Server::incoming`](crate::Server::incoming).
    NotPending,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::ShuttingDown => f.write_str("server is shutting down"),
            OpenError::Full => f.write_str("server holds too many connections"),
            OpenError::NotPending => f.write_str("connection is not waiting for its upgrade"),
        }
    }
}

impl std::error::Error for OpenError {}

/// A message the server would not send; the message comes back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSendError<P = Message> {
    /// The message that was not sent.
    pub message: P,
    /// Why.
    pub kind: ServerSendErrorKind,
}

/// Why a server send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSendErrorKind {
    /// No open connection has this id (it closed, is closing, or never existed).
    NotOpen,
    /// No client is registered under this name.
    UnknownName,
    /// The message alone is larger than
    /// [`ServerConfig::max_backlog_bytes`](crate::ServerConfig::max_backlog_bytes).
    TooLarge,
    /// The message would take the client past its backlog bound: the client was
    /// evicted with [`close_code::BACKLOG`].
    Evicted,
}

impl<P: fmt::Debug> fmt::Display for ServerSendError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ServerSendErrorKind::NotOpen => "connection is not open",
            ServerSendErrorKind::UnknownName => "no client has this name",
            ServerSendErrorKind::TooLarge => "message is larger than the backlog bound",
            ServerSendErrorKind::Evicted => "client could not keep up and was evicted",
        })
    }
}

impl<P: fmt::Debug> std::error::Error for ServerSendError<P> {}
