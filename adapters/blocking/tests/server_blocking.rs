//! The blocking server over real sockets on 127.0.0.1: eviction of a frozen client,
//! replacement by name, rejection of a bad path, the handshake timeout and graceful
//! shutdown.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::server::*;
use heartline_blocking::server::{Server, ServerConfig, ServerEvent};
use heartline_core::{close_code, ConnId, EvictReason, Message, ServerNotice};

fn start(core: heartline_core::ServerConfig) -> Server {
    let config = ServerConfig {
        core,
        poll_interval: Duration::from_millis(2),
        ..ServerConfig::default()
    };
    Server::bind("127.0.0.1:0", config).expect("bind")
}

fn wait(server: &Server, what: &str, wanted: impl FnMut(&ServerEvent) -> bool) -> ServerEvent {
    wait_for(|left| server.recv_timeout(left).ok(), what, wanted)
}

fn opened(server: &Server, name: &str) -> ConnId {
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

#[test]
fn a_frozen_client_is_evicted_and_leaves_the_registry() {
    let server = start(core_config(20, 100));
    let client = connect(server.local_addr(), "/ws/?name=frozen");
    let conn = opened(&server, "frozen");

    wait(
        &server,
        "eviction",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Evicted { conn: c, reason: EvictReason::Idle, .. }) if *c == conn),
    );
    wait(
        &server,
        "Closed",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Closed { conn: c, .. }) if *c == conn),
    );
    assert_eq!(server.handle().lookup("frozen").unwrap(), None);

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

#[test]
fn a_second_client_with_the_same_name_replaces_the_first() {
    let server = start(core_config(5_000, 30_000));
    let addr = server.local_addr();
    let mut first = connect(addr, "/ws/?name=dup");
    let first_conn = opened(&server, "dup");
    let mut second = connect(addr, "/ws/?name=dup");
    let second_conn = opened(&server, "dup");

    assert_eq!(close_code(&mut first), close_code::REPLACED);
    wait(&server, "Replaced", |e| {
        matches!(e, ServerEvent::Notice(ServerNotice::Replaced { old, new, .. })
            if *old == first_conn && *new == second_conn)
    });
    let handle = server.handle();
    assert_eq!(
        handle.lookup("dup").unwrap().map(|c| c.conn),
        Some(second_conn)
    );

    // The name now reaches the second client, both ways.
    second.send("hello".into()).unwrap();
    let event = wait(&server, "a message", |e| {
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
    handle.send("dup", "back").unwrap();
    assert_eq!(next_text(&mut second), "back");
}

#[test]
fn a_bad_path_gets_404_and_registers_nothing() {
    let server = start(core_config(5_000, 30_000));
    let addr = server.local_addr();

    let (status, body) = http_exchange(addr, &upgrade_request("/nope/?name=x"));
    assert_eq!(status, 404);
    assert!(!body.is_empty());
    wait(
        &server,
        "Rejected",
        |e| matches!(e, ServerEvent::Notice(ServerNotice::Rejected { path, status: 404 }) if path == "/nope/"),
    );
    // No name is a 400, not a registration either.
    let (status, _) = http_exchange(addr, &upgrade_request("/ws/"));
    assert_eq!(status, 400);
    assert_eq!(server.handle().clients().unwrap(), vec![]);
}

#[test]
fn a_handshake_that_does_not_finish_is_dropped() {
    let server = start(core_config(5_000, 30_000));
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .write_all(b"GET /ws/?name=slow HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // The server closes the socket (handshake timeout 500 ms) without an answer.
    assert_eq!(frames_until_eof(&mut stream), vec![]);
    assert_eq!(server.handle().clients().unwrap(), vec![]);
}

#[test]
fn shutdown_sends_1001_to_every_client() {
    let server = start(core_config(5_000, 30_000));
    let addr = server.local_addr();
    let mut a = connect(addr, "/ws/?name=a");
    opened(&server, "a");
    let mut b = connect(addr, "/ws/?name=b");
    opened(&server, "b");

    server.handle().shutdown();
    assert_eq!(close_code(&mut a), close_code::GOING_AWAY);
    assert_eq!(close_code(&mut b), close_code::GOING_AWAY);
    wait(&server, "ShutdownComplete", |e| {
        matches!(e, ServerEvent::Notice(ServerNotice::ShutdownComplete))
    });
    // The driver has stopped: the event stream ends and requests fail.
    let end = wait_for(
        |left| match server.recv_timeout(left) {
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some(None),
            Ok(event) => Some(Some(event)),
            Err(_) => None,
        },
        "the end of the events",
        Option::is_none,
    );
    assert_eq!(end, None);
    assert!(server.handle().clients().is_err());
}
