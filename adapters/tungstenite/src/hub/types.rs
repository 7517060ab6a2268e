//! What a server's application sees and asks: its events, registry entries, errors,
//! and the server's configuration, the same for every runtime.

use std::fmt;
use std::sync::Arc;

use heartline_core::{ConnId, Message, ServerNotice};
use tungstenite::handshake::server::Request;

use crate::wire::{Buffers, HttpResponse};

/// What the server tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Something the core decided or observed: a client opened, was replaced or closed
    /// (an eviction says why in [`ServerNotice::Closed`]), an upgrade was rejected,
    /// shutdown completed.
    Notice(ServerNotice),
    /// An application message from a client.
    Message {
        /// The connection.
        conn: ConnId,
        /// The name the client registered under, if it has one.
        name: Option<Arc<str>>,
        /// The message.
        message: Message,
    },
}

/// A client in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection.
    pub conn: ConnId,
    /// The name it registered under.
    pub name: String,
}

/// A request to the server could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// No open client has this name or id.
    NotConnected,
    /// The message alone is larger than the client's backlog bound.
    TooLarge,
    /// The client could not keep up: it was evicted instead of sent the message.
    Evicted,
    /// The server has shut down.
    Stopped,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerError::NotConnected => "no such client",
            ServerError::TooLarge => "message is larger than the backlog bound",
            ServerError::Evicted => "client could not keep up and was evicted",
            ServerError::Stopped => "the server has stopped",
        })
    }
}

impl std::error::Error for ServerError {}

/// Which client a send is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The client registered under this name.
    Name(String),
    /// This connection.
    Conn(ConnId),
}

/// Answers plain HTTP requests (those without `Upgrade: websocket`); `None` lets the
/// server answer (404 for a path it does not serve). It runs where the server reads
/// request heads (the blocking server's loop thread, an async connection's task): keep
/// it quick, answer from memory.
pub type HttpHandler = Arc<dyn Fn(&Request) -> Option<HttpResponse> + Send + Sync>;

/// How a heartline server runs, whatever its runtime.
#[derive(Clone, Default)]
pub struct ServerConfig {
    /// The core's configuration: ping interval, idle, handshake and write timeouts,
    /// path, limits.
    pub core: heartline_core::ServerConfig,
    /// Buffer sizes per connection.
    pub buffers: Buffers,
    /// Answers plain HTTP requests on the same port (a page, a health check).
    pub http: Option<HttpHandler>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("core", &self.core)
            .field("buffers", &self.buffers)
            .field("http", &self.http.as_ref().map(|_| "Fn"))
            .finish()
    }
}
