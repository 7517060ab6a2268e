//! A silent client is pinged after `ping_interval` and evicted exactly at its idle
//! deadline (last sign of life + `idle_timeout`), not a tick later; traffic postpones
//! both.

mod common;

use common::server::{config, ms, Harness};
use heartline_core::{close_code, EvictReason, Frame, Initiator, ServerAction, ServerNotice};

#[test]
fn silent_client_is_pinged_then_evicted_at_the_idle_deadline() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    h.notices();

    // The first deadline is the ping, after 1 s of quiet.
    assert_eq!(h.step(), Some(ms(1000)));
    let actions = h.actions();
    assert!(
        matches!(actions.as_slice(), [ServerAction::SendPing { conn: c, .. }] if *c == conn),
        "{actions:?}"
    );
    // Nothing answers: the next deadline is the eviction, 3 s after the last sign of
    // life (the open), not 3 s after the ping.
    assert_eq!(h.server.poll_timeout(), Some(h.start + ms(3000)));
    h.server.handle_timeout(h.start + ms(2999));
    assert!(h.actions().is_empty());
    assert!(h.server.is_open(conn));

    assert_eq!(h.step(), Some(ms(3000)));
    // One action that says why: the driver writes Close 4408 if it can, and drops.
    assert_eq!(
        h.actions(),
        vec![ServerAction::Evict {
            conn,
            reason: EvictReason::Idle
        }]
    );
    assert_eq!(
        EvictReason::Idle.close_code(),
        Some(close_code::IDLE_TIMEOUT)
    );
    assert_eq!(
        h.notices(),
        vec![ServerNotice::Closed {
            conn,
            name: Some("alice".into()),
            code: close_code::IDLE_TIMEOUT,
            reason: "idle timeout".into(),
            by: Initiator::Local,
            evicted: Some(EvictReason::Idle),
        }]
    );
    assert!(!h.server.is_open(conn));
    assert_eq!(h.server.lookup("alice"), None);
    assert!(h.server.is_empty());
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn traffic_postpones_ping_and_eviction() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");

    // A message every 900 ms: never quiet for a full ping interval.
    for _ in 0..10 {
        h.run_until(h.elapsed() + ms(900));
        assert!(h.actions().is_empty(), "no ping while the client talks");
        h.text(conn, "hello");
    }
    let last = h.elapsed();
    assert_eq!(h.server.poll_timeout(), Some(h.start + last + ms(1000)));

    // Pinged once, answered only by a Ping of the client's own: still a sign of life.
    h.step();
    assert!(matches!(
        h.actions().as_slice(),
        [ServerAction::SendPing { .. }]
    ));
    h.advance(ms(1500));
    h.frame(conn, Frame::Ping(b"x"));
    let seen = h.elapsed();
    h.run_until(seen + ms(2999));
    assert!(h.server.is_open(conn));
    h.run_until(seen + ms(3000));
    assert!(
        !h.server.is_open(conn),
        "evicted exactly at the idle deadline"
    );
}

#[test]
fn answered_pings_keep_a_client_forever() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    for round in 1..=50u64 {
        let t = h.step().expect("a ping is always scheduled");
        // Each Pong is a sign of life: the next Ping follows a full quiet second later.
        assert_eq!(t, ms(1020 * round - 20), "a ping after each quiet second");
        h.advance(ms(20));
        assert_eq!(h.answer_pings(), 1);
    }
    assert!(h.server.is_open(conn));
    assert_eq!(h.server.rtt(conn), Some(ms(20)));
}
