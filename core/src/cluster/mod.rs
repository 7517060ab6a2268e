//! The cluster: one registry of clients by name across server processes, send-to-name
//! with an answer, broadcast, replacement across nodes, and node liveness by
//! heartbeats with a TTL, in one sans-IO machine per node.
//!
//! Each node runs a [`Cluster`] beside its [`Server`](crate::Server). It is told what
//! its own clients do ([`Cluster::local_open`], [`Cluster::local_close`]), what
//! arrives from the backplane ([`Cluster::handle_wire`]) and whether the backplane is
//! reachable; it answers with messages to publish, deliveries for its server, and the
//! next deadline. The backplane (Redis pub/sub, in memory, NATS...) only carries
//! [`Wire`] messages, encoded the same way everywhere: to every node
//! ([`Channel::All`]) or to one ([`Channel::Node`]).
//!
//! Guarantees, given a backplane that delivers at most once:
//! - a name has one holder in every node's view once the claims have arrived: the
//!   later claim wins (a logical clock orders claims; a tie goes to the greater node
//!   id), and the node whose client lost closes it ([`ClusterAction::Replace`]);
//! - a node not heard from for [`ClusterConfig::node_ttl`] is dead: its names leave
//!   every view, so they are gone within the TTL plus one heartbeat of its death;
//! - [`Cluster::send_to`] ends in exactly one [`ClusterNotice::SendResult`]:
//!   delivered, no such client, or timeout after [`ClusterConfig::send_timeout`];
//! - a broadcast reaches each live node at most once.
//!
//! What pub/sub can lose (a message published while a node was unreachable) is not
//! resent. Views repair themselves: every heartbeat carries a digest of the clients
//! its node holds, and a node whose view of that node differs asks for its presence,
//! so a lost claim or release is mended within a heartbeat. A lost send times out; a
//! lost broadcast is lost.

mod link;
mod types;
mod view;
mod wire;

pub use link::{BackplaneLink, LinkConfig, LinkStep};
pub use types::{
    Channel, ClusterAction, ClusterConfig, ClusterNotice, DeliveryToken, Route, SendId, SendOutcome,
};
pub use wire::{Wire, WireError};

use std::collections::{BTreeSet, HashMap, VecDeque};

use self::view::{Holder, View};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::frame::Message;
use crate::{ConfigError, ConnId};

/// One node's share of the cluster. See the module docs.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    me: Arc<str>,
    /// The logical clock that orders claims: the latest stamp made or seen.
    clock: u64,
    /// When this node started, and the wall clock's milliseconds then.
    started: (Instant, u64),
    names: View,
    /// Other nodes heard from, and when last.
    nodes: HashMap<Arc<str>, Instant>,
    /// Sends waiting for an answer, by deadline.
    pending: BTreeSet<(Instant, u64)>,
    deadlines: HashMap<u64, Instant>,
    next_id: u64,
    next_heartbeat: Instant,
    backplane_up: bool,
    now: Instant,
    actions: VecDeque<ClusterAction>,
    notices: VecDeque<ClusterNotice>,
}

impl Cluster {
    /// A node not yet on the backplane. Once its driver has joined one, it reports so
    /// with [`Cluster::handle_backplane`]`(now, true)`: the node then announces itself
    /// ([`Wire::Hello`], so every other node sends it their clients) and heartbeats.
    ///
    /// `wall` is the wall-clock time read with `now`: claims are stamped with the wall
    /// clock's milliseconds (or one past the latest stamp seen, if that is later), so
    /// "the later claim" means the later connection even across a node's restart, to
    /// within the nodes' clock skew.
    pub fn new(
        config: ClusterConfig,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Cluster, ConfigError> {
        config.validate()?;
        let me: Arc<str> = Arc::from(config.node.as_str());
        let wall_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Cluster {
            next_heartbeat: now + config.heartbeat_interval,
            started: (now, wall_ms),
            config,
            me,
            clock: 0,
            names: View::default(),
            nodes: HashMap::new(),
            pending: BTreeSet::new(),
            deadlines: HashMap::new(),
            next_id: 0,
            backplane_up: false,
            now,
            actions: VecDeque::new(),
            notices: VecDeque::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    // ---- this node's clients ----

    /// A client opened here as `name` (after the server registered it). It takes the
    /// name cluster-wide: a holder on another node is replaced there.
    pub fn local_open(&mut self, now: Instant, name: &str, conn: ConnId) {
        let now = self.clamp(now);
        let (start, wall) = self.started;
        let elapsed = u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX);
        self.clock = (self.clock + 1).max(wall.saturating_add(elapsed));
        let holder = Holder {
            node: self.me.clone(),
            conn: conn.0,
            stamp: self.clock,
        };
        self.names.insert(name, holder);
        self.publish(Channel::All, self.claim(name, conn.0, self.clock));
    }

    /// The client `name` on `conn` left this node.
    pub fn local_close(&mut self, now: Instant, name: &str, conn: ConnId) {
        self.clamp(now);
        let ours = self
            .names
            .get(name)
            .is_some_and(|h| h.node == self.me && h.conn == conn.0);
        if ours {
            self.names.remove(name);
            self.publish(
                Channel::All,
                Wire::Release {
                    node: self.config.node.clone(),
                    name: name.to_owned(),
                    conn: conn.0,
                },
            );
        }
    }

    // ---- what the application asks ----

    /// Where the client `name` is. For [`Route::Remote`] the message is on its way and
    /// the answer comes as a [`ClusterNotice::SendResult`].
    pub fn send_to(
        &mut self,
        now: Instant,
        name: &str,
        from: Option<&str>,
        message: Message,
    ) -> Route {
        let now = self.clamp(now);
        let Some(holder) = self.names.get(name) else {
            return Route::NoSuchClient;
        };
        if holder.node == self.me {
            return Route::Local(ConnId(holder.conn));
        }
        let node = holder.node.to_string();
        self.next_id += 1;
        let id = self.next_id;
        let deadline = now + self.config.send_timeout;
        self.pending.insert((deadline, id));
        self.deadlines.insert(id, deadline);
        self.publish(
            Channel::Node(node),
            Wire::Send {
                node: self.config.node.clone(),
                id,
                to: name.to_owned(),
                from: from.map(str::to_owned),
                message,
            },
        );
        Route::Remote(SendId(id))
    }

    /// Sends `message` to the clients of every other node; this node's own clients are
    /// the server's to reach (`Server::broadcast`).
    pub fn broadcast(&mut self, now: Instant, from: Option<&str>, message: Message) {
        self.clamp(now);
        self.publish(
            Channel::All,
            Wire::Broadcast {
                node: self.config.node.clone(),
                from: from.map(str::to_owned),
                message,
            },
        );
    }

    /// The result of a [`ClusterAction::Deliver`].
    pub fn handle_delivered(&mut self, now: Instant, token: DeliveryToken, delivered: bool) {
        self.clamp(now);
        let wire = Wire::Delivered {
            node: self.config.node.clone(),
            id: token.id,
            delivered,
        };
        self.publish(Channel::Node(token.node), wire);
    }

    // ---- the backplane ----

    /// A message from the backplane. Messages from this node itself are ignored.
    pub fn handle_wire(&mut self, now: Instant, wire: Wire) {
        let now = self.clamp(now);
        if wire.node() == &*self.me {
            return;
        }
        let (node, new) = self.heard(now, wire.node());
        match wire {
            Wire::Heartbeat { digest, .. } => {
                // This view of the node differs from what it holds (a claim or release
                // was lost, or hidden): ask it for its clients.
                if self.names.digest(&node) != digest {
                    let me = self.config.node.clone();
                    self.publish(Channel::Node(node.to_string()), Wire::Hello { node: me });
                }
            }
            Wire::Hello { .. } if !new => self.send_presence(Channel::Node(node.to_string())),
            Wire::Hello { .. } => {}
            Wire::Presence { names, .. } => {
                // A node's presence is all of its clients: any other this node thought
                // it held has left meanwhile (its release was lost, or never sent
                // while the backplane was down).
                let listed: std::collections::HashSet<&str> =
                    names.iter().map(|(n, ..)| n.as_str()).collect();
                let before = self.names.len();
                self.names
                    .retain(|name, h| h.node != node || listed.contains(name));
                if self.names.len() < before {
                    self.ask_presence();
                }
                for (name, conn, stamp) in names {
                    self.claimed(&name, &node, conn, stamp);
                }
            }
            Wire::Claim {
                name, conn, stamp, ..
            } => self.claimed(&name, &node, conn, stamp),
            Wire::Release { name, conn, .. } => {
                if self
                    .names
                    .get(name.as_str())
                    .is_some_and(|h| h.node == node && h.conn == conn)
                {
                    self.names.remove(name.as_str());
                }
            }
            Wire::Send {
                id,
                to,
                from,
                message,
                ..
            } => {
                let token = DeliveryToken {
                    node: node.to_string(),
                    id,
                };
                match self.names.get(to.as_str()) {
                    Some(h) if h.node == self.me => {
                        self.actions.push_back(ClusterAction::Deliver {
                            conn: ConnId(h.conn),
                            from,
                            message,
                            token,
                        })
                    }
                    _ => self.handle_delivered(now, token, false),
                }
            }
            Wire::Delivered { id, delivered, .. } => {
                if let Some(deadline) = self.deadlines.remove(&id) {
                    self.pending.remove(&(deadline, id));
                    let outcome = if delivered {
                        SendOutcome::Delivered
                    } else {
                        SendOutcome::NoSuchClient
                    };
                    self.notices.push_back(ClusterNotice::SendResult {
                        id: SendId(id),
                        outcome,
                    });
                }
            }
            Wire::Broadcast { from, message, .. } => {
                self.actions
                    .push_back(ClusterAction::DeliverAll { from, message });
            }
        }
    }

    /// The backplane became reachable (`true`) or not. While it is down nothing is
    /// published (this node serves its own clients alone, and other nodes' clients
    /// expire from its view after the TTL); when it is back the node announces itself
    /// again and republishes its clients, so every view is rebuilt.
    pub fn handle_backplane(&mut self, now: Instant, up: bool) {
        self.clamp(now);
        let was = std::mem::replace(&mut self.backplane_up, up);
        if up != was {
            self.notices.push_back(ClusterNotice::Backplane { up });
        }
        if up && !was {
            self.announce();
        }
    }

    /// Whether the backplane is reachable, as last reported.
    pub fn is_backplane_up(&self) -> bool {
        self.backplane_up
    }

    // ---- time ----

    /// Handles every deadline at or before `now`: the heartbeat, nodes gone silent,
    /// sends that were not answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        if self.next_heartbeat <= now {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let node = self.config.node.clone();
            let digest = self.names.digest(&self.me);
            self.publish(Channel::All, Wire::Heartbeat { node, digest });
        }
        let ttl = self.config.node_ttl;
        let dead: Vec<Arc<str>> = self
            .nodes
            .iter()
            .filter(|(_, heard)| **heard + ttl <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let mut dropped = 0;
        for node in dead {
            self.nodes.remove(&node);
            let before = self.names.len();
            self.names.retain(|_, h| h.node != node);
            dropped += before - self.names.len();
            self.notices.push_back(ClusterNotice::NodeDown {
                node: node.to_string(),
                clients: before - self.names.len(),
            });
        }
        if dropped > 0 {
            self.ask_presence();
        }
        while let Some(&(deadline, id)) = self.pending.first() {
            if deadline > now {
                break;
            }
            self.pending.remove(&(deadline, id));
            self.deadlines.remove(&id);
            self.notices.push_back(ClusterNotice::SendResult {
                id: SendId(id),
                outcome: SendOutcome::Timeout,
            });
        }
    }

    /// The one deadline at which [`Cluster::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.nodes.values().min().map(|h| *h + self.config.node_ttl);
        let send = self.pending.first().map(|(d, _)| *d);
        [Some(self.next_heartbeat), expiry, send]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing for the node to do.
    pub fn poll_action(&mut self) -> Option<ClusterAction> {
        self.actions.pop_front()
    }

    /// The next thing to tell the application.
    pub fn poll_notice(&mut self) -> Option<ClusterNotice> {
        self.notices.pop_front()
    }

    // ---- the registry ----

    /// The node and connection holding `name`.
    pub fn lookup(&self, name: &str) -> Option<(&str, ConnId)> {
        self.names.get(name).map(|h| (&*h.node, ConnId(h.conn)))
    }

    /// Every client in the cluster: name, node, connection (in no particular order).
    pub fn clients(&self) -> impl Iterator<Item = (&str, &str, ConnId)> + '_ {
        self.names
            .iter()
            .map(|(n, h)| (&**n, &*h.node, ConnId(h.conn)))
    }

    /// The other nodes alive, as far as this node knows.
    pub fn nodes(&self) -> impl Iterator<Item = &str> + '_ {
        self.nodes.keys().map(|n| &**n)
    }

    // ---- internals ----

    fn clamp(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn publish(&mut self, channel: Channel, wire: Wire) {
        if self.backplane_up {
            self.actions
                .push_back(ClusterAction::Publish { channel, wire });
        }
    }

    fn claim(&self, name: &str, conn: u64, stamp: u64) -> Wire {
        Wire::Claim {
            node: self.config.node.clone(),
            name: name.to_owned(),
            conn,
            stamp,
        }
    }

    /// Names left the view without a release (a node died, or restarted without
    /// them): a claim of theirs may have hidden an older one still live elsewhere,
    /// whose node never heard it lost. Every node answers a Hello with its clients.
    fn ask_presence(&mut self) {
        let node = self.config.node.clone();
        self.publish(Channel::All, Wire::Hello { node });
    }

    /// Hello to every node, and this node's clients, so views rebuild.
    fn announce(&mut self) {
        let node = self.config.node.clone();
        self.publish(Channel::All, Wire::Hello { node });
        self.send_presence(Channel::All);
    }

    fn send_presence(&mut self, channel: Channel) {
        let names: Vec<(String, u64, u64)> = self
            .names
            .iter()
            .filter(|(_, h)| h.node == self.me)
            .map(|(n, h)| (n.to_string(), h.conn, h.stamp))
            .collect();
        // Sent even when empty: it also says which clients are gone.
        let node = self.config.node.clone();
        self.publish(channel, Wire::Presence { node, names });
    }

    /// `node` was heard from: it is alive. A node new to this one gets this node's
    /// clients (it started, or was cut off and expired them); `true` then.
    fn heard(&mut self, now: Instant, node: &str) -> (Arc<str>, bool) {
        if let Some((name, heard)) = self.nodes.get_key_value(node) {
            let name = name.clone();
            let _ = heard;
            self.nodes.insert(name.clone(), now);
            return (name, false);
        }
        let name: Arc<str> = Arc::from(node);
        self.nodes.insert(name.clone(), now);
        self.notices.push_back(ClusterNotice::NodeUp {
            node: node.to_owned(),
        });
        self.send_presence(Channel::Node(node.to_owned()));
        (name, true)
    }

    /// `node` says its client `conn` holds `name` since `stamp`.
    fn claimed(&mut self, name: &str, node: &Arc<str>, conn: u64, stamp: u64) {
        self.clock = self.clock.max(stamp);
        let theirs = Holder {
            node: node.clone(),
            conn,
            stamp,
        };
        match self.names.get(name) {
            // A node's word on its own clients is the latest (it may have restarted).
            Some(h) if h.node == *node => {
                self.names.insert(name, theirs);
            }
            Some(h) if (h.stamp, &*h.node) >= (stamp, &**node) => {
                if h.node == self.me && (h.stamp, &*h.node) > (stamp, &**node) {
                    // Ours is newer: make sure the other node learns it lost.
                    let wire = self.claim(name, h.conn, h.stamp);
                    self.publish(Channel::Node(node.to_string()), wire);
                }
            }
            Some(h) if h.node == self.me => {
                let conn = ConnId(h.conn);
                self.actions.push_back(ClusterAction::Replace {
                    conn,
                    name: name.to_owned(),
                });
                self.names.insert(name, theirs);
            }
            _ => {
                self.names.insert(name, theirs);
            }
        }
    }
}
