//! The blocking client against a real server on 127.0.0.1: it reconnects when the
//! server dies, notices a half-open server by its heartbeat, delivers what was sent
//! while down once the server is back, stops for good on close, and gives up on 401.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, PATIENCE};
use heartline_blocking::{ClientBuilder, ClientEvent, ClientEvents, ClientHandle, ConnectTarget};
use heartline_core::{
    Backoff, ClientConfig, ConnectFailure, GiveUpReason, Initiator, Jitter, Notice, ReadyState,
    SendErrorKind,
};

/// Millisecond heartbeat and backoff, so each scenario takes a fraction of a second.
fn fast_config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.heartbeat.interval = Duration::from_millis(50);
    config.heartbeat.timeout = Duration::from_millis(100);
    config.reconnect.backoff = Backoff::Fixed(Duration::from_millis(50));
    config.reconnect.jitter = Jitter::None;
    config.connect_timeout = Duration::from_secs(2);
    config.close_timeout = Duration::from_secs(2);
    config
}

fn connect(url: &str) -> (ClientHandle, ClientEvents) {
    ClientBuilder::new(url)
        .config(fast_config())
        .seed(7)
        .connect()
        .expect("client starts")
}

/// Reads events until one satisfies `want`; returns everything read, that one last.
/// Fails the test, showing what came, if none does within [`PATIENCE`].
fn wait_for(
    events: &ClientEvents,
    what: &str,
    mut want: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                let done = want(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no {what} ({e:?}); events: {seen:#?}"),
        }
    }
}

fn is_open(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Notice(Notice::Open { .. }))
}

fn is_text(e: &ClientEvent, want: &str) -> bool {
    matches!(e, ClientEvent::Text(t) if t.as_str() == want)
}

/// Reads until the iterator ends; fails if it does not end within [`PATIENCE`].
fn wait_for_end(events: &ClientEvents) -> Vec<ClientEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => seen.push(event),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return seen,
            Err(e) => panic!("event stream did not end ({e:?}); events: {seen:#?}"),
        }
    }
}

#[test]
fn reconnects_after_the_server_dies_and_delivers_what_was_sent_meanwhile() {
    let server = TestServer::start();
    let (client, events) = connect(&server.url());
    wait_for(&events, "open", is_open);
    client.send_text("before").unwrap();
    wait_for(&events, "echo", |e| is_text(e, "before"));

    let addr = server.kill();
    let seen = wait_for(&events, "reconnect scheduled", |e| {
        matches!(e, ClientEvent::Notice(Notice::ReconnectScheduled { .. }))
    });
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ClientEvent::Notice(Notice::Closed {
                by: Initiator::Transport,
                ..
            })
        )),
        "the loss is reported as a transport close: {seen:#?}"
    );
    // While the server is down every message is queued, none refused.
    for m in ["m1", "m2", "m3"] {
        client.send_text(m).unwrap();
    }
    assert_eq!(client.buffered_amount(), 6);
    // At least one more attempt fails and is rescheduled while the server is away.
    wait_for(&events, "failed attempt", |e| {
        matches!(e, ClientEvent::Notice(Notice::ConnectFailed { .. }))
    });

    let server = TestServer::restart_on(addr);
    wait_for(&events, "open again", is_open);
    let seen = wait_for(&events, "last queued echo", |e| is_text(e, "m3"));
    let texts: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
    assert_eq!(server.received(), ["m1", "m2", "m3"]);
    assert_eq!(client.state(), ReadyState::Open);
    assert_eq!(client.buffered_amount(), 0);
}

#[test]
fn a_half_open_server_is_noticed_by_the_heartbeat_and_left() {
    let server = TestServer::start();
    let (client, events) = connect(&server.url());
    wait_for(&events, "open", is_open);
    server.freeze();
    let seen = wait_for(&events, "heartbeat missed", |e| {
        matches!(e, ClientEvent::Notice(Notice::HeartbeatMissed { .. }))
    });
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Notice(Notice::Closed { .. }))),
        "nothing closed the connection before the heartbeat did: {seen:#?}"
    );
    let seen = wait_for(&events, "reconnect", |e| {
        matches!(e, ClientEvent::Notice(Notice::ReconnectScheduled { .. }))
    });
    assert!(matches!(
        &seen[0],
        ClientEvent::Notice(Notice::Closed {
            by: Initiator::Local,
            code: 1006,
            ..
        })
    ));
    // The frozen server still completes handshakes: the client comes back.
    wait_for(&events, "open again", is_open);
    assert_eq!(server.requests().len(), 2);
    drop(client);
}

#[test]
fn close_stops_for_good() {
    let server = TestServer::start();
    let (client, events) = connect(&server.url());
    wait_for(&events, "open", is_open);
    client.close(1000, "bye").unwrap();
    let seen = wait_for_end(&events);
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ClientEvent::Notice(Notice::Closed {
                code: 1000,
                by: Initiator::Local,
                ..
            })
        )),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Notice(Notice::Connecting { .. }))),
        "no attempt after close: {seen:#?}"
    );
    assert_eq!(client.state(), ReadyState::Closed);
    let err = client.send_text("late").unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_401_handshake_gives_up_and_says_why() {
    let server = TestServer::start();
    server.reject_with(401);
    let (client, events) = connect(&server.url());
    let seen = wait_for_end(&events);
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ClientEvent::Notice(Notice::ConnectFailed {
                error: ConnectFailure::Http { status: 401, .. },
                ..
            })
        )),
        "{seen:#?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Notice(Notice::GaveUp {
                reason: GiveUpReason::HttpStatus(401)
            }))
        ),
        "{seen:#?}"
    );
    assert_eq!(client.state(), ReadyState::Closed);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn each_attempt_takes_fresh_headers_from_the_callback() {
    let server = TestServer::start();
    let url = server.url();
    let issued = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&issued);
    let (client, events) = ClientBuilder::new("ws://unused.invalid/")
        .config(fast_config())
        .on_connect(move |_attempt| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Ok(ConnectTarget::new(url.clone()).header("Authorization", format!("Bearer t{n}")))
        })
        .connect()
        .unwrap();
    wait_for(&events, "open", is_open);
    client.reconnect_now();
    wait_for(&events, "open again", is_open);
    let tokens: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|h| {
            h.iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(tokens, ["Bearer t0", "Bearer t1"]);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}
