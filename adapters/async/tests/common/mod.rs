//! Shared by the async client tests: the controllable test server (the same one the
//! blocking adapter's tests use), a fast configuration, and the scenarios, written once
//! and run on each runtime by `smol_client.rs` and `async_std_client.rs`.
#![allow(dead_code)]

#[path = "../../../blocking/tests/common/mod.rs"]
mod server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{future, StreamExt};
use heartline_async::{
    BuildError, ClientBuilder, ClientEvent, ClientEvents, ClientHandle, ConnectTarget,
};
use heartline_core::{
    Backoff, ClientConfig, ConnectFailure, GiveUpReason, Initiator, Jitter, Notice, ReadyState,
    SendErrorKind,
};
pub use server::{TestServer, PATIENCE};

/// Starts a client on some runtime: `heartline_async::smol::connect` and friends.
pub type Connect = fn(ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError>;

/// Millisecond heartbeat and backoff, so each scenario takes a fraction of a second.
pub fn fast_config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.heartbeat.interval = Duration::from_millis(50);
    config.heartbeat.timeout = Duration::from_millis(100);
    config.reconnect.backoff = Backoff::Fixed(Duration::from_millis(50));
    config.reconnect.jitter = Jitter::None;
    config.connect_timeout = Duration::from_secs(2);
    config.close_timeout = Duration::from_secs(2);
    config
}

fn builder(url: &str) -> ClientBuilder {
    ClientBuilder::new(url).config(fast_config()).seed(7)
}

/// Reads events until one satisfies `want`; returns everything read, that one last.
/// Fails the test, showing what came, if none does within [`PATIENCE`].
pub async fn wait_for(
    events: &mut ClientEvents,
    what: &str,
    mut want: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let found = future::or(
        async {
            while let Some(event) = events.next().await {
                let done = want(&event);
                seen.push(event);
                if done {
                    return true;
                }
            }
            false
        },
        async {
            async_io::Timer::after(PATIENCE).await;
            false
        },
    )
    .await;
    assert!(found, "no {what}; events: {seen:#?}");
    seen
}

/// Reads until the stream ends; fails if it does not end within [`PATIENCE`].
pub async fn wait_for_end(events: &mut ClientEvents) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let ended = future::or(
        async {
            while let Some(event) = events.next().await {
                seen.push(event);
            }
            true
        },
        async {
            async_io::Timer::after(PATIENCE).await;
            false
        },
    )
    .await;
    assert!(ended, "event stream did not end; events: {seen:#?}");
    seen
}

fn is_open(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Notice(Notice::Open { .. }))
}

fn is_text(e: &ClientEvent, want: &str) -> bool {
    matches!(e, ClientEvent::Text(t) if t.as_str() == want)
}

pub async fn server_dies_and_returns(connect: Connect) {
    let server = TestServer::start();
    let (client, mut events) = connect(builder(&server.url())).unwrap();
    wait_for(&mut events, "open", is_open).await;
    client.send_text("before").unwrap();
    wait_for(&mut events, "echo", |e| is_text(e, "before")).await;

    let addr = server.kill();
    let seen = wait_for(&mut events, "reconnect scheduled", |e| {
        matches!(e, ClientEvent::Notice(Notice::ReconnectScheduled { .. }))
    })
    .await;
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
    wait_for(&mut events, "failed attempt", |e| {
        matches!(e, ClientEvent::Notice(Notice::ConnectFailed { .. }))
    })
    .await;

    let server = TestServer::restart_on(addr);
    wait_for(&mut events, "open again", is_open).await;
    let seen = wait_for(&mut events, "last queued echo", |e| is_text(e, "m3")).await;
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

pub async fn half_open_server(connect: Connect) {
    let server = TestServer::start();
    let (client, mut events) = connect(builder(&server.url())).unwrap();
    wait_for(&mut events, "open", is_open).await;
    server.freeze();
    let seen = wait_for(&mut events, "heartbeat missed", |e| {
        matches!(e, ClientEvent::Notice(Notice::HeartbeatMissed { .. }))
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Notice(Notice::Closed { .. }))),
        "nothing closed the connection before the heartbeat did: {seen:#?}"
    );
    let seen = wait_for(&mut events, "reconnect", |e| {
        matches!(e, ClientEvent::Notice(Notice::ReconnectScheduled { .. }))
    })
    .await;
    assert!(matches!(
        &seen[0],
        ClientEvent::Notice(Notice::Closed {
            by: Initiator::Local,
            code: 1006,
            ..
        })
    ));
    // The frozen server still completes handshakes: the client comes back.
    wait_for(&mut events, "open again", is_open).await;
    assert_eq!(server.requests().len(), 2);
    drop(client);
}

pub async fn close_stops_for_good(connect: Connect) {
    let server = TestServer::start();
    let (client, mut events) = connect(builder(&server.url())).unwrap();
    wait_for(&mut events, "open", is_open).await;
    client.close(1000, "bye").unwrap();
    let seen = wait_for_end(&mut events).await;
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

pub async fn http_401_gives_up(connect: Connect) {
    let server = TestServer::start();
    server.reject_with(401);
    let (client, mut events) = connect(builder(&server.url())).unwrap();
    let seen = wait_for_end(&mut events).await;
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

pub async fn fresh_headers_per_attempt(connect: Connect) {
    let server = TestServer::start();
    let url = server.url();
    let issued = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&issued);
    let builder = ClientBuilder::new("ws://unused.invalid/")
        .config(fast_config())
        .on_connect(move |_attempt| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Ok(ConnectTarget::new(url.clone()).header("Authorization", format!("Bearer t{n}")))
        });
    let (client, mut events) = connect(builder).unwrap();
    wait_for(&mut events, "open", is_open).await;
    client.reconnect_now();
    wait_for(&mut events, "open again", is_open).await;
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
