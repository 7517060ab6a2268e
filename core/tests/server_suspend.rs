//! A server that was suspended (a frozen VM, a stopped process) judges its clients on
//! the time it saw pass: every deadline moves by the time lost, so a client that was
//! quiet only because nobody pinged it is pinged on waking, not evicted.

mod common;

use common::server::{config, ms, Harness};
use heartline_core::{EvictReason, ServerAction, ServerNotice};

/// Opens alice at the start, then freezes the server from 500 ms until `woke` (its
/// next deadline, the ping, was due at 1 s) and handles that moment.
fn frozen_until(suspend_threshold: Option<std::time::Duration>, woke: u64) -> Harness {
    let mut c = config();
    c.suspend_threshold = suspend_threshold;
    let mut h = Harness::new(c);
    h.open("alice");
    h.notices();
    h.run_until(ms(500));
    h.now = h.start + ms(woke);
    h.server.handle_timeout(h.now);
    h
}

fn evicted(actions: &[ServerAction]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            ServerAction::Evict {
                reason: EvictReason::Idle,
                ..
            }
        )
    })
}

#[test]
fn a_server_woken_a_minute_late_pings_instead_of_evicting() {
    let mut h = frozen_until(Some(ms(5000)), 60_000);
    // Lost: from the ping it should have sent at 1 s until 60 s.
    assert_eq!(
        h.notices(),
        vec![ServerNotice::Resumed { lost: ms(59_000) }]
    );
    let alice = h.server.lookup("alice").expect("still registered");
    // Her idle deadline moved with the rest: 3 s after her last sign of life, as the
    // server saw time pass (0 s then, 59 s now), so 62 s.
    assert_eq!(h.server.poll_timeout(), Some(h.start + ms(62_000)));
    // The one action is her ping, which she answers; silence after the next ping
    // still evicts her on time.
    assert_eq!(h.answer_pings(), 1);
    h.run_until(ms(62_000));
    assert!(!evicted(&h.actions()), "she answered");
    assert!(h.server.is_open(alice));
    h.run_until(ms(70_000));
    assert!(evicted(&h.actions()), "a silent client is still evicted");
}

#[test]
fn without_a_threshold_or_under_it_the_deadlines_stand() {
    // Off: the minute the server did not see counts, and alice is evicted on waking.
    let mut off = frozen_until(None, 60_000);
    assert!(evicted(&off.actions()));
    assert!(off.server.lookup("alice").is_none());
    // Woken 4 s late, under the 5 s threshold: that is lateness, not a suspension.
    let mut late = frozen_until(Some(ms(5000)), 5_000);
    assert!(evicted(&late.actions()));
    assert!(!late
        .notices()
        .iter()
        .any(|n| matches!(n, ServerNotice::Resumed { .. })));
}
