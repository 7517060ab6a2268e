//! What a server's application sees and asks: its events, registry entries, errors,
//! and the server's configuration, the same for every runtime.

use std::fmt;
use std::sync::Arc;

use heartline_core::{Cluster, ClusterNotice, ConnId, Message, SendId, Server, ServerNotice};
use tungstenite::handshake::server::Request;
use tungstenite::Message as WsMessage;

use crate::cluster::ClusterSetup;
use crate::wire::{Buffers, HttpResponse};

/// What the server tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// What the cluster observed (a server with [`ServerConfig::cluster`]): the answer
    /// to a send that went to another node ([`Sent::Away`]), a node up or down, the
    /// backplane up or down.
    Cluster(ClusterNotice),
}

/// Where a send to a name went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// To a client on this server: queued for it.
    Here,
    /// To the node of the cluster that holds the client: how it ended comes as
    /// [`ServerEvent::Cluster`] with a [`ClusterNotice::SendResult`] of this id
    /// (delivered, no such client, or timeout).
    Away(SendId),
}

/// A client anywhere in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterClient {
    /// The name it registered under.
    pub name: String,
    /// The node holding it.
    pub node: String,
}

/// A read-only view of who is connected, for an [`HttpHandler`].
#[derive(Clone, Copy)]
pub struct Directory<'a> {
    pub(super) core: &'a Server<WsMessage>,
    pub(super) cluster: Option<&'a Cluster>,
}

impl fmt::Debug for Directory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("clients", &self.core.clients().count())
            .field("node", &self.node())
            .finish()
    }
}

impl Directory<'_> {
    /// The client registered as `name` on this server.
    pub fn lookup(&self, name: &str) -> Option<ClientInfo> {
        self.core.lookup(name).map(|conn| ClientInfo {
            conn,
            name: name.to_owned(),
        })
    }

    /// Every client registered on this server.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.core
            .clients()
            .map(|(name, conn)| ClientInfo {
                conn,
                name: name.to_owned(),
            })
            .collect()
    }

    /// This node's id, in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.cluster.map(|c| c.config().node.as_str())
    }

    /// Every client of the cluster, as this node knows them (`None` without a
    /// cluster).
    pub fn cluster_clients(&self) -> Option<Vec<ClusterClient>> {
        let cluster = self.cluster?;
        let clients = cluster.clients().map(|(name, node, _)| ClusterClient {
            name: name.to_owned(),
            node: node.to_owned(),
        });
        Some(clients.collect())
    }
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
#[non_exhaustive]
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

/// Answers plain HTTP requests (those without `Upgrade: websocket`), with who is
/// connected at hand (a status page, `GET /clients`); `None` lets the server answer
/// (404 for a path it does not serve). It runs on the server loop: keep it quick,
/// answer from memory.
pub type HttpHandler = Arc<dyn Fn(&Request, &Directory<'_>) -> Option<HttpResponse> + Send + Sync>;

/// How a heartline server runs, whatever its runtime.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `ServerConfig::default()` and set the fields you need.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The core's configuration: ping interval, idle, handshake and write timeouts,
    /// path, limits.
    pub core: heartline_core::ServerConfig,
    /// Buffer sizes per connection.
    pub buffers: Buffers,
    /// Answers plain HTTP requests on the same port (a page, a health check).
    pub http: Option<HttpHandler>,
    /// Makes the server a node of a cluster: registry, send-to-name and broadcast
    /// across every node on the backplane. `None` (the default): this server alone.
    pub cluster: Option<ClusterSetup>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("core", &self.core)
            .field("buffers", &self.buffers)
            .field("http", &self.http.as_ref().map(|_| "Fn"))
            .field("cluster", &self.cluster)
            .finish()
    }
}
