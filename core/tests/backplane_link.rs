//! The backplane connection's machine in virtual time: connect deadlines, the retry
//! backoff, probes of a silent server, and what a loss costs.

use std::time::{Duration, Instant};

use heartline_core::{Backoff, BackplaneLink, LinkConfig, LinkStep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn link() -> (BackplaneLink, Instant) {
    let start = Instant::now();
    (BackplaneLink::new(LinkConfig::default(), start), start)
}

/// Polls at `t` and expects a connect attempt, which then fails; returns its deadline.
fn fail_attempt(link: &mut BackplaneLink, t: Instant) -> Instant {
    let LinkStep::Connect { deadline } = link.poll(t) else {
        panic!("expected a connect at {t:?}");
    };
    assert!(!link.failed(t), "a failed attempt is no loss to report");
    deadline
}

#[test]
fn connects_at_once_and_retries_with_a_doubling_wait_capped_at_two_seconds() {
    let (mut link, start) = link();
    let deadline = fail_attempt(&mut link, start);
    assert_eq!(
        deadline,
        start + ms(2000),
        "connecting may take the IO timeout"
    );
    let mut t = start;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let LinkStep::Wait { until: Some(next) } = link.poll(t) else {
            panic!("a down link waits for its retry");
        };
        waits.push(next - t);
        t = next;
        fail_attempt(&mut link, t);
    }
    assert_eq!(
        waits,
        [100, 200, 400, 800, 1600, 2000, 2000].map(ms),
        "100 ms doubling, at most 2 s"
    );
}

#[test]
fn an_attempt_that_outlives_its_deadline_is_dropped_and_retried() {
    let (mut link, start) = link();
    let LinkStep::Connect { deadline } = link.poll(start) else {
        panic!("a connect");
    };
    assert_eq!(
        link.poll(start + ms(1999)),
        LinkStep::Wait {
            until: Some(deadline)
        }
    );
    assert_eq!(link.poll(deadline), LinkStep::Drop { lost: false });
    assert_eq!(
        link.poll(deadline),
        LinkStep::Wait {
            until: Some(deadline + ms(100))
        }
    );
}

#[test]
fn a_silent_server_is_probed_after_a_second_and_dropped_if_it_does_not_answer() {
    let (mut link, start) = link();
    assert!(matches!(link.poll(start), LinkStep::Connect { .. }));
    link.connected(start + ms(5));
    assert!(link.is_up());
    // Messages keep the link quiet; silence after the last one brings a probe.
    link.heard(start + ms(700));
    assert_eq!(
        link.poll(start + ms(900)),
        LinkStep::Wait {
            until: Some(start + ms(1700))
        }
    );
    let probe = link.poll(start + ms(1700));
    assert_eq!(
        probe,
        LinkStep::Probe {
            deadline: start + ms(3700)
        }
    );
    // No answer by the deadline: the connection is dropped, a loss to report, and the
    // link (up for longer than the first wait) connects again at once.
    assert_eq!(
        link.poll(start + ms(3000)),
        LinkStep::Wait {
            until: Some(start + ms(3700))
        }
    );
    assert_eq!(link.poll(start + ms(3700)), LinkStep::Drop { lost: true });
    assert!(!link.is_up());
    assert!(matches!(
        link.poll(start + ms(3700)),
        LinkStep::Connect { .. }
    ));
}

#[test]
fn an_answered_probe_keeps_the_link() {
    let (mut link, start) = link();
    link.poll(start);
    link.connected(start);
    assert!(matches!(
        link.poll(start + ms(1000)),
        LinkStep::Probe { .. }
    ));
    link.heard(start + ms(1001));
    assert_eq!(
        link.poll(start + ms(1001)),
        LinkStep::Wait {
            until: Some(start + ms(2001))
        }
    );
    assert!(link.is_up());
}

#[test]
fn a_link_lost_right_after_it_came_up_keeps_backing_off() {
    // A server that accepts and drops at once is not hammered: only a link that
    // stayed up for the first wait starts its backoff over.
    let (mut link, start) = link();
    let mut t = start;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let step = link.poll(t);
        if let LinkStep::Wait { until: Some(next) } = step {
            waits.push(next - t);
            t = next;
            continue;
        }
        assert!(matches!(step, LinkStep::Connect { .. }));
        link.connected(t);
        assert!(link.failed(t + ms(10)), "a loss of an up link is reported");
        t += ms(10);
        let LinkStep::Wait { until: Some(next) } = link.poll(t) else {
            panic!("a wait after a quick loss");
        };
        waits.push(next - t);
        t = next;
    }
    assert_eq!(waits, [100, 200, 400, 800].map(ms));
}

#[test]
fn restart_connects_at_once_with_the_backoff_reset() {
    let (mut link, start) = link();
    fail_attempt(&mut link, start);
    fail_attempt(&mut link, start + ms(100));
    link.restart(start + ms(150));
    assert!(matches!(
        link.poll(start + ms(150)),
        LinkStep::Connect { .. }
    ));
    link.failed(start + ms(150));
    assert_eq!(
        link.poll(start + ms(150)),
        LinkStep::Wait {
            until: Some(start + ms(250))
        }
    );
}

#[test]
fn without_probes_an_up_link_waits_for_whatever_happens() {
    let start = Instant::now();
    let mut config = LinkConfig::default();
    config.idle_probe = None;
    config.retry = Backoff::Fixed(ms(50));
    let mut link = BackplaneLink::new(config, start);
    link.poll(start);
    link.connected(start);
    assert_eq!(
        link.poll(start + ms(60_000)),
        LinkStep::Wait { until: None }
    );
}
