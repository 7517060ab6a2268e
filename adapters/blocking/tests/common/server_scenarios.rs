//! The server scenarios, written once for every runtime: each test file implements
//! [`TestServer`] for its server and expands [`server_tests!`]. Clients are raw
//! blocking sockets on the test thread; the server runs on its own threads or tasks.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// The types both servers share (re-exported by heartline-blocking and heartline-async).
use heartline_core::{close_code, ConnId, EvictReason, Message, ServerNotice};
use heartline_tungstenite::hub::{ClientInfo, ClusterClient, Sent, ServerError, ServerEvent};

use super::server::*;

/// What the scenarios need from a running server, whatever its runtime.
pub trait TestServer {
    /// The address it listens on.
    fn addr(&self) -> SocketAddr;
    /// The next event, waiting at most `wait`.
    fn next_event(&self, wait: Duration) -> Option<ServerEvent>;
    /// The registry.
    fn clients(&self) -> Result<Vec<ClientInfo>, ServerError>;
    /// Sends to a name.
    fn send(&self, name: &str, message: Message) -> Result<Sent, ServerError>;
    /// Broadcasts; how many on this server took it.
    fn broadcast(&self, message: Message) -> Result<usize, ServerError>;
    /// The cluster's registry (`None` without a cluster).
    fn cluster_clients(&self) -> Option<Vec<ClusterClient>>;
    /// Starts a graceful shutdown.
    fn shutdown(&self);
    /// Waits up to `wait` for the server to stop; whether it did.
    fn wait_stopped(&self, wait: Duration) -> bool;
}

/// Expands to one `#[test]` per scenario, each starting its server with `$start`
/// (a `fn(heartline_core::ServerConfig) -> impl TestServer`).
#[macro_export]
macro_rules! server_tests {
    ($start:expr) => {
        #[test]
        fn a_frozen_client_is_evicted_and_leaves_the_registry() {
            common::server_scenarios::frozen_client_is_evicted(&$start(
                common::server::core_config(20, 100),
            ));
        }

        #[test]
        fn a_second_client_with_the_same_name_replaces_the_first() {
            common::server_scenarios::same_name_replaces(&$start(common::server::quiet()));
        }

        #[test]
        fn a_bad_path_gets_404_and_registers_nothing() {
            common::server_scenarios::bad_path_gets_404(&$start(common::server::quiet()));
        }

        #[test]
        fn a_handshake_that_does_not_finish_is_dropped() {
            common::server_scenarios::slow_handshake_is_dropped(&$start(common::server::quiet()));
        }

        #[test]
        fn a_client_that_does_not_read_its_messages_is_dropped() {
            // A backlog bound above what kernel buffers hold, so the connection's
            // writer is stuck on the full socket when the eviction comes.
            common::server_scenarios::slow_reader_is_dropped(&$start({
                let mut built = common::server::quiet();
                built.max_backlog_bytes = 64 << 20;
                built
            }));
        }

        #[test]
        fn a_client_that_sends_but_never_reads_is_cut_off_by_the_write_timeout() {
            common::server_scenarios::sender_that_never_reads_is_cut_off(&$start({
                let mut built = common::server::core_config(100, 1_500);
                built.max_backlog_bytes = 64 << 20;
                built
            }));
        }

        #[test]
        fn a_burst_of_messages_arrives_whole_and_in_order() {
            common::server_scenarios::burst_arrives_in_order(&$start(common::server::quiet()));
        }

        #[test]
        fn a_message_larger_than_the_socket_takes_arrives_whole() {
            common::server_scenarios::large_message_arrives_whole(&$start({
                let mut built = common::server::quiet();
                built.max_backlog_bytes = 64 << 20;
                built
            }));
        }

        #[test]
        fn frames_sent_with_the_request_head_are_read() {
            common::server_scenarios::frames_with_the_head_are_read(&$start(
                common::server::quiet(),
            ));
        }

        #[test]
        fn clients_that_come_and_go_keep_their_own_messages() {
            common::server_scenarios::clients_come_and_go(&$start(common::server::quiet()));
        }

        #[test]
        fn shutdown_sends_1001_to_every_client() {
            common::server_scenarios::shutdown_sends_1001(&$start(common::server::quiet()));
        }
    };
}

fn wait(
    server: &impl TestServer,
    what: &str,
    wanted: impl FnMut(&ServerEvent) -> bool,
) -> ServerEvent {
    wait_for(|left| server.next_event(left), what, wanted)
}

fn opened(server: &impl TestServer, name: &str) -> ConnId {
    let event = wait(
        server,
        "Opened",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Opened { name: Some(n), .. }) if &**n == name),
    );
    match event {
        ServerEvent::Notice(ServerNotice::Opened { conn, .. }) => conn,
        _ => unreachable!(),
    }
}

fn registered(server: &impl TestServer, name: &str) -> Option<ConnId> {
    let clients = server.clients().expect("the server runs");
    clients.iter().find(|c| c.name == name).map(|c| c.conn)
}

/// A client that connects and then never reads (so never answers a ping) is evicted
/// with 4408 and leaves the registry.
pub fn frozen_client_is_evicted(server: &impl TestServer) {
    let client = connect(server.addr(), "/ws/?name=frozen");
    let conn = opened(server, "frozen");

    wait(
        server,
        "Closed by an idle eviction",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Closed { conn: c, evicted: Some(EvictReason::Idle), .. }) if *c == conn),
    );
    assert_eq!(registered(server, "frozen"), None);

    // What the frozen client was sent: pings it never answered, then the eviction.
    let frames = frames_until_eof(&mut client.into_inner());
    assert!(
        frames.iter().any(|(op, _)| *op == 0x9),
        "no ping in {frames:?}"
    );
    let (op, payload) = frames.last().expect("frames");
    assert_eq!(*op, 0x8, "last frame is not a Close: {frames:?}");
    assert_eq!(close_payload_code(payload), Some(close_code::IDLE_TIMEOUT));
}

/// A second client with the same name replaces the first, which gets 4409; the name
/// then reaches the second client, both ways.
pub fn same_name_replaces(server: &impl TestServer) {
    let mut first = connect(server.addr(), "/ws/?name=dup");
    let first_conn = opened(server, "dup");
    let mut second = connect(server.addr(), "/ws/?name=dup");
    let second_conn = opened(server, "dup");

    assert_eq!(close_code(&mut first), close_code::REPLACED);
    wait(server, "Replaced", |e| {
        matches!(e, ServerEvent::Notice(ServerNotice::Replaced { old, new, .. })
            if *old == first_conn && *new == second_conn)
    });
    assert_eq!(registered(server, "dup"), Some(second_conn));

    second.send("hello".into()).unwrap();
    let event = wait(server, "a message", |e| {
        matches!(e, ServerEvent::Message { .. })
    });
    assert_eq!(
        event,
        ServerEvent::Message {
            conn: second_conn,
            name: Some("dup".into()),
            message: Message::Text("hello".into()),
        }
    );
    server.send("dup", "back".into()).unwrap();
    assert_eq!(next_text(&mut second), "back");
}

/// An upgrade to a path the server does not serve gets 404, one without a name 400,
/// and neither registers anything.
pub fn bad_path_gets_404(server: &impl TestServer) {
    let (status, body) = http_exchange(server.addr(), &upgrade_request("/nope/?name=x"));
    assert_eq!(status, 404);
    assert!(!body.is_empty());
    wait(
        server,
        "Rejected",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Rejected { path, status: 404 }) if path == "/nope/"),
    );
    let (status, _) = http_exchange(server.addr(), &upgrade_request("/ws/"));
    assert_eq!(status, 400);
    assert_eq!(server.clients().unwrap(), vec![]);
}

/// A request head that never completes is dropped at the handshake timeout, unanswered.
pub fn slow_handshake_is_dropped(server: &impl TestServer) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"GET /ws/?name=slow HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(frames_until_eof(&mut stream), vec![]);
    assert_eq!(server.clients().unwrap(), vec![]);
}

/// A client that takes no data while the server keeps sending is dropped instead of
/// making the server hold its messages without limit: sends start failing, the
/// connection closes and leaves the registry.
pub fn slow_reader_is_dropped(server: &impl TestServer) {
    let client = connect(server.addr(), "/ws/?name=slow");
    let conn = opened(server, "slow");
    let chunk = "x".repeat(60 * 1024);
    // Kernel buffers take a few MB before writes stall; then the backlog bound is
    // passed. Bounded: 2,000 sends are 120 MB.
    let refused = (0..2_000).find_map(|_| server.send("slow", chunk.as_str().into()).err());
    assert!(refused.is_some(), "every send was accepted");
    wait(
        server,
        "Closed by an eviction",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Closed { conn: c, evicted: Some(EvictReason::Backlog | EvictReason::WriteStall), .. }) if *c == conn),
    );
    assert_eq!(registered(server, "slow"), None);
    // The server let go of the socket although the client still has not read: it
    // answers the client's next frames with a reset.
    assert!(
        pings_until_reset(&mut client.into_inner()),
        "the server still holds the socket"
    );
}

/// A client that keeps sending (so it never looks idle) but never reads is cut off
/// once its socket has taken nothing for the write timeout, and the event says so.
pub fn sender_that_never_reads_is_cut_off(server: &impl TestServer) {
    const PING: [u8; 6] = [0x89, 0x80, 1, 2, 3, 4];
    let mut client = connect(server.addr(), "/ws/?name=deaf");
    let conn = opened(server, "deaf");
    let chunk = "x".repeat(60 * 1024);
    // Paced, so that the backlog bound (far above what the kernel buffers hold) is not
    // reached before the stall runs out. Bounded: 5,000 rounds.
    let refused = (0..5_000).find_map(|i| {
        if i % 10 == 0 {
            // A sign of life; the socket's own buffer takes it, as the server reads.
            let _ = client.get_mut().write_all(&PING);
        }
        std::thread::sleep(Duration::from_millis(1));
        server.send("deaf", chunk.as_str().into()).err()
    });
    assert_eq!(
        refused,
        Some(ServerError::NotConnected),
        "the client was never cut off"
    );
    wait(
        server,
        "Closed by a write stall",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Closed { conn: c, evicted: Some(EvictReason::WriteStall), .. }) if *c == conn),
    );
    assert_eq!(registered(server, "deaf"), None);
}

/// Shutdown sends 1001 to every client, and the server then stops.
pub fn shutdown_sends_1001(server: &impl TestServer) {
    let mut a = connect(server.addr(), "/ws/?name=a");
    opened(server, "a");
    let mut b = connect(server.addr(), "/ws/?name=b");
    opened(server, "b");

    server.shutdown();
    assert_eq!(close_code(&mut a), close_code::GOING_AWAY);
    assert_eq!(close_code(&mut b), close_code::GOING_AWAY);
    wait(server, "ShutdownComplete", |e| {
        matches!(e, ServerEvent::Notice(ServerNotice::ShutdownComplete))
    });
    assert!(server.wait_stopped(PATIENCE), "the server did not stop");
    assert_eq!(server.clients(), Err(ServerError::Stopped));
}

/// The messages a client sends in one burst all reach the application, in order: the
/// server keeps reading a busy connection until it has taken everything.
pub fn burst_arrives_in_order(server: &impl TestServer) {
    const COUNT: usize = 500;
    let mut client = connect(server.addr(), "/ws/?name=burst");
    let conn = opened(server, "burst");
    for i in 0..COUNT {
        client
            .write(format!("m{i}").into())
            .expect("buffer a message");
    }
    client.flush().expect("send the burst");
    for i in 0..COUNT {
        let event = wait(server, "a message", |e| {
            matches!(e, ServerEvent::Message { .. })
        });
        assert_eq!(
            event,
            ServerEvent::Message {
                conn,
                name: Some("burst".into()),
                message: Message::Text(format!("m{i}")),
            }
        );
    }
}

/// A message far larger than the kernel's socket buffers goes out whole once the
/// client reads, and the connection keeps working afterwards.
pub fn large_message_arrives_whole(server: &impl TestServer) {
    const LEN: usize = 16 << 20;
    let mut client = connect(server.addr(), "/ws/?name=big");
    opened(server, "big");
    let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    server
        .send("big", Message::Binary(payload.clone()))
        .expect("the backlog bound takes it");
    server
        .send("big", "after".into())
        .expect("a message behind the large one");
    let deadline = std::time::Instant::now() + PATIENCE;
    let received = loop {
        assert!(std::time::Instant::now() < deadline, "no binary message");
        match client.read() {
            Ok(tungstenite::Message::Binary(data)) => break data,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection failed while reading: {e}"),
        }
    };
    assert_eq!(received.len(), LEN);
    assert!(
        received[..] == payload[..],
        "the payload changed on the way"
    );
    assert_eq!(next_text(&mut client), "after");
}

/// A client may send frames right behind its request head, before the 101 arrives:
/// they are read, not lost.
pub fn frames_with_the_head_are_read(server: &impl TestServer) {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    let mut bytes = upgrade_request("/ws/?name=eager").into_bytes();
    // A masked text frame "early" (client frames are masked).
    let mask = [7u8, 1, 9, 3];
    bytes.extend_from_slice(&[0x81, 0x80 | 5]);
    bytes.extend_from_slice(&mask);
    bytes.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&bytes).expect("write head and frame");
    let conn = opened(server, "eager");
    let event = wait(server, "a message", |e| {
        matches!(e, ServerEvent::Message { .. })
    });
    assert_eq!(
        event,
        ServerEvent::Message {
            conn,
            name: Some("eager".into()),
            message: Message::Text("early".into()),
        }
    );
}

/// Clients connect, half of them leave, new ones take their place: every name still
/// reaches its own client, and the registry holds exactly the live ones.
pub fn clients_come_and_go(server: &impl TestServer) {
    const COUNT: usize = 40;
    let mut clients: Vec<(String, RawClient)> = (0..COUNT)
        .map(|i| {
            let name = format!("first{i}");
            let client = connect(server.addr(), &format!("/ws/?name={name}"));
            opened(server, &name);
            (name, client)
        })
        .collect();
    // Every other client leaves (its socket closes without a Close frame).
    let mut left = Vec::new();
    let mut kept = Vec::new();
    for (i, client) in clients.drain(..).enumerate() {
        if i % 2 == 0 {
            left.push(client);
        } else {
            kept.push(client);
        }
    }
    let gone = left.len();
    drop(left);
    for _ in 0..gone {
        wait(server, "Closed", |e| {
            matches!(e, ServerEvent::Notice(ServerNotice::Closed { .. }))
        });
    }
    for i in 0..gone {
        let name = format!("second{i}");
        let client = connect(server.addr(), &format!("/ws/?name={name}"));
        opened(server, &name);
        kept.push((name, client));
    }
    let mut names: Vec<String> = server
        .clients()
        .expect("the server runs")
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    let mut expected: Vec<String> = kept.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for (name, _) in &kept {
        server
            .send(name, format!("to {name}").into())
            .expect("a live client");
    }
    for (name, client) in &mut kept {
        assert_eq!(next_text(client), format!("to {name}"));
    }
}
