//! Heartbeat: when pings go out, what counts as a reply, and what a missed reply does.

mod common;

use common::{config, ms, take_ping, Harness};
use heartline_core::{
    close_code, Action, AppHeartbeat, Disposition, Frame, HeartbeatKind, Initiator, Message,
    Notice, ReplyMatcher,
};

#[test]
fn ping_goes_out_only_after_the_interval_passes_in_silence() {
    let mut h = Harness::new(config());
    let conn = h.open();
    assert_eq!(h.next_deadline(), Some(ms(1000)));
    h.at(ms(999));
    assert!(h.actions().is_empty());
    h.at(ms(1000));
    let actions = h.actions();
    assert_eq!(actions.len(), 1);
    assert!(matches!(actions[0], Action::SendPing { conn: c, .. } if c == conn));
    // Waiting for the reply: the deadline is now the pong timeout.
    assert_eq!(h.next_deadline(), Some(ms(1500)));
}

#[test]
fn inbound_traffic_postpones_the_ping() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.at(ms(800));
    assert_eq!(h.frame(conn, Frame::Text("news")), Disposition::Deliver);
    h.at(ms(1000));
    assert!(
        h.actions().is_empty(),
        "a message 200 ms ago proves the server alive"
    );
    assert_eq!(h.next_deadline(), Some(ms(1800)));
    h.at(ms(1800));
    assert!(take_ping(&h.actions()).is_some());
}

#[test]
fn outbound_traffic_does_not_postpone_the_ping() {
    let mut h = Harness::new(config());
    h.open();
    h.at(ms(900));
    h.client.send(h.now, Message::from("hello")).unwrap();
    h.actions();
    h.at(ms(1000));
    assert!(
        take_ping(&h.actions()).is_some(),
        "sending proves nothing about the peer"
    );
}

#[test]
fn matching_pong_gives_rtt_and_rearms_the_interval() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.at(ms(1000));
    let payload = take_ping(&h.actions()).unwrap();
    h.at(ms(1042));
    assert_eq!(h.frame(conn, Frame::Pong(&payload)), Disposition::Consumed);
    assert_eq!(h.notices(), vec![Notice::Rtt(ms(42))]);
    assert_eq!(h.client.rtt(), Some(ms(42)));
    assert_eq!(h.next_deadline(), Some(ms(2042)));
    h.at(ms(1500));
    assert!(
        h.notices().is_empty(),
        "the reply cancelled the pong deadline"
    );
}

#[test]
fn each_ping_carries_a_new_sequence() {
    let mut h = Harness::new(config());
    let conn = h.open();
    let mut seen = Vec::new();
    for _ in 0..3 {
        h.fire_next();
        let p = take_ping(&h.actions()).unwrap();
        h.frame(conn, Frame::Pong(&p));
        seen.push(p);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
}

#[test]
fn missed_reply_declares_the_peer_dead_and_schedules_a_reconnect() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.at(ms(1000));
    h.actions();
    h.at(ms(1499));
    assert!(h.notices().is_empty());
    h.at(ms(1500));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    assert_eq!(
        h.notices(),
        vec![
            Notice::HeartbeatMissed { conn },
            Notice::Closed {
                conn,
                code: close_code::ABNORMAL,
                reason: "heartbeat timeout".into(),
                by: Initiator::Local,
            },
            Notice::ReconnectScheduled {
                attempt: 1,
                delay: ms(2000)
            },
        ]
    );
    h.at(ms(3500));
    assert!(matches!(
        h.actions()[..],
        [Action::Connect { attempt: 1, .. }]
    ));
}

#[test]
fn a_pong_with_another_payload_is_not_the_reply_when_only_replies_count() {
    let mut c = config();
    c.heartbeat.any_frame_is_alive = false;
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    take_ping(&h.actions()).unwrap();
    h.frame(conn, Frame::Pong(b"unsolicited"));
    h.frame(conn, Frame::Text("chatter"));
    h.at(ms(1500));
    assert!(h.notices().contains(&Notice::HeartbeatMissed { conn }));
}

#[test]
fn with_only_replies_counting_traffic_does_not_postpone_pings() {
    let mut c = config();
    c.heartbeat.any_frame_is_alive = false;
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(900));
    h.frame(conn, Frame::Text("chatter"));
    h.at(ms(1000));
    assert!(take_ping(&h.actions()).is_some());
}

#[test]
fn any_frame_counts_as_a_sign_of_life_by_default() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.at(ms(1000));
    take_ping(&h.actions()).unwrap();
    // The server pings us instead of answering: still alive.
    h.at(ms(1400));
    assert_eq!(h.frame(conn, Frame::Ping(b"srv")), Disposition::Consumed);
    h.at(ms(1500));
    assert!(h.notices().is_empty());
    assert_eq!(h.next_deadline(), Some(ms(2400)));
}

#[test]
fn text_heartbeat_reply_is_consumed_and_measured() {
    let mut c = config();
    c.heartbeat.kind = HeartbeatKind::App(AppHeartbeat::text("ping", "pong"));
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    assert_eq!(h.actions(), vec![Action::SendHeartbeat { conn }]);
    h.at(ms(1010));
    assert_eq!(h.frame(conn, Frame::Text("pong")), Disposition::Consumed);
    assert_eq!(h.frame(conn, Frame::Text("pong!")), Disposition::Deliver);
    assert_eq!(h.notices(), vec![Notice::Rtt(ms(10))]);
}

#[test]
fn echoed_json_heartbeat_is_recognised() {
    let beat = r#"{"ModeCode":"heart_beat","msg":"hb"}"#;
    let mut c = config();
    c.heartbeat.kind = HeartbeatKind::App(AppHeartbeat::echo(Message::from(beat)));
    c.heartbeat.any_frame_is_alive = false;
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    assert_eq!(h.actions(), vec![Action::SendHeartbeat { conn }]);
    assert_eq!(
        h.frame(conn, Frame::Text(r#"{"ModeCode":"message","msg":"hi"}"#)),
        Disposition::Deliver
    );
    assert_eq!(h.frame(conn, Frame::Text(beat)), Disposition::Consumed);
    h.at(ms(1500));
    assert!(!h.notices().contains(&Notice::HeartbeatMissed { conn }));
}

#[test]
fn custom_reply_matcher_decides() {
    let mut c = config();
    c.heartbeat.kind = HeartbeatKind::App(AppHeartbeat {
        message: Message::Binary(vec![1]),
        reply: ReplyMatcher::Custom(std::sync::Arc::new(|f| matches!(f, Frame::Binary([2, ..])))),
    });
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    h.actions();
    assert_eq!(h.frame(conn, Frame::Binary(&[2, 9])), Disposition::Consumed);
    assert_eq!(h.frame(conn, Frame::Binary(&[3])), Disposition::Deliver);
}

#[test]
fn heartbeat_off_arms_no_timer_while_open() {
    let mut c = config();
    c.heartbeat.kind = HeartbeatKind::Off;
    let mut h = Harness::new(c);
    h.open();
    // Only the "stable connection" timer remains.
    assert_eq!(h.next_deadline(), Some(ms(10_000)));
    h.fire_next();
    assert_eq!(h.next_deadline(), None);
    h.at(ms(60_000));
    assert!(h.actions().is_empty());
    assert!(h.notices().is_empty());
}

#[test]
fn an_echo_that_comes_back_as_binary_still_counts() {
    let beat = r#"{"ModeCode":"heart_beat","msg":"hb"}"#;
    let mut c = config();
    c.heartbeat.kind = HeartbeatKind::App(AppHeartbeat::echo(Message::from(beat)));
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    h.actions();
    h.at(ms(1004));
    assert_eq!(
        h.frame(conn, Frame::Binary(beat.as_bytes())),
        Disposition::Consumed
    );
    assert_eq!(h.notices(), vec![Notice::Rtt(ms(4))]);
    assert_eq!(h.frame(conn, Frame::Binary(b"other")), Disposition::Deliver);
}
