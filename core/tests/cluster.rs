//! The cluster machine with several nodes on a simulated backplane in virtual time:
//! send-to-name with its answer, broadcast, replacement across nodes, concurrent
//! claims, a node that dies, a backplane that goes away and comes back.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use heartline_core::{
    Channel, Cluster, ClusterAction, ClusterConfig, ClusterNotice, ConnId, Message, Route,
    SendOutcome, Wire,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One node: its machine, its local clients, what it was asked to do.
struct Node {
    cluster: Cluster,
    /// Local connections open on this node's server.
    local: HashSet<ConnId>,
    delivered: Vec<(ConnId, Option<String>, Message)>,
    delivered_all: Vec<(Option<String>, Message)>,
    replaced: Vec<ConnId>,
    notices: Vec<ClusterNotice>,
    /// Killed: it sends and hears nothing and its timers stop.
    dead: bool,
    /// Cut off from the backplane.
    offline: bool,
}

/// Nodes `a`, `b`, `c`... on one backplane that delivers every message, in order.
struct Net {
    nodes: Vec<Node>,
    start: Instant,
    now: Instant,
}

/// The wall clock every node reads at the start.
const WALL: SystemTime = SystemTime::UNIX_EPOCH;

impl Net {
    fn new(n: usize) -> Net {
        let start = Instant::now();
        let nodes = (0..n)
            .map(|i| Node {
                cluster: Cluster::new(ClusterConfig::new(id(i)), start, WALL).expect("valid"),
                local: HashSet::new(),
                delivered: Vec::new(),
                delivered_all: Vec::new(),
                replaced: Vec::new(),
                notices: Vec::new(),
                dead: false,
                offline: false,
            })
            .collect();
        let mut net = Net {
            nodes,
            start,
            now: start,
        };
        for node in &mut net.nodes {
            node.cluster.handle_backplane(start, true);
        }
        net.pump();
        net
    }

    /// Moves every published message to its nodes (through the wire encoding) and
    /// carries out every action, until nothing is left.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(action) = self.nodes[i].cluster.poll_action() {
                    moved = true;
                    self.act(i, action);
                }
                while let Some(notice) = self.nodes[i].cluster.poll_notice() {
                    self.nodes[i].notices.push(notice);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the nodes keep talking");
    }

    fn act(&mut self, i: usize, action: ClusterAction) {
        let now = self.now;
        match action {
            ClusterAction::Publish { channel, wire } => {
                if self.nodes[i].dead || self.nodes[i].offline {
                    return;
                }
                let bytes = wire.encode();
                for j in 0..self.nodes.len() {
                    let to = match &channel {
                        Channel::All => true,
                        Channel::Node(n) => *n == id(j),
                    };
                    if to && !self.nodes[j].dead && !self.nodes[j].offline {
                        let wire = Wire::decode(&bytes).expect("what encode wrote decodes");
                        self.nodes[j].cluster.handle_wire(now, wire);
                    }
                }
            }
            ClusterAction::Deliver {
                conn,
                from,
                message,
                token,
            } => {
                let node = &mut self.nodes[i];
                let open = node.local.contains(&conn);
                if open {
                    node.delivered.push((conn, from, message));
                }
                node.cluster.handle_delivered(now, token, open);
            }
            ClusterAction::DeliverAll { from, message } => {
                self.nodes[i].delivered_all.push((from, message));
            }
            ClusterAction::Replace { conn, name } => {
                let node = &mut self.nodes[i];
                node.replaced.push(conn);
                node.local.remove(&conn);
                node.cluster.local_close(now, &name, conn);
            }
        }
    }

    fn open(&mut self, node: usize, name: &str, conn: u64) {
        let conn = ConnId(conn);
        self.nodes[node].local.insert(conn);
        self.nodes[node].cluster.local_open(self.now, name, conn);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        // Wake at every deadline on the way, as drivers do.
        loop {
            let next = self
                .nodes
                .iter()
                .filter(|n| !n.dead)
                .filter_map(|n| n.cluster.poll_timeout())
                .min()
                .filter(|t| *t <= end);
            let Some(at) = next else { break };
            self.now = at;
            for node in self.nodes.iter_mut().filter(|n| !n.dead) {
                node.cluster.handle_timeout(at);
            }
            self.pump();
        }
        self.now = end;
    }

    fn holder(&self, viewer: usize, name: &str) -> Option<(String, ConnId)> {
        self.nodes[viewer]
            .cluster
            .lookup(name)
            .map(|(n, c)| (n.to_owned(), c))
    }

    fn results(&self, node: usize) -> Vec<SendOutcome> {
        self.nodes[node]
            .notices
            .iter()
            .filter_map(|n| match n {
                ClusterNotice::SendResult { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect()
    }
}

fn id(i: usize) -> String {
    ((b'a' + i as u8) as char).to_string()
}

fn text(s: &str) -> Message {
    Message::Text(s.to_owned())
}

#[test]
fn send_to_a_name_reaches_its_node_and_the_sender_learns_the_outcome() {
    let mut net = Net::new(3);
    net.open(0, "alice", 1);
    let now = net.now;
    let route = net.nodes[1]
        .cluster
        .send_to(now, "alice", Some("bob"), text("hi"));
    assert!(matches!(route, Route::Remote(_)), "{route:?}");
    net.pump();
    assert_eq!(
        net.nodes[0].delivered,
        vec![(ConnId(1), Some("bob".to_owned()), text("hi"))]
    );
    assert_eq!(net.results(1), vec![SendOutcome::Delivered]);
    // On its own node the route is local; an unknown name is known to be unknown.
    assert_eq!(
        net.nodes[0].cluster.send_to(now, "alice", None, text("x")),
        Route::Local(ConnId(1))
    );
    assert_eq!(
        net.nodes[2].cluster.send_to(now, "nobody", None, text("x")),
        Route::NoSuchClient
    );
}

#[test]
fn a_holder_that_lost_the_client_answers_no_such_client() {
    let mut net = Net::new(2);
    net.open(0, "alice", 1);
    // The connection is gone on node a's server, its release not yet out.
    net.nodes[0].local.clear();
    let now = net.now;
    net.nodes[1].cluster.send_to(now, "alice", None, text("hi"));
    net.pump();
    assert_eq!(net.results(1), vec![SendOutcome::NoSuchClient]);
}

#[test]
fn a_send_to_a_node_that_died_times_out() {
    let mut net = Net::new(2);
    net.open(0, "alice", 1);
    net.nodes[0].dead = true;
    let now = net.now;
    net.nodes[1].cluster.send_to(now, "alice", None, text("hi"));
    net.pump();
    assert!(net.results(1).is_empty());
    net.advance(ms(1999));
    assert!(net.results(1).is_empty(), "not before the 2 s send timeout");
    net.advance(ms(1));
    assert_eq!(net.results(1), vec![SendOutcome::Timeout]);
}

#[test]
fn a_broadcast_reaches_every_other_node_once() {
    let mut net = Net::new(4);
    let now = net.now;
    net.nodes[2]
        .cluster
        .broadcast(now, Some("carol"), text("all"));
    net.pump();
    for (i, node) in net.nodes.iter().enumerate() {
        let want = if i == 2 {
            vec![]
        } else {
            vec![(Some("carol".to_owned()), text("all"))]
        };
        assert_eq!(node.delivered_all, want, "node {}", id(i));
    }
}

#[test]
fn a_name_connected_on_another_node_replaces_the_old_connection() {
    let mut net = Net::new(3);
    net.open(0, "alice", 1);
    net.open(1, "alice", 7);
    assert_eq!(net.nodes[0].replaced, vec![ConnId(1)]);
    assert!(net.nodes[1].replaced.is_empty());
    for viewer in 0..3 {
        assert_eq!(
            net.holder(viewer, "alice"),
            Some(("b".to_owned(), ConnId(7)))
        );
    }
    // The old node's release changed nothing: the name stays with the new holder.
    assert_eq!(net.holder(2, "alice"), Some(("b".to_owned(), ConnId(7))));
}

#[test]
fn concurrent_connects_of_one_name_leave_exactly_one_survivor() {
    let mut net = Net::new(3);
    let now = net.now;
    // Both claims are made before either node hears of the other's.
    net.nodes[0].local.insert(ConnId(1));
    net.nodes[0].cluster.local_open(now, "alice", ConnId(1));
    net.nodes[2].local.insert(ConnId(9));
    net.nodes[2].cluster.local_open(now, "alice", ConnId(9));
    net.pump();
    // Equal logical times: the greater node id (c) wins, on every node.
    assert_eq!(net.nodes[0].replaced, vec![ConnId(1)]);
    assert!(net.nodes[2].replaced.is_empty());
    for viewer in 0..3 {
        assert_eq!(
            net.holder(viewer, "alice"),
            Some(("c".to_owned(), ConnId(9)))
        );
    }
}

#[test]
fn a_dead_nodes_names_are_gone_everywhere_within_the_ttl_and_a_heartbeat() {
    let mut net = Net::new(3);
    net.open(0, "alice", 1);
    net.open(0, "bob", 2);
    net.advance(ms(1500));
    net.nodes[0].dead = true;
    net.advance(ms(4000));
    for viewer in 1..3 {
        assert_eq!(net.holder(viewer, "alice"), None);
        let down = net.nodes[viewer].notices.iter().any(|n| {
            *n == ClusterNotice::NodeDown {
                node: "a".to_owned(),
                clients: 2,
            }
        });
        assert!(down, "{:?}", net.nodes[viewer].notices);
    }
    // Not before the TTL: the last heartbeat was at most one interval before the death.
    let mut early = Net::new(2);
    early.open(0, "alice", 1);
    early.advance(ms(1500));
    early.nodes[0].dead = true;
    early.advance(ms(1400));
    assert!(early.holder(1, "alice").is_some(), "dropped before the TTL");
}

#[test]
fn a_node_cut_off_from_the_backplane_rejoins_and_views_are_rebuilt() {
    let mut net = Net::new(3);
    net.open(0, "alice", 1);
    net.open(1, "bob", 2);
    // Node a loses the backplane: it keeps its own client, the others drop it.
    let now = net.now;
    net.nodes[0].offline = true;
    net.nodes[0].cluster.handle_backplane(now, false);
    net.advance(ms(5000));
    assert_eq!(net.holder(1, "alice"), None);
    assert_eq!(net.holder(0, "alice"), Some(("a".to_owned(), ConnId(1))));
    assert_eq!(net.holder(0, "bob"), None, "a expired b too");
    // Back: a announces itself and its clients; everyone's view is whole again.
    net.nodes[0].offline = false;
    let now = net.now;
    net.nodes[0].cluster.handle_backplane(now, true);
    net.pump();
    for viewer in 0..3 {
        assert_eq!(
            net.holder(viewer, "alice"),
            Some(("a".to_owned(), ConnId(1)))
        );
        assert_eq!(net.holder(viewer, "bob"), Some(("b".to_owned(), ConnId(2))));
    }
    let now = net.now;
    net.nodes[2]
        .cluster
        .send_to(now, "alice", None, text("again"));
    net.pump();
    assert_eq!(net.results(2), vec![SendOutcome::Delivered]);
}

#[test]
fn a_node_that_joins_late_learns_every_client() {
    let mut net = Net::new(3);
    net.open(0, "alice", 1);
    net.open(1, "bob", 2);
    // Node c restarts: a fresh machine, announcing itself.
    let now = net.now;
    let wall = WALL + (now - net.start);
    net.nodes[2].cluster = Cluster::new(ClusterConfig::new("c"), now, wall).expect("valid");
    net.nodes[2].cluster.handle_backplane(now, true);
    net.pump();
    assert_eq!(net.holder(2, "alice"), Some(("a".to_owned(), ConnId(1))));
    assert_eq!(net.holder(2, "bob"), Some(("b".to_owned(), ConnId(2))));
    let clients: HashSet<_> = net.nodes[2]
        .cluster
        .clients()
        .map(|(n, node, _)| (n.to_owned(), node.to_owned()))
        .collect();
    assert_eq!(clients.len(), 2);
}

#[test]
fn configs_that_cannot_work_are_refused() {
    let mut c = ClusterConfig::new("");
    assert!(c.validate().is_err());
    c.node = "a".into();
    c.node_ttl = c.heartbeat_interval;
    let e = c.validate().expect_err("ttl not above the heartbeat");
    assert!(e.to_string().contains("node_ttl"), "{e}");
}

#[test]
fn a_client_that_left_while_its_node_was_cut_off_is_gone_once_it_is_back() {
    let mut net = Net::new(2);
    net.open(0, "alice", 1);
    net.open(0, "bob", 2);
    let now = net.now;
    net.nodes[0].offline = true;
    net.nodes[0].cluster.handle_backplane(now, false);
    // Alice leaves while nothing gets out; node b still lists her (a is not expired).
    net.nodes[0].local.remove(&ConnId(1));
    net.nodes[0].cluster.local_close(now, "alice", ConnId(1));
    net.pump();
    assert!(net.holder(1, "alice").is_some());
    net.nodes[0].offline = false;
    let now = net.now;
    net.nodes[0].cluster.handle_backplane(now, true);
    net.pump();
    assert_eq!(
        net.holder(1, "alice"),
        None,
        "a's presence no longer lists her"
    );
    assert_eq!(net.holder(1, "bob"), Some(("a".to_owned(), ConnId(2))));
}

#[test]
fn a_lost_release_is_repaired_by_the_next_heartbeat() {
    let mut net = Net::new(2);
    net.open(0, "alice", 1);
    // Node b misses alice's release (pub/sub lost it; b never noticed an outage).
    net.nodes[1].offline = true;
    let now = net.now;
    net.nodes[0].local.remove(&ConnId(1));
    net.nodes[0].cluster.local_close(now, "alice", ConnId(1));
    net.pump();
    net.nodes[1].offline = false;
    assert!(net.holder(1, "alice").is_some(), "b still lists her");
    // a's next heartbeat carries the digest of what it holds; b's view differs, so b
    // asks for a's clients and drops her.
    net.advance(ms(1000));
    assert_eq!(net.holder(1, "alice"), None);
}
