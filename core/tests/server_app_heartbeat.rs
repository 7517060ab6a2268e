//! Clients that cannot send Ping frames (browsers) heartbeat with messages: the server
//! answers `"ping"` with `"pong"` (seed 001) and echoes a JSON `heart_beat` (seed 002),
//! consumes them unless told otherwise, and counts them as signs of life.

mod common;

use common::server::{config, ms, Harness};
use heartline_core::{
    Disposition, Frame, HeartbeatAnswer, HeartbeatMatch, HeartbeatRule, Message, ServerAction,
};

const SEED_002_BEAT: &str = r#"{"ModeCode":"heart_beat","msg":"2021-03-09T12:00:00.000Z"}"#;

#[test]
fn seed_heartbeats_are_answered_and_consumed() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");

    assert_eq!(h.text(conn, "ping"), Disposition::Consumed);
    assert_eq!(h.text(conn, SEED_002_BEAT), Disposition::Consumed);
    assert_eq!(
        h.actions(),
        vec![
            ServerAction::Reply {
                conn,
                message: Message::from("pong"),
            },
            ServerAction::Reply {
                conn,
                message: Message::from(SEED_002_BEAT),
            },
        ]
    );
    // Replies count against the backlog like any outbound payload.
    assert_eq!(h.server.backlog(conn), Some(4 + SEED_002_BEAT.len()));
}

#[test]
fn other_messages_are_delivered_untouched() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    for text in [
        r#"{"ModeCode":"message","msg":"hello"}"#,
        r#"{"msg":{"ModeCode":"heart_beat"}}"#,
        "pingpong",
        "PING",
    ] {
        assert_eq!(h.text(conn, text), Disposition::Deliver, "{text}");
    }
    assert_eq!(h.frame(conn, Frame::Binary(b"ping")), Disposition::Deliver);
    assert!(h.actions().is_empty());
}

#[test]
fn application_heartbeats_are_signs_of_life() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    // A browser beating every 900 ms is never pinged by the server.
    for _ in 0..20 {
        h.run_until(h.elapsed() + ms(900));
        h.text(conn, SEED_002_BEAT);
        let actions = h.actions();
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, ServerAction::Reply { .. })),
            "{actions:?}"
        );
        h.server.handle_written(conn, SEED_002_BEAT.len());
    }
    assert!(h.server.is_open(conn));
    assert_eq!(h.server.backlog(conn), Some(0));
}

#[test]
fn rules_are_configurable_and_can_be_off() {
    let mut off = config();
    off.app_heartbeats.clear();
    let mut h = Harness::new(off);
    let conn = h.open("alice");
    assert_eq!(h.text(conn, "ping"), Disposition::Deliver);
    assert!(h.actions().is_empty());

    let mut custom = config();
    custom.app_heartbeats = vec![
        // Seed 003's heartCheck sends "666" and only needs something back.
        HeartbeatRule::echo_text("666"),
        // Seen, answered, and still handed to the application.
        HeartbeatRule {
            deliver: true,
            ..HeartbeatRule::text("ping", "pong")
        },
        // A sign of life with no answer.
        HeartbeatRule {
            when: HeartbeatMatch::Custom(std::sync::Arc::new(|f: &Frame<'_>| {
                matches!(f, Frame::Binary([0]))
            })),
            answer: HeartbeatAnswer::Nothing,
            deliver: false,
        },
    ];
    let mut h = Harness::new(custom);
    let conn = h.open("alice");
    assert_eq!(h.text(conn, "666"), Disposition::Consumed);
    assert_eq!(h.text(conn, "ping"), Disposition::Deliver);
    assert_eq!(h.frame(conn, Frame::Binary(&[0])), Disposition::Consumed);
    assert_eq!(h.text(conn, SEED_002_BEAT), Disposition::Deliver);
    assert_eq!(
        h.actions(),
        vec![
            ServerAction::Reply {
                conn,
                message: Message::from("666"),
            },
            ServerAction::Reply {
                conn,
                message: Message::from("pong"),
            },
        ]
    );
}
