//! The application's `close()`: for good, from any state, and nothing afterwards.

mod common;

use common::{config, ms, Harness};
use heartline_core::{
    Action, CloseError, ConnectError, DropCause, Event, Frame, Initiator, Message, Notice,
    ReadyState, SendErrorKind,
};

#[test]
fn close_while_open_runs_the_handshake_and_stops() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.close(h.now, 1000, "done").unwrap();
    assert_eq!(
        h.actions(),
        vec![Action::Close {
            conn,
            code: 1000,
            reason: "done".into()
        }]
    );
    assert_eq!(h.client.state(), ReadyState::Closing);
    // The server echoes the Close, then ends TCP.
    h.frame(conn, Frame::Close(Some((1000, ""))));
    h.event(Event::Disconnected(conn, None));
    assert_eq!(
        h.notices(),
        vec![Notice::Closed {
            conn,
            code: 1000,
            reason: "done".into(),
            by: Initiator::Local
        }]
    );
    assert_eq!(h.client.state(), ReadyState::Closed);
    assert_eq!(h.client.poll_timeout(), None, "all timers cleared");
}

#[test]
fn close_handshake_that_hangs_is_aborted_and_still_final() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.close(h.now, 1000, "").unwrap();
    h.actions();
    h.at(ms(1000));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    assert_eq!(h.client.state(), ReadyState::Closed);
    h.at(ms(100_000));
    assert!(h.actions().is_empty());
}

#[test]
fn close_during_a_pending_reconnect_cancels_it() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.event(Event::Disconnected(conn, None));
    h.notices();
    assert!(h.client.poll_timeout().is_some());
    h.client.close(h.now, 1000, "").unwrap();
    assert_eq!(h.client.poll_timeout(), None);
    h.at(ms(60_000));
    assert!(h.actions().is_empty(), "no connect after close");
    assert_eq!(h.client.state(), ReadyState::Closed);
}

#[test]
fn close_while_connecting_aborts_the_attempt() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.client.close(h.now, 1000, "").unwrap();
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    // The attempt completing late changes nothing.
    h.event(Event::Connected(conn));
    assert_eq!(h.client.state(), ReadyState::Closed);
    h.event(Event::ConnectFailed(conn, ConnectError::Io("reset")));
    h.at(ms(60_000));
    assert!(h.actions().is_empty());
}

#[test]
fn a_remote_close_during_the_local_close_does_not_reconnect() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.frame(conn, Frame::Close(Some((1001, "going away"))));
    h.client.close(h.now, 1000, "").unwrap();
    h.event(Event::Disconnected(conn, None));
    let notices = h.notices();
    assert!(!notices
        .iter()
        .any(|n| matches!(n, Notice::ReconnectScheduled { .. })));
    assert!(h.client.is_closed());
}

#[test]
fn sends_after_close_are_refused_and_queued_ones_reported() {
    let mut h = Harness::new(config());
    h.expect_connect();
    h.client.send(h.now, Message::from("a")).unwrap();
    h.client.send(h.now, Message::from("bc")).unwrap();
    h.client.close(h.now, 1000, "").unwrap();
    assert!(h.notices().contains(&Notice::Dropped {
        messages: 2,
        bytes: 3,
        cause: DropCause::Closed
    }));
    let err = h.client.send(h.now, Message::from("late")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(err.message, Message::from("late"));
    assert_eq!(h.client.buffered_amount(), 0);
}

#[test]
fn invalid_close_arguments_are_errors_not_panics() {
    let mut h = Harness::new(config());
    h.open();
    assert_eq!(
        h.client.close(h.now, 1006, ""),
        Err(CloseError::InvalidCode(1006))
    );
    assert_eq!(
        h.client.close(h.now, 999, ""),
        Err(CloseError::InvalidCode(999))
    );
    let long = "x".repeat(124);
    assert_eq!(
        h.client.close(h.now, 1000, &long),
        Err(CloseError::ReasonTooLong(124))
    );
    assert_eq!(
        h.client.state(),
        ReadyState::Open,
        "a refused close changes nothing"
    );
    assert!(h.client.close(h.now, 4000, &"x".repeat(123)).is_ok());
}

#[test]
fn close_twice_is_harmless() {
    let mut h = Harness::new(config());
    h.open();
    h.client.close(h.now, 1000, "").unwrap();
    h.client.close(h.now, 1000, "").unwrap();
    assert_eq!(h.actions().len(), 1);
}

#[test]
fn a_heartbeat_the_driver_has_not_taken_is_dropped_by_close() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.actions();
    // The ping comes due, and the application closes before the driver looks.
    assert_eq!(h.fire_next(), ms(1000), "the ping's deadline");
    h.client.close(h.now, 1000, "bye").unwrap();
    assert_eq!(
        h.actions(),
        vec![Action::Close {
            conn,
            code: 1000,
            reason: "bye".into()
        }],
        "no Ping ahead of the Close"
    );
}

#[test]
fn a_peer_that_breaks_the_protocol_is_failed_with_the_code_and_retried() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.notices();
    let long = "é".repeat(100); // 200 bytes: cut at a character boundary
    h.event(Event::Violation(conn, 1007, &long));
    let reason = "é".repeat(61);
    assert_eq!(
        h.actions(),
        vec![Action::Close {
            conn,
            code: 1007,
            reason: reason.clone()
        }]
    );
    // A second violation while closing sends nothing more.
    h.event(Event::Violation(conn, 1002, "again"));
    assert!(h.actions().is_empty());
    h.event(Event::Disconnected(conn, None));
    let notices = h.notices();
    assert_eq!(
        notices[0],
        Notice::Closed {
            conn,
            code: 1007,
            reason,
            by: Initiator::Local
        }
    );
    // 1007 from the peer would be terminal; a close this client made is not.
    assert!(
        matches!(notices[1], Notice::ReconnectScheduled { attempt: 1, .. }),
        "{notices:?}"
    );
    assert_eq!(h.client.state(), ReadyState::Connecting);
}

#[test]
fn a_violation_with_a_code_not_for_the_wire_becomes_1002() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.event(Event::Violation(conn, 1006, "bad"));
    assert_eq!(
        h.actions(),
        vec![Action::Close {
            conn,
            code: 1002,
            reason: "bad".into()
        }]
    );
}
