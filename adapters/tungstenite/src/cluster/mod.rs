//! Backplanes: what carries the cluster's messages between server processes.
//!
//! A server in a cluster runs the core's [`Cluster`](heartline_core::Cluster) machine
//! beside its server machine (in the [`hub`](crate::hub)); the machine decides what to
//! publish and where, and a [`Backplane`] only moves bytes: everything published on
//! [`Channel::All`] to every node, on [`Channel::Node`] to that one, at most once, and
//! says whether it is reachable. Two come with heartline: [`Memory`] (the nodes are
//! servers in one process: for tests, and for one process that runs several servers)
//! and, with the `redis` feature, [`Redis`](redis::Redis) (pub/sub on a Redis server).
//!
//! A NATS backplane would be the same shape as the Redis one: one subscription per
//! node on two subjects (`heartline.<cluster>.all` and `heartline.<cluster>.node.<id>`),
//! publishing without waiting, and `Up` / `Down` from the client's connection events.

mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::Memory;

use std::fmt;
use std::io;
use std::sync::Arc;

use heartline_core::{Channel, ClusterConfig};

/// What a backplane tells the node it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackplaneEvent {
    /// The backplane is reachable: the node (re)announces itself.
    Up,
    /// The backplane cannot be reached: the node serves its own clients alone.
    Down,
    /// A message published for this node (or for all), as published.
    Message(Vec<u8>),
}

/// Where a backplane sends what it has for one node: into that node's server loop.
/// Cloneable and callable from any thread.
#[derive(Clone)]
pub struct Inbox(Arc<dyn Fn(BackplaneEvent) -> bool + Send + Sync>);

impl Inbox {
    /// An inbox that hands each event to `deliver`, which says whether the node is
    /// still there to take more.
    pub fn new(deliver: impl Fn(BackplaneEvent) -> bool + Send + Sync + 'static) -> Self {
        Inbox(Arc::new(deliver))
    }

    /// Hands `event` to the node; `false` once the node has stopped (the backplane
    /// may then stop serving it).
    pub fn deliver(&self, event: BackplaneEvent) -> bool {
        (self.0)(event)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inbox")
    }
}

/// Carries the cluster's messages between nodes.
pub trait Backplane: Send + Sync {
    /// Joins the cluster as `node`: from now on, what is published on
    /// [`Channel::All`] or on `Channel::Node(node)` goes to `inbox`, with
    /// [`BackplaneEvent::Up`] once this node can publish and receive, and
    /// [`BackplaneEvent::Down`] whenever that stops. Until the first `Up` the node
    /// counts the backplane as down. The node leaves when the link is dropped.
    fn join(&self, node: &str, inbox: Inbox) -> io::Result<Box<dyn Link>>;
}

/// One node's way onto the backplane.
pub trait Link: Send {
    /// Publishes `bytes` on `channel`, at most once, without blocking the server
    /// loop (queue it, or drop it when the backplane is down: the cluster machine
    /// repairs what a lost message leaves behind, or reports the send as timed out).
    fn publish(&mut self, channel: &Channel, bytes: Vec<u8>);
}

/// What makes a server a node of a cluster.
#[derive(Clone)]
pub struct ClusterSetup {
    /// The cluster machine's settings: node id, heartbeat, TTL, send timeout.
    pub config: ClusterConfig,
    /// What carries the messages.
    pub backplane: Arc<dyn Backplane>,
}

impl ClusterSetup {
    /// Node `config.node` on `backplane`.
    pub fn new(config: ClusterConfig, backplane: impl Backplane + 'static) -> Self {
        ClusterSetup {
            config,
            backplane: Arc::new(backplane),
        }
    }
}

impl fmt::Debug for ClusterSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSetup")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
