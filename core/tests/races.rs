//! The races that plague reconnecting clients, each settled by connection ids.

mod common;

use common::{config, ms, take_ping, Harness};
use heartline_core::{Action, ConnectError, Disposition, Event, Frame, Notice, ReadyState};

fn reconnects(notices: &[Notice]) -> usize {
    notices
        .iter()
        .filter(|n| matches!(n, Notice::ReconnectScheduled { .. }))
        .count()
}

#[test]
fn close_and_error_for_the_same_connection_schedule_one_reconnect() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.event(Event::Disconnected(conn, Some("connection reset")));
    h.event(Event::Disconnected(conn, None));
    h.event(Event::ConnectFailed(conn, ConnectError::Io("reset")));
    assert_eq!(reconnects(&h.notices()), 1);
    h.at(ms(2000));
    assert_eq!(h.actions().len(), 1, "one connect, not two");
}

#[test]
fn connect_failure_reported_twice_schedules_one_reconnect() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
    h.event(Event::Disconnected(conn, Some("refused")));
    assert_eq!(reconnects(&h.notices()), 1);
}

#[test]
fn a_pong_arriving_after_reconnect_is_ignored() {
    let mut h = Harness::new(config());
    let old = h.open();
    h.at(ms(1000));
    let payload = take_ping(&h.actions()).unwrap();
    h.event(Event::Disconnected(old, None));
    h.at(ms(3000));
    let new = h.open();
    h.notices();
    assert_eq!(h.frame(old, Frame::Pong(&payload)), Disposition::Stale);
    assert_eq!(h.frame(old, Frame::Text("late")), Disposition::Stale);
    assert!(h.notices().is_empty(), "no rtt from the old connection");
    assert_eq!(h.client.current_conn(), Some(new));
}

#[test]
fn a_connect_timeout_from_an_old_attempt_does_not_kill_the_new_connection() {
    let mut h = Harness::new(config());
    // Attempt 1 is refused at once; its 3 s connect timeout would have fired at t=3s.
    let first = h.expect_connect();
    h.event(Event::ConnectFailed(first, ConnectError::Io("refused")));
    h.at(ms(2000));
    let second = h.expect_connect();
    h.at(ms(2500));
    h.event(Event::Connected(second));
    h.at(ms(3000));
    h.at(ms(5000));
    assert_eq!(h.client.state(), ReadyState::Open);
    assert!(!h
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Abort { .. })));
    // A late event from the first attempt changes nothing either.
    assert_eq!(
        h.event(Event::Disconnected(first, None)),
        Disposition::Stale
    );
    assert_eq!(h.client.state(), ReadyState::Open);
}

#[test]
fn connect_timeout_aborts_and_reconnects() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.at(ms(3000));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    let notices = h.notices();
    assert!(notices.contains(&Notice::ConnectFailed {
        conn,
        error: heartline_core::ConnectFailure::Timeout
    }));
    assert!(notices.contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(2000)
    }));
    // The attempt finishing after the timeout is stale.
    assert_eq!(h.event(Event::Connected(conn)), Disposition::Stale);
    assert_eq!(h.client.state(), ReadyState::Connecting);
    assert_eq!(h.client.current_conn(), None);
}

#[test]
fn only_one_attempt_is_ever_in_flight() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.client.reconnect_now(h.now);
    h.event(Event::Disconnected(conn, None));
    h.client.reconnect_now(h.now);
    h.client.reconnect_now(h.now);
    let connects = h
        .actions()
        .iter()
        .filter(|a| matches!(a, Action::Connect { .. }))
        .count();
    assert_eq!(connects, 1);
}

#[test]
fn the_old_connection_is_closed_before_a_new_one_starts() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.reconnect_now(h.now);
    assert!(matches!(h.actions()[..], [Action::Close { .. }]));
    h.advance(ms(10));
    assert!(
        h.actions().is_empty(),
        "no connect while the old connection is closing"
    );
    h.event(Event::Disconnected(conn, None));
    h.expect_connect();
}
