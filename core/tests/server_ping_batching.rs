//! Clients whose ping deadlines fall within `ping_slack` of each other are pinged in one
//! wake-up, never before their quiet interval; eviction deadlines are not delayed.

mod common;

use common::server::{config, ms, Harness};
use heartline_core::ServerAction;

fn pings(h: &mut Harness) -> usize {
    h.actions()
        .iter()
        .filter(|a| matches!(a, ServerAction::SendPing { .. }))
        .count()
}

/// Opens 100 clients one every 10 ms (ping deadlines 1000-1990 ms) and returns the
/// wake-ups it takes to ping them all.
fn ping_wake_ups(slack_ms: u64) -> Vec<u64> {
    let mut h = Harness::new({
        let mut built = config();
        built.ping_slack = ms(slack_ms);
        built
    });
    let opened: Vec<_> = (0..100)
        .map(|i| {
            let at = h.elapsed();
            h.open(&format!("c{i}"));
            h.advance(ms(10));
            at
        })
        .collect();
    h.actions();
    let mut wakeups = Vec::new();
    let mut pinged = 0;
    while pinged < 100 {
        let t = h.step().expect("a deadline");
        wakeups.push(t.as_millis() as u64);
        for action in h.actions() {
            if let ServerAction::SendPing { conn, .. } = action {
                pinged += 1;
                let name = h.server.name(conn).unwrap();
                let i: usize = name[1..].parse().unwrap();
                // Never before a full quiet interval, never later than the slack.
                let quiet = t - opened[i];
                assert!(
                    quiet >= ms(1000) && quiet <= ms(1000 + slack_ms),
                    "{quiet:?}"
                );
            }
        }
    }
    wakeups
}

#[test]
fn spread_out_clients_share_wake_ups() {
    assert_eq!(
        ping_wake_ups(0).len(),
        100,
        "one wake-up per client without slack"
    );
    // With 100 ms: the first client is due at 1000 ms and waits out the slack, and
    // everyone due by then goes in the same wake-up; then the next window.
    let batched = ping_wake_ups(100);
    let expected: Vec<u64> = (0..10).map(|k| 1100 + 110 * k).collect();
    assert_eq!(batched, expected);
}

#[test]
fn eviction_is_not_delayed_by_the_slack() {
    let mut h = Harness::new({
        let mut built = config();
        built.ping_interval = ms(10_000);
        built.idle_timeout = ms(11_000);
        built.ping_slack = ms(5_000);
        built
    });
    // The slack in force is capped at half the time between ping and eviction.
    assert_eq!(h.server.config().effective_ping_slack(), ms(500));
    let conn = h.open("a");
    assert_eq!(h.step(), Some(ms(10_500)), "the ping waits out the slack");
    assert_eq!(pings(&mut h), 1);
    assert_eq!(h.step(), Some(ms(11_000)), "the eviction does not");
    assert!(!h.server.is_open(conn));
}
