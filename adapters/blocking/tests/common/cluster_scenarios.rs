//! The cluster scenarios, written once for every runtime: three servers in this
//! process joined by the in-memory backplane, clients as raw blocking sockets. Each
//! test file expands [`cluster_tests!`] with a function that starts its server from a
//! whole `ServerConfig`.

use std::time::{Duration, Instant};

use heartline_core::{close_code, ClusterConfig, ClusterNotice, SendOutcome};
use heartline_tungstenite::cluster::{ClusterSetup, Memory};
use heartline_tungstenite::hub::{Sent, ServerConfig, ServerError, ServerEvent};

use super::server::*;
use super::server_scenarios::TestServer;

/// The nodes' ids.
pub const NODES: [&str; 3] = ["a", "b", "c"];

/// Node `node` on `memory`, with short timings: heartbeats every 100 ms, dead after
/// 400 ms, sends answered within 1 s.
pub fn node_config(memory: &Memory, node: &str) -> ServerConfig {
    let mut cluster = ClusterConfig::new(node);
    cluster.heartbeat_interval = Duration::from_millis(100);
    cluster.node_ttl = Duration::from_millis(400);
    cluster.send_timeout = Duration::from_secs(1);
    {
        let mut built = ServerConfig::default();
        built.core = quiet();
        built.cluster = Some(ClusterSetup::new(cluster, memory.clone()));
        built
    }
}

/// Expands to one `#[test]` per cluster scenario, starting servers with `$start`
/// (a `fn(ServerConfig) -> impl TestServer`).
#[macro_export]
macro_rules! cluster_tests {
    ($start:expr) => {
        #[test]
        fn send_to_name_reaches_the_client_on_another_node() {
            common::cluster_scenarios::send_reaches_another_node($start);
        }

        #[test]
        fn a_name_taken_on_another_node_closes_the_old_client_with_4409() {
            common::cluster_scenarios::replacement_across_nodes($start);
        }

        #[test]
        fn a_broadcast_reaches_every_node_once() {
            common::cluster_scenarios::broadcast_reaches_every_node($start);
        }

        #[test]
        fn a_node_cut_off_serves_its_own_and_is_back_once_reconnected() {
            common::cluster_scenarios::cut_off_and_back($start);
        }
    };
}

fn start_nodes<S: TestServer>(start: impl Fn(ServerConfig) -> S) -> (Memory, Vec<S>) {
    let memory = Memory::new();
    let nodes = NODES
        .iter()
        .map(|n| start(node_config(&memory, n)))
        .collect();
    (memory, nodes)
}

/// Waits until `holds` is true, looking every 10 ms; panics after [`PATIENCE`].
fn until(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !holds() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where `server` thinks `name` is.
fn holder(server: &impl TestServer, name: &str) -> Option<String> {
    let clients = server.cluster_clients().expect("a node of a cluster");
    clients.into_iter().find(|c| c.name == name).map(|c| c.node)
}

fn wait(server: &impl TestServer, what: &str, wanted: impl FnMut(&ServerEvent) -> bool) {
    wait_for(|left| server.next_event(left), what, wanted);
}

/// A send from one node reaches the client on another, and the sender learns it was
/// delivered; a name nobody holds is refused at once.
pub fn send_reaches_another_node<S: TestServer>(start: impl Fn(ServerConfig) -> S) {
    let (_memory, nodes) = start_nodes(start);
    let mut bob = connect(nodes[2].addr(), "/ws/?name=bob");
    until("a sees bob on c", || {
        holder(&nodes[0], "bob").as_deref() == Some("c")
    });

    let sent = nodes[0].send("bob", "hi from a".into());
    let Ok(Sent::Away(id)) = sent else {
        panic!("bob is on another node: {sent:?}");
    };
    assert_eq!(next_text(&mut bob), "hi from a");
    wait(&nodes[0], "the answer", |e| {
        *e == ServerEvent::Cluster(ClusterNotice::SendResult {
            id,
            outcome: SendOutcome::Delivered,
        })
    });
    assert_eq!(
        nodes[0].send("nobody", "x".into()),
        Err(ServerError::NotConnected)
    );
    // On its own node, bob is sent to directly.
    assert_eq!(nodes[2].send("bob", "local".into()), Ok(Sent::Here));
    assert_eq!(next_text(&mut bob), "local");
}

/// A client that takes a name held on another node replaces it there: the old one
/// gets Close 4409 and every node agrees on the new holder.
pub fn replacement_across_nodes<S: TestServer>(start: impl Fn(ServerConfig) -> S) {
    let (_memory, nodes) = start_nodes(start);
    let mut first = connect(nodes[0].addr(), "/ws/?name=alice");
    until("b sees alice on a", || {
        holder(&nodes[1], "alice").as_deref() == Some("a")
    });
    let mut second = connect(nodes[1].addr(), "/ws/?name=alice");
    assert_eq!(close_code(&mut first), close_code::REPLACED);
    for node in &nodes {
        until("every node sees alice on b", || {
            holder(node, "alice").as_deref() == Some("b")
        });
    }
    let sent = nodes[2].send("alice", "to the new one".into());
    assert!(matches!(sent, Ok(Sent::Away(_))), "{sent:?}");
    assert_eq!(next_text(&mut second), "to the new one");
}

/// A broadcast on one node reaches the clients of every node, each once.
pub fn broadcast_reaches_every_node<S: TestServer>(start: impl Fn(ServerConfig) -> S) {
    let (_memory, nodes) = start_nodes(start);
    let mut clients: Vec<RawClient> = NODES
        .iter()
        .zip(&nodes)
        .map(|(n, node)| connect(node.addr(), &format!("/ws/?name=on-{n}")))
        .collect();
    for node in &nodes {
        for n in NODES {
            let name = format!("on-{n}");
            until("every node sees every client", || {
                holder(node, &name).is_some()
            });
        }
    }
    assert_eq!(nodes[0].broadcast("to all".into()), Ok(1));
    for (client, n) in clients.iter_mut().zip(NODES) {
        assert_eq!(next_text(client), "to all", "the client on {n}");
        // What comes next is the next message, not the broadcast again.
        nodes[0]
            .send(&format!("on-{n}"), "after".into())
            .expect("sent");
        assert_eq!(next_text(client), "after", "the client on {n}");
    }
}

/// A node cut off from the backplane keeps serving its own clients; the others drop
/// its names after the TTL, and have them back once it is reconnected.
pub fn cut_off_and_back<S: TestServer>(start: impl Fn(ServerConfig) -> S) {
    let (memory, nodes) = start_nodes(start);
    let mut bob = connect(nodes[2].addr(), "/ws/?name=bob");
    until("a sees bob on c", || holder(&nodes[0], "bob").is_some());

    memory.set_reachable("c", false);
    wait(&nodes[2], "the backplane down", |e| {
        *e == ServerEvent::Cluster(ClusterNotice::Backplane { up: false })
    });
    until("a drops bob", || holder(&nodes[0], "bob").is_none());
    assert_eq!(
        nodes[0].send("bob", "x".into()),
        Err(ServerError::NotConnected)
    );
    assert_eq!(nodes[2].send("bob", "still here".into()), Ok(Sent::Here));
    assert_eq!(next_text(&mut bob), "still here");

    memory.set_reachable("c", true);
    until("a sees bob again", || {
        holder(&nodes[0], "bob").as_deref() == Some("c")
    });
    let sent = nodes[0].send("bob", "welcome back".into());
    assert!(matches!(sent, Ok(Sent::Away(_))), "{sent:?}");
    assert_eq!(next_text(&mut bob), "welcome back");
}
