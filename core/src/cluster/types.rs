//! What the cluster machine is configured with, says and hears.

use std::time::Duration;

#[cfg(doc)]
use super::Cluster;
use super::Wire;
use crate::frame::Message;
use crate::{ConfigError, ConnId};

/// How a node takes part in the cluster.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `ClusterConfig::new(node)` and set the fields you need.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster.
    pub node: String,
    /// How often this node says it is alive.
    ///
    /// Default 1 s: a few bytes per node per second, and a dead node is noticed in
    /// seconds.
    pub heartbeat_interval: Duration,
    /// Silence after which a node counts as dead and its names are dropped.
    ///
    /// Default 3 s: three heartbeats, so one or two lost messages do not drop a live
    /// node, while a dead node's clients are gone everywhere within 4 s.
    pub node_ttl: Duration,
    /// How long [`Cluster::send_to`] waits for the holder's answer.
    ///
    /// Default 2 s: a round trip over a backplane takes milliseconds; two seconds
    /// means the holder died or the backplane is down.
    pub send_timeout: Duration,
}

impl ClusterConfig {
    /// The defaults for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        ClusterConfig {
            node: node.into(),
            heartbeat_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(3),
            send_timeout: Duration::from_secs(2),
        }
    }

    /// Checks the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node.is_empty() {
            return Err(ConfigError::new("node", "must not be empty"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::new(
                "heartbeat_interval",
                "must be greater than zero",
            ));
        }
        if self.node_ttl <= self.heartbeat_interval {
            return Err(ConfigError::new(
                "node_ttl",
                "must be longer than heartbeat_interval, or live nodes expire",
            ));
        }
        if self.send_timeout.is_zero() {
            return Err(ConfigError::new(
                "send_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Where a [`Wire`] message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// Every node (this one too: a node ignores its own messages).
    All,
    /// One node.
    Node(String),
}

/// Identifies one [`Cluster::send_to`] to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(pub u64);

/// A delivery a remote node asked for; report how it went with
/// [`Cluster::handle_delivered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryToken {
    pub(super) node: String,
    pub(super) id: u64,
}

/// What a [`Cluster::send_to`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The client is on this node: send to `conn` with the server.
    Local(ConnId),
    /// The client is on another node: the answer comes as a
    /// [`ClusterNotice::SendResult`] with this id.
    Remote(SendId),
    /// No client has that name anywhere.
    NoSuchClient,
}

/// How a send to another node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The holder took it.
    Delivered,
    /// The holder no longer had the client.
    NoSuchClient,
    /// No answer within the send timeout.
    Timeout,
}

/// What the cluster asks its node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAction {
    /// Publish `wire` (encoded with [`Wire::encode`]) on `channel`.
    Publish {
        /// Where to.
        channel: Channel,
        /// What.
        wire: Wire,
    },
    /// Send `message` from `from` to the local connection `conn`, then report with
    /// [`Cluster::handle_delivered`].
    Deliver {
        /// The local connection.
        conn: ConnId,
        /// The sending client's name, if any.
        from: Option<String>,
        /// The message.
        message: Message,
        /// For the answer.
        token: DeliveryToken,
    },
    /// Send `message` from `from` to every local connection.
    DeliverAll {
        /// The sending client's name, if any.
        from: Option<String>,
        /// The message.
        message: Message,
    },
    /// A newer client took this local client's name on another node: close `conn`
    /// with [`close_code::REPLACED`](crate::close_code::REPLACED).
    Replace {
        /// The local connection.
        conn: ConnId,
        /// Its name.
        name: String,
    },
}

/// What the cluster tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterNotice {
    /// The answer to a [`Route::Remote`] send.
    SendResult {
        /// The send.
        id: SendId,
        /// How it ended.
        outcome: SendOutcome,
    },
    /// A node was heard from for the first time (or again after it expired).
    NodeUp {
        /// The node.
        node: String,
    },
    /// A node went silent for the TTL: its clients left the registry.
    NodeDown {
        /// The node.
        node: String,
        /// How many of its clients were dropped.
        clients: usize,
    },
    /// The backplane became reachable (`up`) or not, as [`Cluster::handle_backplane`]
    /// was told. While it is down this node serves its own clients alone.
    Backplane {
        /// Whether it is reachable now.
        up: bool,
    },
}
