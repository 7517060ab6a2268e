//! Outbound memory per client is bounded: bytes handed to the driver and not yet
//! reported written are counted, and a client that would pass the bound is evicted
//! with the backlog close code instead of growing the server's memory.

mod common;

use common::server::{config, Harness};
use heartline_core::{
    close_code, EvictReason, Initiator, Message, ServerAction, ServerConfig, ServerNotice,
    ServerSendErrorKind,
};

fn small_backlog() -> ServerConfig {
    let mut built = config();
    built.max_backlog_bytes = 1000;
    built
}

fn msg(len: usize) -> Message {
    Message::Binary(vec![7; len])
}

#[test]
fn a_client_that_does_not_read_is_evicted_at_the_bound() {
    let mut h = Harness::new(small_backlog());
    let slow = h.open("slow");
    h.notices();
    for _ in 0..3 {
        h.server.send(h.now, slow, msg(300)).unwrap();
    }
    assert_eq!(h.server.backlog(slow), Some(900));
    // 900 + 300 > 1000: evicted, the message comes back.
    let err = h.server.send(h.now, slow, msg(300)).unwrap_err();
    assert_eq!(err.kind, ServerSendErrorKind::Evicted);
    assert_eq!(err.message, msg(300));
    // The queued sends are dropped with the connection; the driver gets the close.
    assert_eq!(
        h.actions(),
        vec![ServerAction::Evict {
            conn: slow,
            reason: EvictReason::Backlog
        }]
    );
    assert_eq!(
        h.notices(),
        vec![ServerNotice::Closed {
            conn: slow,
            name: Some("slow".into()),
            code: close_code::BACKLOG,
            reason: "too far behind".into(),
            by: Initiator::Local,
            evicted: Some(EvictReason::Backlog),
        }]
    );
    assert_eq!(h.server.lookup("slow"), None);
}

#[test]
fn written_bytes_make_room() {
    let mut h = Harness::new(small_backlog());
    let conn = h.open("reader");
    for _ in 0..100 {
        h.server.send(h.now, conn, msg(600)).unwrap();
        let actions = h.actions();
        assert_eq!(actions.len(), 1);
        h.server.handle_written(conn, 600);
    }
    assert_eq!(h.server.backlog(conn), Some(0));
    assert!(h.server.is_open(conn));
}

#[test]
fn a_message_larger_than_the_bound_is_refused_without_evicting() {
    let mut h = Harness::new(small_backlog());
    let conn = h.open("a");
    let err = h.server.send(h.now, conn, msg(1001)).unwrap_err();
    assert_eq!(err.kind, ServerSendErrorKind::TooLarge);
    assert!(h.server.is_open(conn));
    assert!(h.actions().is_empty());
    assert_eq!(h.server.broadcast(h.now, msg(1001)), 0);
    assert!(h.server.is_open(conn));
}

#[test]
fn broadcast_reaches_everyone_and_evicts_only_the_slow() {
    let mut h = Harness::new(small_backlog());
    let fast = h.open("fast");
    let slow = h.open("slow");
    let sender = h.open("sender");
    h.server.send(h.now, slow, msg(900)).unwrap();
    h.actions();

    assert_eq!(h.server.broadcast_except(h.now, msg(200), Some(sender)), 1);
    let actions = h.actions();
    assert_eq!(
        actions,
        vec![
            ServerAction::Send {
                conn: fast,
                message: msg(200),
            },
            ServerAction::Evict {
                conn: slow,
                reason: EvictReason::Backlog
            },
        ]
    );
    assert!(h.server.is_open(fast) && h.server.is_open(sender));
    assert_eq!(h.server.broadcast(h.now, msg(10)), 2);
}

#[test]
fn sends_to_unknown_or_closing_connections_fail() {
    let mut h = Harness::new(small_backlog());
    let conn = h.open("a");
    let err = h.server.send_to(h.now, "nobody", msg(1)).unwrap_err();
    assert_eq!(err.kind, ServerSendErrorKind::UnknownName);
    h.server.close(h.now, conn, 1000, "bye").unwrap();
    let err = h.server.send(h.now, conn, msg(1)).unwrap_err();
    assert_eq!(err.kind, ServerSendErrorKind::NotOpen);
    let err = h.server.send_to(h.now, "a", msg(1)).unwrap_err();
    assert_eq!(err.kind, ServerSendErrorKind::UnknownName);
}
