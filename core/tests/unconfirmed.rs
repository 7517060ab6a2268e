//! Messages a lost connection may have taken with it: those written after the last
//! heartbeat the peer answered are reported, never resent, never counted when the peer
//! proved it read them.

mod common;

use common::{config, ms, take_ping, Harness};
use heartline_core::{Action, ConnId, Event, Frame, Message, Notice};

fn send(h: &mut Harness, text: &str) {
    h.client
        .send(h.now, Message::Text(text.to_owned()))
        .expect("accepted");
}

fn unconfirmed(notices: &[Notice]) -> Option<(ConnId, usize, usize)> {
    notices.iter().find_map(|n| match n {
        Notice::Unconfirmed {
            conn,
            messages,
            bytes,
        } => Some((*conn, *messages, *bytes)),
        _ => None,
    })
}

/// Open, three messages written, then the heartbeat (1 s) taken by the driver.
fn three_then_ping() -> (Harness, ConnId, Vec<u8>) {
    let mut h = Harness::new(config());
    let conn = h.open();
    for text in ["a", "bb", "ccc"] {
        send(&mut h, text);
    }
    assert_eq!(h.actions().len(), 3, "the three sends are taken");
    h.at(ms(1000));
    let ping = take_ping(&h.actions()).expect("the heartbeat");
    (h, conn, ping)
}

#[test]
fn messages_before_an_answered_heartbeat_are_not_reported() {
    let (mut h, conn, ping) = three_then_ping();
    h.frame(conn, Frame::Pong(&ping));
    h.event(Event::Disconnected(conn, Some("reset")));
    assert_eq!(unconfirmed(&h.notices()), None);
}

#[test]
fn messages_written_after_the_last_answer_are_reported_when_the_connection_dies() {
    let (mut h, conn, ping) = three_then_ping();
    h.frame(conn, Frame::Pong(&ping));
    send(&mut h, "dddd");
    send(&mut h, "eeeee");
    h.actions();
    // The next heartbeat (2 s) goes unanswered: the peer is gone at 2.5 s.
    h.at(ms(2000));
    assert!(take_ping(&h.actions()).is_some());
    h.at(ms(2500));
    let notices = h.notices();
    assert!(
        notices.contains(&Notice::HeartbeatMissed { conn }),
        "{notices:?}"
    );
    assert_eq!(unconfirmed(&notices), Some((conn, 2, 9)));
}

#[test]
fn without_any_answer_everything_written_is_reported() {
    let (mut h, conn, _ping) = three_then_ping();
    h.event(Event::Disconnected(conn, Some("reset")));
    assert_eq!(unconfirmed(&h.notices()), Some((conn, 3, 6)));
}

#[test]
fn messages_never_taken_go_back_to_the_queue_not_into_the_report() {
    let mut h = Harness::new(config());
    let conn = h.open();
    send(&mut h, "taken");
    h.actions();
    send(&mut h, "pending");
    h.event(Event::Disconnected(conn, None));
    assert_eq!(unconfirmed(&h.notices()), Some((conn, 1, 5)));
    assert_eq!(
        h.client.queued_messages(),
        1,
        "the pending one waits for the next"
    );
    // On the next connection it goes out again; nothing is reported twice.
    h.fire_next();
    let next = h.open();
    let sends: Vec<_> = h
        .actions()
        .into_iter()
        .filter(|a| matches!(a, Action::Send { .. }))
        .collect();
    assert_eq!(sends.len(), 1);
    h.event(Event::Disconnected(next, None));
    assert_eq!(unconfirmed(&h.notices()), Some((next, 1, 7)));
}

#[test]
fn a_close_the_peer_answered_confirms_everything_before_it() {
    let (mut h, conn, _ping) = three_then_ping();
    h.client.close(h.now, 1000, "bye").expect("a valid close");
    h.actions();
    h.frame(conn, Frame::Close(Some((1000, "bye"))));
    h.event(Event::Disconnected(conn, None));
    let notices = h.notices();
    assert!(
        matches!(notices[..], [Notice::Closed { .. }]),
        "{notices:?}"
    );
}

#[test]
fn a_close_that_timed_out_proves_nothing() {
    let (mut h, conn, _ping) = three_then_ping();
    h.client.close(h.now, 1000, "bye").expect("a valid close");
    h.actions();
    h.advance(ms(1000));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    assert_eq!(unconfirmed(&h.notices()), Some((conn, 3, 6)));
}
