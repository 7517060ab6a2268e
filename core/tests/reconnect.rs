//! Reconnect: the delay curve, jitter bounds, attempt limits and when the count resets.

mod common;

use common::{config, ms, Harness};
use heartline_core::{
    Action, Backoff, ConnectError, Event, GiveUpReason, Jitter, Notice, ReadyState,
};

/// Fails every connect attempt at once and returns the scheduled delays.
fn delays_of_failures(h: &mut Harness, n: usize) -> Vec<std::time::Duration> {
    let mut delays = Vec::new();
    for _ in 0..n {
        let conn = h.expect_connect();
        h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
        for notice in h.notices() {
            if let Notice::ReconnectScheduled { delay, .. } = notice {
                delays.push(delay);
            }
        }
        if h.client.poll_timeout().is_some() {
            h.fire_next();
        }
    }
    delays
}

#[test]
fn fixed_delay_like_the_seed_articles() {
    let mut h = Harness::new(config());
    assert_eq!(delays_of_failures(&mut h, 4), vec![ms(2000); 4]);
}

#[test]
fn exponential_doubles_up_to_the_cap() {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(100), ms(1000));
    let mut h = Harness::new(c);
    assert_eq!(
        delays_of_failures(&mut h, 6),
        vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
}

#[test]
fn equal_jitter_waits_between_the_previous_delay_and_its_own_at_one_place() {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(100), ms(1000));
    c.reconnect.jitter = Jitter::Equal;
    let mut h = Harness::new(c);
    let delays = delays_of_failures(&mut h, 40);
    // The first retry anywhere in [0, 100]; then [100, 200], [200, 400], [400, 800],
    // [800, 1000], and [500, 1000] once the delay stops growing.
    let ranges = [(0, 100), (100, 200), (200, 400), (400, 800), (800, 1000)]
        .into_iter()
        .chain(std::iter::repeat((500, 1000)));
    let mut shares = Vec::new();
    for (d, (lo, hi)) in delays.iter().zip(ranges) {
        assert!(
            *d >= ms(lo) && *d <= ms(hi),
            "{d:?} outside [{lo}, {hi}] ms"
        );
        shares.push((d.as_millis() as u64 - lo) * 1000 / (hi - lo));
    }
    // The same place in every range: the share agrees to the millisecond rounding.
    let first = shares[3];
    assert!(shares.iter().all(|s| s.abs_diff(first) <= 10), "{shares:?}");
    assert!(delays[5..].iter().all(|d| *d == delays[5]), "{delays:?}");
}

#[test]
fn equal_jitter_places_differ_between_clients_and_between_outages() {
    let mut c = config();
    c.reconnect.backoff = Backoff::Fixed(ms(1000));
    c.reconnect.jitter = Jitter::Equal;
    c.reconnect.stable_after = ms(500);
    // 64 clients dropped together spread over the range.
    let firsts: std::collections::HashSet<_> = (1..=64)
        .map(|seed| delays_of_failures(&mut Harness::with_seed(c.clone(), seed), 1)[0])
        .collect();
    assert!(firsts.len() > 48, "{firsts:?}");
    // One client: a connection that held ends the outage; the next draws a new place.
    let mut h = Harness::new(c);
    let one = delays_of_failures(&mut h, 3);
    let conn = h.expect_connect();
    h.event(Event::Connected(conn));
    h.advance(ms(600));
    h.event(Event::Disconnected(conn, None));
    h.fire_next();
    // The second outage's first retry (scheduled at the loss), then retries 2 to 4:
    // those in [500, 1000] at the outage's own place.
    let two = delays_of_failures(&mut h, 3);
    assert!(one[1..].iter().all(|d| *d == one[1]), "{one:?}");
    assert!(two[1..].iter().all(|d| *d == two[1]), "{two:?}");
    assert_ne!(one[1], two[1]);
}

/// The times (since the harness started) at which `n` connect attempts of an outage
/// start, each failing `lag` after it starts; the outage begins with a loss at `lost`.
fn attempt_starts(seed: u64, lag: std::time::Duration, n: usize) -> Vec<u64> {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(1000), ms(4000));
    c.reconnect.jitter = Jitter::Equal;
    let mut h = Harness::with_seed(c, seed);
    let conn = h.open();
    h.advance(ms(10_000));
    h.event(Event::Disconnected(conn, None));
    let mut starts = Vec::new();
    for _ in 0..n {
        h.fire_next();
        let conn = h.expect_connect();
        starts.push(h.t().as_millis() as u64 - 10_000);
        h.advance(lag);
        h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
    }
    starts
}

#[test]
fn equal_jitter_keeps_its_schedule_however_long_failures_take_to_arrive() {
    for seed in 1..=20 {
        let prompt = attempt_starts(seed, ms(0), 5);
        // Failures seen 300 ms late (a busy driver, a slow refusal) do not push the
        // attempts later: each is due at its place in the spans from the loss.
        assert_eq!(attempt_starts(seed, ms(300), 5), prompt, "seed {seed}");
        // Spans [0, 1000], [1000, 3000], [3000, 7000], then 4 s apart at the cap's
        // half: the same share of each.
        let share = |t: u64, lo: u64, len: u64| (t - lo) * 1000 / len;
        let first = share(prompt[0], 0, 1000);
        assert!(
            share(prompt[1], 1000, 2000).abs_diff(first) <= 2,
            "{prompt:?}"
        );
        assert!(
            share(prompt[2], 3000, 4000).abs_diff(first) <= 2,
            "{prompt:?}"
        );
    }
    // A failure that arrives after the next attempt was due (a connect timeout longer
    // than the span) still waits half the range's low end before the next attempt.
    let late = attempt_starts(7, ms(5_000), 3);
    assert!(late[1] - late[0] >= 5_000 + 500, "{late:?}");
    assert!(late[2] - late[1] >= 5_000 + 1000, "{late:?}");
}

#[test]
fn full_jitter_stays_within_zero_and_the_cap() {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(100), ms(400));
    c.reconnect.jitter = Jitter::Full;
    let mut h = Harness::new(c);
    for d in delays_of_failures(&mut h, 30) {
        assert!(d <= ms(400));
    }
}

#[test]
fn gives_up_after_max_attempts_and_says_why() {
    let mut c = config();
    c.reconnect.max_attempts = Some(2);
    let mut h = Harness::new(c);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        for a in h.actions() {
            if let Action::Connect { conn, attempt, .. } = a {
                attempts.push(attempt);
                h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
            }
        }
        if h.client.poll_timeout().is_some() {
            h.fire_next();
        }
    }
    assert_eq!(
        attempts,
        vec![0, 1, 2],
        "initial connect and two reconnects"
    );
    let notices = h.notices();
    assert_eq!(
        notices.last(),
        Some(&Notice::GaveUp {
            reason: GiveUpReason::AttemptsExhausted { attempts: 2 }
        })
    );
    assert_eq!(h.client.state(), ReadyState::Closed);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn zero_max_attempts_never_reconnects() {
    let mut c = config();
    c.reconnect.max_attempts = Some(0);
    let mut h = Harness::new(c);
    let conn = h.open();
    h.event(Event::Disconnected(conn, None));
    assert!(matches!(
        h.notices().last(),
        Some(Notice::GaveUp {
            reason: GiveUpReason::AttemptsExhausted { attempts: 0 }
        })
    ));
    assert!(h.actions().is_empty());
}

#[test]
fn attempt_count_resets_only_after_a_stable_connection() {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(100), ms(10_000));
    c.heartbeat.kind = heartline_core::HeartbeatKind::Off;
    let mut h = Harness::new(c);
    // Opens, then drops after 1 s (before the 10 s stability mark): the count goes on.
    let conn = h.open();
    h.advance(ms(1000));
    h.event(Event::Disconnected(conn, None));
    assert!(h.notices().contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(100)
    }));
    h.fire_next();
    let conn = h.open();
    h.advance(ms(1000));
    h.event(Event::Disconnected(conn, None));
    assert!(h.notices().contains(&Notice::ReconnectScheduled {
        attempt: 2,
        delay: ms(200)
    }));
    // This one stays up past the stability mark: the next drop starts over at attempt 1.
    h.fire_next();
    let conn = h.open();
    h.advance(ms(10_000));
    h.event(Event::Disconnected(conn, None));
    assert!(h.notices().contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(100)
    }));
}

#[test]
fn reconnect_now_skips_the_wait() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.event(Event::Disconnected(conn, None));
    h.notices();
    assert_eq!(h.next_deadline(), Some(ms(2000)));
    h.advance(ms(10));
    h.client.reconnect_now(h.now);
    assert!(matches!(
        h.actions()[..],
        [Action::Connect { attempt: 1, .. }]
    ));
}

#[test]
fn reconnect_now_while_open_closes_then_connects_without_delay() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.reconnect_now(h.now);
    assert!(matches!(h.actions()[..], [Action::Close { conn: c, code: 1000, .. }] if c == conn));
    assert_eq!(h.client.state(), ReadyState::Connecting);
    h.event(Event::Disconnected(conn, None));
    let next = h.expect_connect();
    assert!(next > conn);
}

#[test]
fn reconnect_now_after_giving_up_starts_over() {
    let mut c = config();
    c.reconnect.max_attempts = Some(0);
    let mut h = Harness::new(c);
    let conn = h.expect_connect();
    h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
    assert_eq!(h.client.state(), ReadyState::Closed);
    h.client.reconnect_now(h.now);
    assert!(matches!(
        h.actions()[..],
        [Action::Connect { attempt: 0, .. }]
    ));
}

#[test]
fn a_connection_past_the_stability_mark_counts_as_stable_even_if_the_timer_was_not_handled() {
    let mut c = config();
    c.reconnect.backoff = Backoff::exponential(ms(100), ms(10_000));
    c.heartbeat.kind = heartline_core::HeartbeatKind::Off;
    let mut h = Harness::new(c);
    let conn = h.expect_connect();
    h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
    h.fire_next();
    let conn = h.open();
    // The driver reports the loss 11 s later without having handled the 10 s mark.
    h.now += ms(11_000);
    h.event(Event::Disconnected(conn, None));
    assert!(h.notices().contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(100)
    }));
}
