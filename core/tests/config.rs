//! Configuration is checked when the client is built: an error naming the field.

use std::time::{Duration, Instant};

use heartline_core::{Backoff, Client, ClientConfig, HeartbeatKind, Jitter, Message};

fn field_of(config: ClientConfig) -> &'static str {
    Client::new(config, 0, Instant::now())
        .expect_err("configuration should be refused")
        .field
}

#[test]
fn defaults_are_valid() {
    assert!(ClientConfig::default().validate().is_ok());
}

#[test]
fn zero_durations_are_refused() {
    let mut c = ClientConfig::default();
    c.heartbeat.interval = Duration::ZERO;
    assert_eq!(field_of(c), "heartbeat.interval");
    let mut c = ClientConfig::default();
    c.heartbeat.timeout = Duration::ZERO;
    assert_eq!(field_of(c), "heartbeat.timeout");
    let c = {
        let mut built = ClientConfig::default();
        built.connect_timeout = Duration::ZERO;
        built
    };
    assert_eq!(field_of(c), "connect_timeout");
    let c = {
        let mut built = ClientConfig::default();
        built.close_timeout = Duration::ZERO;
        built
    };
    assert_eq!(field_of(c), "close_timeout");
    let mut c = ClientConfig::default();
    c.reconnect.backoff = Backoff::Fixed(Duration::ZERO);
    assert_eq!(field_of(c), "reconnect.backoff");
}

#[test]
fn heartbeat_off_ignores_its_intervals() {
    let mut c = ClientConfig::default();
    c.heartbeat.kind = HeartbeatKind::Off;
    c.heartbeat.interval = Duration::ZERO;
    assert!(c.validate().is_ok());
}

#[test]
fn backoff_shape_is_checked() {
    let mut c = ClientConfig::default();
    c.reconnect.backoff = Backoff::exponential(Duration::from_secs(5), Duration::from_secs(1));
    assert_eq!(field_of(c), "reconnect.backoff.max");
    let mut c = ClientConfig::default();
    c.reconnect.backoff = Backoff::Exponential {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(9),
        factor: 1,
    };
    assert_eq!(field_of(c), "reconnect.backoff.factor");
    let mut c = ClientConfig::default();
    c.reconnect.backoff = Backoff::Fixed(Duration::from_millis(1));
    c.reconnect.jitter = Jitter::Full;
    assert_eq!(field_of(c), "reconnect.jitter");
}

#[test]
fn codes_and_statuses_must_exist() {
    let mut c = ClientConfig::default();
    c.reconnect.terminal_close_codes.push(70);
    assert_eq!(field_of(c), "reconnect.terminal_close_codes");
    let mut c = ClientConfig::default();
    c.reconnect.terminal_http_statuses.push(1200);
    assert_eq!(field_of(c), "reconnect.terminal_http_statuses");
}

#[test]
fn empty_app_heartbeat_and_unusable_queue_are_refused() {
    let mut c = ClientConfig::default();
    c.heartbeat.kind = HeartbeatKind::App(heartline_core::AppHeartbeat::echo(Message::from("")));
    assert_eq!(field_of(c), "heartbeat.kind");
    let mut c = ClientConfig::default();
    c.queue.max_bytes = 0;
    assert_eq!(field_of(c), "queue.max_bytes");
}

#[test]
fn the_error_reads_well() {
    let mut c = ClientConfig::default();
    c.heartbeat.timeout = Duration::ZERO;
    let e = c.validate().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: heartbeat.timeout: must be greater than zero"
    );
}
