//! The client scenarios, written once and run against every flavour: the blocking
//! client here, the async client on smol and async-std (the async adapter's tests
//! include this file too).

use std::sync::atomic::{AtomicU32 as Counter, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::client_peer::{TestServer, TlsEchoServer, PATIENCE};

use heartline_core::{
    Backoff, ClientConfig, ConnectFailure, GiveUpReason, Initiator, Jitter, Notice, ReadyState,
    SendErrorKind,
};
// The types both clients share (re-exported by heartline-blocking and heartline-async).
use heartline_tungstenite::client::{
    BoxError, ClientBuilder, ClientEvent, ClientHandle, ConnectTarget,
};

/// What a read from the client's events gave.
#[derive(Debug)]
pub enum Next {
    /// An event.
    Event(ClientEvent),
    /// The events ended: the client is closed for good.
    Ended,
    /// Nothing before the deadline.
    TimedOut,
}

/// A client's events, whatever the flavour.
pub trait EventSource {
    /// The next event, waiting until `deadline` at most.
    fn next_before(&mut self, deadline: Instant) -> Next;
}

/// A per-attempt callback, as the builders take it.
pub type OnConnect = Box<dyn Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync>;

/// How to build the client in a scenario.
pub struct Setup {
    /// The core's configuration.
    pub config: ClientConfig,
    /// The per-attempt callback.
    pub on_connect: Option<OnConnect>,
    /// An extra trusted root certificate (DER) for `wss://`.
    pub tls_root: Option<Vec<u8>>,
    /// The write timeout, if not the default.
    pub write_timeout: Option<Duration>,
    /// The largest inbound message, if not the default.
    pub max_message_size: Option<usize>,
}

impl Setup {
    /// [`fast_config`], nothing else.
    pub fn fast() -> Setup {
        Setup {
            config: fast_config(),
            on_connect: None,
            tls_root: None,
            write_timeout: None,
            max_message_size: None,
        }
    }

    /// The builder for `url` with these settings, whatever the flavour.
    pub fn builder(self, url: &str) -> ClientBuilder {
        let mut builder = ClientBuilder::new(url).config(self.config).seed(7);
        if let Some(f) = self.on_connect {
            builder = builder.on_connect(f);
        }
        if let Some(der) = self.tls_root {
            builder = builder.tls_root_certificate(der);
        }
        if let Some(timeout) = self.write_timeout {
            builder = builder.write_timeout(timeout);
        }
        if let Some(bytes) = self.max_message_size {
            builder = builder.max_message_size(Some(bytes));
        }
        builder
    }
}

/// A started client of some flavour.
pub type Started = (ClientHandle, Box<dyn EventSource>);

/// Starts a client of one flavour for `url`.
pub type Start = fn(&str, Setup) -> Started;

/// Millisecond heartbeat and backoff, so each scenario takes a fraction of a second.
/// The 250 ms reply timeout leaves room for a loaded test machine: a spurious
/// heartbeat miss would reconnect in the middle of a scenario.
pub fn fast_config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.heartbeat.interval = Duration::from_millis(50);
    config.heartbeat.timeout = Duration::from_millis(250);
    config.reconnect.backoff = Backoff::Fixed(Duration::from_millis(50));
    config.reconnect.jitter = Jitter::None;
    config.connect_timeout = Duration::from_secs(2);
    config.close_timeout = Duration::from_secs(2);
    config
}

/// Reads events until one satisfies `want`; returns everything read, that one last.
/// Fails the test, showing what came, if none does within [`PATIENCE`].
pub fn wait_for(
    events: &mut dyn EventSource,
    what: &str,
    mut want: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match events.next_before(deadline) {
            Next::Event(event) => {
                let done = want(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
            other => panic!("no {what} ({other:?}); events: {seen:#?}"),
        }
    }
}

/// Reads until the events end; fails if they do not within [`PATIENCE`].
pub fn wait_for_end(events: &mut dyn EventSource) -> Vec<ClientEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match events.next_before(deadline) {
            Next::Event(event) => seen.push(event),
            Next::Ended => return seen,
            Next::TimedOut => panic!("events did not end; events: {seen:#?}"),
        }
    }
}

fn is_open(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Notice(Notice::Open { .. }))
}

fn is_text(e: &ClientEvent, want: &str) -> bool {
    matches!(e, ClientEvent::Text(t) if t.as_str() == want)
}

fn is_notice(e: &ClientEvent, want: fn(&Notice) -> bool) -> bool {
    matches!(e, ClientEvent::Notice(n) if want(n))
}

/// The server dies: the client reports it, backs off and retries; messages sent
/// meanwhile are queued; when the server is back they arrive once each, in order.
pub fn server_dies_and_returns(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    client.send_text("before").unwrap();
    wait_for(events, "echo", |e| is_text(e, "before"));

    let addr = server.kill();
    let seen = wait_for(events, "reconnect scheduled", |e| {
        is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
    });
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::Closed {
                by: Initiator::Transport,
                ..
            }
        ))),
        "the loss is reported as a transport close: {seen:#?}"
    );
    // While the server is down every message is queued, none refused.
    for m in ["m1", "m2", "m3"] {
        client.send_text(m).unwrap();
    }
    assert_eq!(client.buffered_amount(), 6);
    // At least one more attempt fails and is rescheduled while the server is away.
    wait_for(events, "failed attempt", |e| {
        is_notice(e, |n| matches!(n, Notice::ConnectFailed { .. }))
    });
    wait_for(events, "next reconnect", |e| {
        is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
    });

    let server = TestServer::restart_on(addr);
    wait_for(events, "open again", is_open);
    let seen = wait_for(events, "last queued echo", |e| is_text(e, "m3"));
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

/// The server keeps TCP open but stops answering: the heartbeat notices, the client
/// drops the connection and comes back.
pub fn half_open_server(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    server.freeze();
    let seen = wait_for(events, "heartbeat missed", |e| {
        is_notice(e, |n| matches!(n, Notice::HeartbeatMissed { .. }))
    });
    assert!(
        !seen
            .iter()
            .any(|e| is_notice(e, |n| matches!(n, Notice::Closed { .. }))),
        "nothing closed the connection before the heartbeat did: {seen:#?}"
    );
    let seen = wait_for(events, "reconnect", |e| {
        is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
    });
    assert!(
        is_notice(&seen[0], |n| matches!(
            n,
            Notice::Closed {
                by: Initiator::Local,
                code: 1006,
                ..
            }
        )),
        "{seen:#?}"
    );
    // The frozen server still completes handshakes: the client comes back.
    wait_for(events, "open again", is_open);
    assert_eq!(server.requests().len(), 2);
    drop(client);
}

/// `close()`: the close handshake, then nothing: no new attempt, sends refused, the
/// events end.
pub fn close_stops_for_good(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    client.close(1000, "bye").unwrap();
    let seen = wait_for_end(events);
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::Closed {
                code: 1000,
                by: Initiator::Local,
                ..
            }
        ))),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| is_notice(e, |n| matches!(n, Notice::Connecting { .. }))),
        "no attempt after close: {seen:#?}"
    );
    assert_eq!(client.state(), ReadyState::Closed);
    let err = client.send_text("late").unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(server.requests().len(), 1);
}

/// A 401 answer to the upgrade: the client gives up at once and says why.
pub fn http_401_gives_up(start: Start) {
    let server = TestServer::start();
    server.reject_with(401);
    let (client, mut events) = start(&server.url(), Setup::fast());
    let seen = wait_for_end(events.as_mut());
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::ConnectFailed {
                error: ConnectFailure::Http { status: 401, .. },
                ..
            }
        ))),
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
    // The client is done: a late reconnect request cannot revive it half-way.
    client.reconnect_now();
    assert_eq!(client.state(), ReadyState::Closed);
    assert_eq!(server.requests().len(), 1);
}

/// A 503 with `Retry-After`: the client reports both and waits as long as asked
/// (longer than its own 50 ms backoff) before the next attempt.
pub fn retry_after_is_honoured(start: Start) {
    let server = TestServer::start();
    server.reject_with_retry_after(503, 2);
    let (client, mut events) = start(&server.url(), Setup::fast());
    let seen = wait_for(events.as_mut(), "reconnect scheduled", |e| {
        is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
    });
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::ConnectFailed {
                error: ConnectFailure::Http {
                    status: 503,
                    retry_after: Some(d)
                },
                ..
            } if *d == Duration::from_secs(2)
        ))),
        "{seen:#?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Notice(Notice::ReconnectScheduled { delay, .. }))
                if *delay == Duration::from_secs(2)
        ),
        "{seen:#?}"
    );
    client.close(1000, "").unwrap();
    wait_for_end(events.as_mut());
    assert_eq!(server.requests().len(), 1);
}

/// An application heartbeat (seed 002's style: a message the server echoes): the
/// echoes prove the server alive and give round-trip times, and the application never
/// sees them; a half-open server is still noticed.
pub fn app_heartbeat_echoed(start: Start) {
    use heartline_core::{AppHeartbeat, HeartbeatKind, Message};
    let server = TestServer::start();
    let mut setup = Setup::fast();
    setup.config.heartbeat.kind = HeartbeatKind::App(AppHeartbeat::echo(Message::Text(
        r#"{"type":"heart_beat"}"#.to_owned(),
    )));
    setup.config.heartbeat.any_frame_is_alive = false;
    let (client, mut events) = start(&server.url(), setup);
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    let mut rtts = 0;
    let seen = wait_for(events, "three round trips", |e| {
        rtts += usize::from(is_notice(e, |n| matches!(n, Notice::Rtt(_))));
        rtts == 3
    });
    assert!(
        !seen.iter().any(|e| matches!(e, ClientEvent::Text(_))),
        "heartbeat echoes are not delivered: {seen:#?}"
    );
    assert!(server.received().len() >= 3);
    assert!(server
        .received()
        .iter()
        .all(|t| t == r#"{"type":"heart_beat"}"#));
    server.freeze();
    wait_for(events, "heartbeat missed", |e| {
        is_notice(e, |n| matches!(n, Notice::HeartbeatMissed { .. }))
    });
    drop(client);
}

/// The server closes with a code configured as terminal (4409, replaced): the client
/// reports the close as the server's, with its code and reason, and gives up.
pub fn terminal_close_code_gives_up(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    server.close_all(4409, "replaced");
    let seen = wait_for_end(events);
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::Closed { code: 4409, reason, by: Initiator::Remote, .. } if reason == "replaced"
        ))),
        "{seen:#?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Notice(Notice::GaveUp {
                reason: GiveUpReason::CloseCode { code: 4409, .. }
            }))
        ),
        "{seen:#?}"
    );
    assert_eq!(client.state(), ReadyState::Closed);
    assert_eq!(server.requests().len(), 1);
}

/// Every attempt asks the callback for its target: a fresh token each time.
pub fn fresh_headers_per_attempt(start: Start) {
    let server = TestServer::start();
    let url = server.url();
    let issued = Arc::new(Counter::new(0));
    let counter = Arc::clone(&issued);
    let on_connect: OnConnect = Box::new(move |_attempt| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Ok(ConnectTarget::new(url.clone()).header("Authorization", format!("Bearer t{n}")))
    });
    let setup = Setup {
        on_connect: Some(on_connect),
        ..Setup::fast()
    };
    let (client, mut events) = start("ws://unused.invalid/", setup);
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    client.reconnect_now();
    wait_for(events, "open again", is_open);
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

/// A message far larger than the 4 KiB buffers goes out and comes back whole.
pub fn large_messages_pass_small_buffers(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    client.send_binary(payload.clone()).unwrap();
    let seen = wait_for(events, "echo", |e| matches!(e, ClientEvent::Binary(_)));
    assert!(
        matches!(seen.last(), Some(ClientEvent::Binary(b)) if b[..] == payload[..]),
        "the echo differs"
    );
}

/// A callback that panics fails that attempt only: the client reports it, backs off
/// and connects with the next answer.
pub fn a_panicking_callback_fails_one_attempt(start: Start) {
    let server = TestServer::start();
    let url = server.url();
    let calls = Arc::new(Counter::new(0));
    let counter = Arc::clone(&calls);
    let on_connect: OnConnect = Box::new(move |_attempt| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("token service unavailable (a panic the test provokes)");
        }
        Ok(ConnectTarget::new(url.clone()))
    });
    let setup = Setup {
        on_connect: Some(on_connect),
        ..Setup::fast()
    };
    let (_client, mut events) = start("ws://unused.invalid/", setup);
    let seen = wait_for(events.as_mut(), "open", is_open);
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::ConnectFailed { error: ConnectFailure::Io(e), .. } if e.contains("panicked")
        ))),
        "{seen:#?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The application reads no events at all while the server pings: the Pongs still go
/// out, and the client's own heartbeat keeps the connection.
pub fn pongs_flow_while_the_application_does_not_read(start: Start) {
    let server = TestServer::start();
    let (client, mut events) = start(&server.url(), Setup::fast());
    wait_for(events.as_mut(), "open", is_open);
    server.start_pinging();
    client.send_text("unread").unwrap();
    // Not reading events: only the server's count of Pongs is watched.
    let deadline = Instant::now() + PATIENCE;
    while server.pongs() < 20 {
        assert!(
            Instant::now() < deadline,
            "only {} pongs came back",
            server.pongs()
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(client.state(), ReadyState::Open);
    // Everything the client reported meanwhile is still waiting, nothing went wrong.
    client.close(1000, "done").unwrap();
    let seen = wait_for_end(events.as_mut());
    assert!(seen.iter().any(|e| is_text(e, "unread")), "{seen:#?}");
    assert!(
        !seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::HeartbeatMissed { .. } | Notice::ReconnectScheduled { .. }
        ))),
        "{seen:#?}"
    );
    assert_eq!(server.requests().len(), 1);
}

/// A burst that arrives in one read and holds more messages than a client takes in one
/// turn is delivered whole and in order, though nothing arrives after it: the
/// heartbeat is slowed down so that no Pong wakes the client meanwhile.
pub fn a_burst_is_delivered_whole(start: Start) {
    const BURST: usize = 300;
    let server = TestServer::start();
    let mut setup = Setup::fast();
    setup.config.heartbeat.interval = Duration::from_secs(60);
    setup.config.heartbeat.timeout = Duration::from_secs(60);
    let (client, mut events) = start(&server.url(), setup);
    wait_for(events.as_mut(), "open", is_open);
    client.send_text(format!("burst:{BURST}")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < BURST {
        match events.next_before(deadline) {
            Next::Event(ClientEvent::Text(t)) => got.push(t.as_str().to_owned()),
            Next::Event(_) => {}
            other => panic!("after {} of {BURST} messages: {other:?}", got.len()),
        }
    }
    let expected: Vec<String> = (0..BURST).map(|i| format!("b{i}")).collect();
    assert_eq!(got, expected);
    client.close(1000, "done").unwrap();
}

/// `wss://` to a server with a self-signed certificate: trusted once its root is given,
/// refused (with a certificate error, and no endless retries) without it.
pub fn wss_with_a_custom_root(start: Start) {
    let server = TlsEchoServer::start();
    let setup = Setup {
        tls_root: Some(server.cert_der.clone()),
        ..Setup::fast()
    };
    let (client, mut events) = start(&server.url(), setup);
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    client.send_text("secure").unwrap();
    wait_for(events, "echo", |e| is_text(e, "secure"));
    client.close(1000, "done").unwrap();
    wait_for_end(events);

    let mut setup = Setup::fast();
    setup.config.reconnect.max_attempts = Some(0);
    let (_client, mut events) = start(&server.url(), setup);
    let seen = wait_for_end(events.as_mut());
    assert!(
        seen.iter().any(|e| is_notice(e, |n| matches!(
            n,
            Notice::ConnectFailed { error: ConnectFailure::Io(e), .. } if e.contains("certificate")
        ))),
        "{seen:#?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Notice(Notice::GaveUp { .. }))
        ),
        "{seen:#?}"
    );
}

/// A server that keeps the connection but stops reading: the client's writes stall,
/// and after the write timeout the client drops the connection, says why, and comes
/// back. The heartbeat is off, so only the write timeout can notice.
pub fn stalled_writes_time_out(start: Start) {
    let server = TestServer::start();
    let mut setup = Setup::fast();
    setup.config.heartbeat.kind = heartline_core::HeartbeatKind::Off;
    setup.write_timeout = Some(Duration::from_millis(300));
    let (client, mut events) = start(&server.url(), setup);
    let events = events.as_mut();
    wait_for(events, "open", is_open);
    server.freeze();
    // Far more than the kernel buffers on both sides hold (a few MB on loopback).
    let chunk = vec![7u8; 1 << 20];
    let accepted = (0..64)
        .filter(|_| client.send_binary(chunk.clone()).is_ok())
        .count();
    assert!(accepted > 8, "only {accepted} sends were accepted");
    let seen = wait_for(events, "the connection closed", |e| {
        is_notice(e, |n| matches!(n, Notice::Closed { .. }))
    });
    match seen.last() {
        Some(ClientEvent::Notice(Notice::Closed { reason, .. })) => {
            assert!(
                reason.contains("write timed out"),
                "closed because {reason:?}"
            );
        }
        other => panic!("not a Closed notice: {other:?}"),
    }
    // The frozen server still completes handshakes: the client comes back.
    wait_for(events, "open again", is_open);
    drop(client);
}

/// One `#[test]` per scenario for the flavour that `$start` (a [`Start`]) starts. The
/// including test file names this module `common`.
macro_rules! client_scenario_tests {
    ($start:path) => {
        #[test]
        fn a_server_that_breaks_the_protocol_gets_the_close_code_for_it() {
            common::client_violations::violations_get_their_close_codes($start);
        }

        #[test]
        fn reconnects_after_the_server_dies_and_delivers_what_was_sent_meanwhile() {
            common::client_scenarios::server_dies_and_returns($start);
        }

        #[test]
        fn a_half_open_server_is_noticed_by_the_heartbeat_and_left() {
            common::client_scenarios::half_open_server($start);
        }

        #[test]
        fn close_stops_for_good() {
            common::client_scenarios::close_stops_for_good($start);
        }

        #[test]
        fn a_401_handshake_gives_up_and_says_why() {
            common::client_scenarios::http_401_gives_up($start);
        }

        #[test]
        fn a_503_with_retry_after_delays_the_next_attempt_as_asked() {
            common::client_scenarios::retry_after_is_honoured($start);
        }

        #[test]
        fn an_echoed_app_heartbeat_keeps_the_connection_and_is_not_delivered() {
            common::client_scenarios::app_heartbeat_echoed($start);
        }

        #[test]
        fn a_terminal_close_code_from_the_server_gives_up() {
            common::client_scenarios::terminal_close_code_gives_up($start);
        }

        #[test]
        fn each_attempt_takes_fresh_headers_from_the_callback() {
            common::client_scenarios::fresh_headers_per_attempt($start);
        }

        #[test]
        fn a_large_message_passes_the_small_buffers() {
            common::client_scenarios::large_messages_pass_small_buffers($start);
        }

        #[test]
        fn a_panicking_connect_callback_fails_one_attempt() {
            common::client_scenarios::a_panicking_callback_fails_one_attempt($start);
        }

        #[test]
        fn a_burst_larger_than_a_read_batch_is_delivered_whole() {
            common::client_scenarios::a_burst_is_delivered_whole($start);
        }

        #[test]
        fn pongs_go_out_while_the_application_does_not_read() {
            common::client_scenarios::pongs_flow_while_the_application_does_not_read($start);
        }

        #[test]
        fn a_server_that_stops_reading_is_left_after_the_write_timeout() {
            common::client_scenarios::stalled_writes_time_out($start);
        }

        #[test]
        fn wss_with_a_self_signed_certificate_and_its_root() {
            common::client_scenarios::wss_with_a_custom_root($start);
        }
    };
}
