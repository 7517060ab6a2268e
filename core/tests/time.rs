//! Time: deadlines move when handled, and a clock that goes backwards is clamped.

mod common;

use common::{config, ms, Harness};
use heartline_core::{Action, Event};

#[test]
fn handling_a_deadline_moves_it() {
    let mut h = Harness::new(config());
    let conn = h.open();
    for _ in 0..50 {
        let before = h.client.poll_timeout().unwrap();
        h.fire_next();
        let after = h.client.poll_timeout();
        assert!(
            after.is_none_or(|a| a > before),
            "deadline stuck at {before:?}"
        );
        for a in h.actions() {
            if let Action::SendPing { payload, .. } = a {
                h.frame(conn, heartline_core::Frame::Pong(payload.as_bytes()));
            }
        }
    }
}

#[test]
fn handle_timeout_twice_at_the_same_instant_does_nothing_more() {
    let mut h = Harness::new(config());
    h.open();
    h.at(ms(1000));
    assert_eq!(h.actions().len(), 1);
    h.at(ms(1000));
    assert!(h.actions().is_empty());
}

#[test]
fn a_clock_going_backwards_is_clamped() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.at(ms(900));
    // A frame stamped before the last seen time counts as arriving at 900 ms.
    h.now = h.start;
    h.event(Event::Frame(conn, heartline_core::Frame::Text("x")));
    assert_eq!(h.next_deadline(), Some(ms(1900)));
}

#[test]
fn a_late_wake_up_handles_everything_that_fell_due() {
    let mut h = Harness::new(config());
    let conn = h.open();
    // The driver oversleeps by minutes: one heartbeat goes out, not one per missed
    // interval, and its deadline (the probe's, here the 500 ms timeout) ends the
    // connection on a later call; nothing fires twice.
    h.at(ms(600_000));
    assert!(matches!(h.actions()[..], [Action::SendPing { .. }]));
    h.at(ms(600_500));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}
