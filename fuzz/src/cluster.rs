//! Several cluster nodes under arbitrary opens, closes, sends, broadcasts, deaths,
//! restarts, backplane cuts and time, on a backplane that delivers every message it
//! is given (through the wire encoding).
//!
//! Checked: a delivery only ever goes to a connection its node holds; every remote
//! send ends in exactly one result; and once every live node is back on the backplane
//! and a TTL has passed, all of them agree on every name's holder, and every holder
//! really holds it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use heartline_core::{
    Channel, Cluster, ClusterAction, ClusterConfig, ClusterNotice, ConnId, Message, Route, Wire,
};

const NODES: usize = 4;
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

/// The steps.
#[derive(Debug, Arbitrary)]
pub struct Input {
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Open(u8, u8),
    Close(u8, u8),
    Send(u8, u8),
    Broadcast(u8),
    Advance(u16),
    Kill(u8),
    Restart(u8),
    Cut(u8, bool),
}

struct Node {
    cluster: Cluster,
    /// Name -> connection, for the clients this node's server holds.
    local: HashMap<String, ConnId>,
    dead: bool,
    offline: bool,
    /// Remote sends this node made, and how many results each got.
    sends: HashMap<u64, usize>,
}

struct Net {
    nodes: Vec<Node>,
    start: Instant,
    now: Instant,
    next_conn: u64,
}

fn node_id(i: usize) -> String {
    format!("n{i}")
}

fn pick(i: u8) -> usize {
    usize::from(i) % NODES
}

impl Net {
    fn fresh(&self, i: usize) -> Node {
        // Every node's wall clock agrees with the others'.
        let wall = SystemTime::UNIX_EPOCH + (self.now - self.start);
        let config = ClusterConfig::new(node_id(i));
        let mut cluster = Cluster::new(config, self.now, wall).expect("valid");
        cluster.handle_backplane(self.now, true);
        Node {
            cluster,
            local: HashMap::new(),
            dead: false,
            offline: false,
            sends: HashMap::new(),
        }
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for i in 0..NODES {
                while let Some(action) = self.nodes[i].cluster.poll_action() {
                    moved = true;
                    self.act(i, action);
                }
                while let Some(notice) = self.nodes[i].cluster.poll_notice() {
                    if let ClusterNotice::SendResult { id, .. } = notice {
                        let count = self.nodes[i].sends.get_mut(&id.0);
                        let count = count.expect("a result for a send never made");
                        *count += 1;
                        assert_eq!(*count, 1, "send {id:?} answered twice");
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the nodes never stop talking");
    }

    fn act(&mut self, i: usize, action: ClusterAction) {
        let now = self.now;
        match action {
            ClusterAction::Publish { channel, wire } => {
                if self.nodes[i].dead || self.nodes[i].offline {
                    return;
                }
                let bytes = wire.encode();
                for j in 0..NODES {
                    let to = match &channel {
                        Channel::All => true,
                        Channel::Node(n) => *n == node_id(j),
                    };
                    if to && !self.nodes[j].dead && !self.nodes[j].offline {
                        let wire = Wire::decode(&bytes).expect("encoded messages decode");
                        self.nodes[j].cluster.handle_wire(now, wire);
                    }
                }
            }
            ClusterAction::Deliver { conn, token, .. } => {
                let node = &mut self.nodes[i];
                let held = node.local.values().any(|c| *c == conn);
                assert!(held, "delivery to {conn}, which node {i} does not hold");
                node.cluster.handle_delivered(now, token, true);
            }
            ClusterAction::DeliverAll { .. } => {}
            ClusterAction::Replace { conn, name } => {
                let node = &mut self.nodes[i];
                assert_eq!(node.local.get(&name), Some(&conn), "replace of a stranger");
                node.local.remove(&name);
                node.cluster.local_close(now, &name, conn);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..10_000 {
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

    fn step(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Open(n, name) => {
                let (i, name) = (pick(n), NAMES[usize::from(name) % NAMES.len()]);
                if self.nodes[i].dead {
                    return;
                }
                self.next_conn += 1;
                let conn = ConnId(self.next_conn);
                let node = &mut self.nodes[i];
                // The node's own server replaces a local holder first.
                if let Some(old) = node.local.insert(name.to_owned(), conn) {
                    node.cluster.local_close(now, name, old);
                }
                node.cluster.local_open(now, name, conn);
            }
            Op::Close(n, name) => {
                let (i, name) = (pick(n), NAMES[usize::from(name) % NAMES.len()]);
                let node = &mut self.nodes[i];
                if let Some(conn) = node.local.remove(name) {
                    node.cluster.local_close(now, name, conn);
                }
            }
            Op::Send(n, name) => {
                let i = pick(n);
                if self.nodes[i].dead {
                    return;
                }
                let name = NAMES[usize::from(name) % NAMES.len()];
                let node = &mut self.nodes[i];
                match node
                    .cluster
                    .send_to(now, name, None, Message::Text("m".into()))
                {
                    Route::Remote(id) => {
                        node.sends.insert(id.0, 0);
                    }
                    Route::Local(conn) => {
                        assert_eq!(
                            node.local.get(name),
                            Some(&conn),
                            "local route to a stranger"
                        );
                    }
                    Route::NoSuchClient => {}
                }
            }
            Op::Broadcast(n) => {
                let i = pick(n);
                if !self.nodes[i].dead {
                    let msg = Message::Text("all".into());
                    self.nodes[i].cluster.broadcast(now, None, msg);
                }
            }
            Op::Advance(ms) => self.advance(Duration::from_millis(u64::from(ms % 8000))),
            Op::Kill(n) => {
                let i = pick(n);
                let remaining = self.nodes.iter().filter(|n| !n.dead).count();
                if remaining > 1 {
                    self.nodes[i].dead = true;
                }
            }
            Op::Restart(n) => {
                let i = pick(n);
                // A new process: its clients are gone with the old one.
                self.nodes[i] = self.fresh(i);
            }
            Op::Cut(n, up) => {
                let i = pick(n);
                let node = &mut self.nodes[i];
                node.offline = !up;
                node.cluster.handle_backplane(now, up);
            }
        }
        self.pump();
    }

    /// Every live node back on the backplane, then long enough for every TTL and send
    /// timeout: the views agree.
    fn settle(&mut self) {
        let now = self.now;
        for node in self.nodes.iter_mut().filter(|n| !n.dead && n.offline) {
            node.offline = false;
            node.cluster.handle_backplane(now, true);
        }
        self.pump();
        self.advance(Duration::from_secs(10));
        let live: Vec<usize> = (0..NODES).filter(|i| !self.nodes[*i].dead).collect();
        for name in NAMES {
            let views: HashSet<Option<(String, ConnId)>> = live
                .iter()
                .map(|i| {
                    let c = &self.nodes[*i].cluster;
                    c.lookup(name).map(|(n, conn)| (n.to_owned(), conn))
                })
                .collect();
            assert!(views.len() == 1, "{name}: the nodes disagree: {}", {
                let per_node: Vec<String> = live
                    .iter()
                    .map(|i| {
                        let n = &self.nodes[*i];
                        format!(
                            "node {i}: view {:?} local {:?} nodes {:?}",
                            n.cluster.lookup(name),
                            n.local.get(name),
                            n.cluster.nodes().collect::<Vec<_>>()
                        )
                    })
                    .collect();
                per_node.join("; ")
            });
            let holders: Vec<usize> = live
                .iter()
                .copied()
                .filter(|i| self.nodes[*i].local.contains_key(name))
                .collect();
            match views.into_iter().next().flatten() {
                Some((node, conn)) => {
                    let i = live.iter().copied().find(|i| node_id(*i) == node);
                    let i = i.expect("a live holder");
                    assert_eq!(
                        self.nodes[i].local.get(name),
                        Some(&conn),
                        "{name} not held"
                    );
                    assert_eq!(holders, vec![i], "{name} held on more than one node");
                }
                None => assert!(holders.is_empty(), "{name} held but unknown: {holders:?}"),
            }
        }
        for node in self.nodes.iter().filter(|n| !n.dead) {
            for (id, results) in &node.sends {
                assert_eq!(*results, 1, "send {id} got {results} results");
            }
        }
    }
}

/// Runs one input.
pub fn run(input: Input) {
    let now = Instant::now();
    let mut net = Net {
        nodes: Vec::new(),
        start: now,
        now,
        next_conn: 0,
    };
    for i in 0..NODES {
        let node = net.fresh(i);
        net.nodes.push(node);
    }
    net.pump();
    for op in input.ops.iter().take(200) {
        net.step(op);
    }
    net.settle();
}
