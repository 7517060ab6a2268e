//! Suspension and clock jumps: a client that lost time does not trust the timers that
//! slept through it. It probes the connection with a short deadline, takes only the
//! probe's reply as proof of life, and starts its backoff fresh.

mod common;

use std::time::{Duration, SystemTime};

use common::{config, ms, take_ping, Harness};
use heartline_core::{Action, Backoff, ClientConfig, ConnectError, Event, Frame, Jitter, Notice};

/// The test configuration with a 2 s heartbeat timeout and a 300 ms probe.
fn suspend_config() -> ClientConfig {
    let mut c = config();
    c.heartbeat.timeout = ms(2000);
    c.heartbeat.probe_timeout = ms(300);
    c
}

fn resumed(notices: &[Notice]) -> Option<Duration> {
    notices.iter().find_map(|n| match n {
        Notice::Resumed { lost } => Some(*lost),
        _ => None,
    })
}

#[test]
fn a_wake_far_past_the_deadline_probes_at_once_with_a_short_deadline() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    // The ping was due at 1 s; the process was frozen until 61 s.
    h.at(ms(61_000));
    assert_eq!(resumed(&h.notices()), Some(ms(60_000)));
    let actions = h.actions();
    assert_eq!(
        actions.len(),
        1,
        "one probe, not a ping per missed interval"
    );
    assert!(take_ping(&actions).is_some());
    // The probe's deadline is the short one, not the 2 s heartbeat timeout.
    assert_eq!(h.next_deadline(), Some(ms(61_300)));
    h.at(ms(61_300));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
    let notices = h.notices();
    assert!(notices.contains(&Notice::HeartbeatMissed { conn }));
}

#[test]
fn the_probe_reply_keeps_the_connection_and_the_heartbeat_returns_to_its_interval() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    h.at(ms(61_000));
    let probe = take_ping(&h.actions()).expect("a probe");
    h.notices();
    h.now += ms(40);
    h.frame(conn, Frame::Pong(&probe));
    assert_eq!(h.notices(), vec![Notice::Rtt(ms(40))]);
    assert_eq!(h.next_deadline(), Some(ms(62_040)));
    assert!(h.actions().is_empty());
}

#[test]
fn frames_that_waited_in_the_socket_do_not_prove_the_peer_alive() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    // A ping goes out at 1 s; its pong and a message were in the socket when the
    // process froze at 1.2 s, and the driver wakes at 60 s.
    h.at(ms(1000));
    let old = take_ping(&h.actions()).expect("a ping");
    h.at(ms(60_000));
    assert!(resumed(&h.notices()).is_some());
    assert!(take_ping(&h.actions()).is_some());
    h.frame(conn, Frame::Pong(&old));
    h.frame(conn, Frame::Text("queued before the freeze"));
    // Neither the stale pong nor the message counts: the probe is still awaited.
    assert_eq!(h.next_deadline(), Some(ms(60_300)));
    h.at(ms(60_300));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}

#[test]
fn a_short_delay_is_not_a_suspension() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    // 4 s late is under the 5 s threshold: the ordinary heartbeat, with its timeout.
    h.at(ms(5000));
    assert_eq!(resumed(&h.notices()), None);
    assert!(take_ping(&h.actions()).is_some());
    assert_eq!(h.next_deadline(), Some(ms(7000)));
    // Any frame still proves life.
    h.frame(conn, Frame::Text("x"));
    assert_eq!(h.next_deadline(), Some(ms(6000)));
}

#[test]
fn with_the_check_off_a_late_wake_trusts_the_timers() {
    let mut c = suspend_config();
    c.heartbeat.suspend_threshold = None;
    let mut h = Harness::new(c);
    let conn = h.open();
    h.at(ms(1000));
    take_ping(&h.actions()).expect("a ping");
    // The pong deadline (3 s) slept through: the connection is dropped at once.
    h.at(ms(60_000));
    assert_eq!(resumed(&h.notices()), None);
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}

#[test]
fn the_wall_clock_reveals_a_sleep_the_monotonic_clock_did_not_count() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    h.client.handle_wall_clock(h.now, wall);
    // 200 ms on the monotonic clock, 10 minutes on the wall: the machine slept.
    h.now += ms(200);
    h.client
        .handle_wall_clock(h.now, wall + Duration::from_secs(600) + ms(200));
    assert_eq!(resumed(&h.notices()), Some(Duration::from_secs(600)));
    assert!(take_ping(&h.actions()).is_some());
    assert_eq!(h.next_deadline(), Some(ms(500)));
    h.at(ms(500));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}

#[test]
fn a_wall_clock_set_back_or_nudged_changes_nothing() {
    let mut h = Harness::new(suspend_config());
    h.open();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    h.client.handle_wall_clock(h.now, wall);
    h.now += ms(100);
    h.client
        .handle_wall_clock(h.now, wall - Duration::from_secs(3600));
    h.now += ms(100);
    // From the new reference, 2 s more on the wall: NTP's size, not a suspension.
    h.client
        .handle_wall_clock(h.now, wall - Duration::from_secs(3600) + ms(2100));
    assert!(h.notices().is_empty());
    assert!(h.actions().is_empty());
    assert_eq!(h.next_deadline(), Some(ms(1000)));
}

#[test]
fn after_a_suspension_the_backoff_starts_fresh() {
    let mut c = suspend_config();
    c.reconnect.backoff = Backoff::Exponential {
        initial: ms(1000),
        max: ms(30_000),
        factor: 2,
    };
    c.reconnect.jitter = Jitter::None;
    let mut h = Harness::new(c);
    // Five failures in a row: the next delay is 16 s.
    let mut delay = Duration::ZERO;
    for _ in 0..5 {
        let conn = h.expect_connect();
        h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
        delay = h
            .notices()
            .iter()
            .find_map(|n| match n {
                Notice::ReconnectScheduled { delay, .. } => Some(*delay),
                _ => None,
            })
            .expect("a reconnect");
        h.advance(delay);
    }
    assert_eq!(delay, ms(16_000));
    let conn = h.expect_connect();
    h.event(Event::ConnectFailed(conn, ConnectError::Io("refused")));
    h.notices();
    // The laptop sleeps through the 32 s wait and wakes an hour later.
    h.advance(Duration::from_secs(3600));
    let notices = h.notices();
    assert!(resumed(&notices).is_some());
    assert!(notices.contains(&Notice::Connecting {
        conn: heartline_core::ConnId(conn.0 + 1),
        attempt: 0
    }));
    let conn = h.expect_connect();
    // The network is not back yet: the next try comes after the first delay again.
    h.event(Event::ConnectFailed(conn, ConnectError::Io("unreachable")));
    assert!(h.notices().contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(1000)
    }));
}

#[test]
fn an_attempt_in_flight_gets_a_short_window_instead_of_timing_out_at_once() {
    let mut h = Harness::new(suspend_config());
    let conn = h.expect_connect();
    // The connect deadline (3 s) slept through; the handshake's answer may be in the
    // socket, so the attempt gets the probe's window, not an instant timeout.
    h.advance(Duration::from_secs(120));
    assert!(resumed(&h.notices()).is_some());
    assert!(h.actions().is_empty());
    assert_eq!(h.next_deadline(), Some(ms(120_300)));
    h.event(Event::Connected(conn));
    assert_eq!(h.notices(), vec![Notice::Open { conn }]);
}

#[test]
fn a_close_handshake_gets_the_window_too() {
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    h.client.close(h.now, 1000, "bye").expect("a valid close");
    h.actions();
    h.advance(Duration::from_secs(30));
    assert!(resumed(&h.notices()).is_some());
    assert!(h.actions().is_empty(), "no probe on a closing connection");
    assert_eq!(h.next_deadline(), Some(ms(30_300)));
    h.advance(ms(300));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}

#[test]
fn a_window_never_outlasts_the_timeout_it_replaces() {
    // A close timeout shorter than the probe: after the resume the close still ends
    // within its own 100 ms, not the 300 ms probe window.
    let mut c = suspend_config();
    c.close_timeout = ms(100);
    let mut h = Harness::new(c);
    let conn = h.open();
    h.client.close(h.now, 1000, "bye").expect("a valid close");
    h.actions();
    h.advance(Duration::from_secs(30));
    assert!(resumed(&h.notices()).is_some());
    assert_eq!(h.next_deadline(), Some(ms(30_100)));
    h.advance(ms(100));
    assert_eq!(h.actions(), vec![Action::Abort { conn }]);
}

#[test]
fn zero_thresholds_are_refused() {
    let mut c = ClientConfig::default();
    c.heartbeat.probe_timeout = Duration::ZERO;
    let e = c.validate().expect_err("zero probe");
    assert!(e.to_string().contains("heartbeat.probe_timeout"), "{e}");
    let mut c = ClientConfig::default();
    c.heartbeat.suspend_threshold = Some(Duration::ZERO);
    let e = c.validate().expect_err("zero threshold");
    assert!(e.to_string().contains("heartbeat.suspend_threshold"), "{e}");
}

#[test]
fn a_send_or_close_first_after_waking_does_not_hide_the_suspension() {
    // The application's call is the first thing the client hears at 61 s; it moves the
    // clock without looking at the deadlines. The driver's call at the same instant
    // still finds the client suspended.
    let mut h = Harness::new(suspend_config());
    h.open();
    h.now = h.start + ms(61_000);
    h.client
        .send(
            h.now,
            heartline_core::Message::Text("after the freeze".into()),
        )
        .expect("queued");
    h.client.handle_timeout(h.now);
    assert_eq!(resumed(&h.notices()), Some(ms(60_000)));
    assert!(take_ping(&h.actions()).is_some(), "a probe goes out");
}

#[test]
fn frames_read_together_are_judged_at_one_instant() {
    // A suspension is looked for once per instant: the frames of one read, fed at the
    // same time, make one Resumed and one probe, however many they are (a deadline that
    // slept through the freeze and has not been handled yet, here the 10 s stability
    // timer, does not make each frame a new suspension).
    let mut h = Harness::new(suspend_config());
    let conn = h.open();
    h.now = h.start + ms(61_000);
    h.frame(conn, Frame::Text("one"));
    assert_eq!(resumed(&h.notices()), Some(ms(60_000)));
    // The probe is what the next frames must answer; ordinary frames do not count.
    let probe = take_ping(&h.actions()).expect("a probe");
    h.frame(conn, Frame::Text("two"));
    h.frame(conn, Frame::Text("three"));
    assert!(h.notices().is_empty(), "one Resumed, not one per frame");
    assert!(h.actions().is_empty(), "one probe, not one per frame");
    h.frame(conn, Frame::Pong(&probe));
    assert_eq!(h.notices(), vec![Notice::Rtt(ms(0))]);
}
