//! A connection whose socket takes nothing for `write_timeout` is dropped by the core
//! and the client reconnects: the driver only reports "a write could not finish" and
//! "everything went out".

mod common;

use common::{config, ms, Harness};
use heartline_core::{close_code, Action, Event, Initiator, Notice};

#[test]
fn a_write_blocked_for_the_write_timeout_drops_the_connection() {
    let mut c = config();
    c.write_timeout = ms(700);
    c.heartbeat.interval = ms(10_000);
    let mut h = Harness::new(c);
    let conn = h.open();

    h.advance(ms(100));
    h.event(Event::WriteBlocked(conn));
    // Reported again later: the stall still counts from the first report.
    h.advance(ms(300));
    h.event(Event::WriteBlocked(conn));
    assert_eq!(h.next_deadline(), Some(ms(800)));
    h.at(ms(799));
    assert!(h.actions().is_empty());

    assert_eq!(h.fire_next(), ms(800));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    let notices = h.notices();
    assert_eq!(
        notices[0],
        Notice::Closed {
            conn,
            code: close_code::ABNORMAL,
            reason: "write timed out: the peer is not reading".into(),
            by: Initiator::Local,
        }
    );
    assert!(
        matches!(notices[1], Notice::ReconnectScheduled { attempt: 1, .. }),
        "{notices:?}"
    );
    // The driver's report of the end it was told to make is stale.
    assert_eq!(
        h.event(Event::Disconnected(conn, None)),
        heartline_core::Disposition::Stale
    );
    assert_eq!(h.fire_next(), ms(2800), "reconnects after the backoff");
    h.expect_connect();
}

#[test]
fn a_write_that_finishes_in_time_ends_the_stall() {
    let mut c = config();
    c.write_timeout = ms(700);
    c.heartbeat.interval = ms(10_000);
    let mut h = Harness::new(c);
    let conn = h.open();
    h.event(Event::WriteBlocked(conn));
    h.advance(ms(600));
    h.event(Event::WriteFlushed(conn));
    h.advance(ms(500));
    assert!(h.actions().is_empty());
    // A new stall counts afresh.
    h.event(Event::WriteBlocked(conn));
    assert_eq!(h.next_deadline(), Some(ms(1800)));
}

#[test]
fn a_stalled_close_handshake_ends_at_the_write_timeout() {
    let mut c = config();
    c.write_timeout = ms(300);
    c.close_timeout = ms(5000);
    let mut h = Harness::new(c);
    let conn = h.open();
    h.client.close(h.now, 1000, "bye").unwrap();
    h.actions();
    h.event(Event::WriteBlocked(conn));
    assert_eq!(h.fire_next(), ms(300));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    assert!(h.client.is_closed());
}

#[test]
fn write_reports_for_an_attempt_or_an_old_connection_change_nothing() {
    let mut h = Harness::new(config());
    let first = h.expect_connect();
    // No socket is open yet: nothing to stall.
    h.event(Event::WriteBlocked(first));
    assert_eq!(
        h.next_deadline(),
        Some(ms(3000)),
        "only the connect timeout"
    );
    h.event(Event::Connected(first));
    h.event(Event::Disconnected(first, None));
    assert_eq!(
        h.event(Event::WriteBlocked(first)),
        heartline_core::Disposition::Stale
    );
}
