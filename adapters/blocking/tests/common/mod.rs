//! What the client tests share, for every flavour: a WebSocket server on 127.0.0.1
//! that the test controls, and the scenarios, written once and run against the
//! blocking client here and the async client on smol and async-std (the async adapter's
//! tests include this file).
//!
//! The server echoes text and binary messages and records the texts it received; it
//! can be frozen (keeps the TCP connections open but stops reading, so Pings go
//! unanswered: a half-open peer), killed (listener and connections gone), restarted on
//! the same port, made to answer the upgrade with an HTTP status, or made to ping its
//! clients and count their Pongs.
#![allow(dead_code)]

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::Message;

/// Upper bound for any wait in a test: far above what any step needs (tens of ms), so
/// a slow machine never fails a test, while a bug still ends it.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// Texts received, in order, across all connections.
    received: Mutex<Vec<String>>,
    /// Request headers of every upgrade, in order.
    requests: Mutex<Vec<Vec<(String, String)>>>,
    /// Live connections (clones), so a kill can shut them down.
    conns: Mutex<Vec<TcpStream>>,
    frozen: AtomicBool,
    stopped: AtomicBool,
    /// Non-zero: answer the upgrade with this HTTP status.
    reject: AtomicU16,
    /// With `reject`: a `Retry-After` header, in seconds (0: none).
    retry_after: AtomicU32,
    /// Send a Ping every 10 ms on every connection.
    pinging: AtomicBool,
    /// Pongs received.
    pongs: AtomicU32,
    /// Set: send a Close frame with this code and reason on every connection.
    close_with: Mutex<Option<(u16, String)>>,
}

/// A running test server. Dropping it kills it.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server on an ephemeral port.
    pub fn start() -> TestServer {
        TestServer::bind("127.0.0.1:0".parse().unwrap())
    }

    /// A new server on `addr` (the port of a killed one), keeping nothing of the old.
    pub fn restart_on(addr: SocketAddr) -> TestServer {
        TestServer::bind(addr)
    }

    fn bind(addr: SocketAddr) -> TestServer {
        let listener = TcpListener::bind(addr).expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    st.conns.lock().unwrap().push(clone);
                }
                let st = Arc::clone(&st);
                thread::spawn(move || serve(stream, st));
            }
        });
        TestServer {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The address (to restart on after a kill).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops reading and answering on every connection, keeping TCP open.
    pub fn freeze(&self) {
        self.state.frozen.store(true, Ordering::SeqCst);
    }

    /// Answers every upgrade from now on with `status`.
    pub fn reject_with(&self, status: u16) {
        self.state.reject.store(status, Ordering::SeqCst);
    }

    /// Answers every upgrade from now on with `status` and `Retry-After: seconds`.
    pub fn reject_with_retry_after(&self, status: u16, seconds: u32) {
        self.state.retry_after.store(seconds, Ordering::SeqCst);
        self.reject_with(status);
    }

    /// Closes every connection with a Close frame carrying `code` and `reason`.
    pub fn close_all(&self, code: u16, reason: &str) {
        *self.state.close_with.lock().unwrap() = Some((code, reason.to_owned()));
    }

    /// Pings every connection every 10 ms from now on.
    pub fn start_pinging(&self) {
        self.state.pinging.store(true, Ordering::SeqCst);
    }

    /// Pongs received so far.
    pub fn pongs(&self) -> u32 {
        self.state.pongs.load(Ordering::SeqCst)
    }

    /// Texts received so far, in order.
    pub fn received(&self) -> Vec<String> {
        self.state.received.lock().unwrap().clone()
    }

    /// The request headers of each upgrade so far.
    pub fn requests(&self) -> Vec<Vec<(String, String)>> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Closes the listener and every connection (no close handshake), like a process
    /// that died. Returns the address, free to restart on.
    pub fn kill(mut self) -> SocketAddr {
        self.stop();
        self.addr
    }

    fn stop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        for conn in self.state.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stopped` and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: TcpStream, st: Arc<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(5)));
    let st2 = Arc::clone(&st);
    // The error type is tungstenite's, sized as it is.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        st2.requests.lock().unwrap().push(headers);
        let status = st2.reject.load(Ordering::SeqCst);
        if status != 0 {
            let mut err = ErrorResponse::new(Some("rejected".into()));
            *err.status_mut() = StatusCode::from_u16(status).unwrap();
            let seconds = st2.retry_after.load(Ordering::SeqCst);
            if seconds > 0 {
                err.headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            return Err(err);
        }
        Ok(resp)
    };
    let mut ws = match accept_patiently(stream, callback) {
        Some(ws) => ws,
        None => return,
    };
    let mut last_ping = Instant::now();
    let mut closing = false;
    loop {
        if st.stopped.load(Ordering::SeqCst) {
            return;
        }
        if !closing {
            if let Some((code, reason)) = st.close_with.lock().unwrap().clone() {
                closing = true;
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }));
            }
        }
        if st.pinging.load(Ordering::SeqCst) && last_ping.elapsed() >= Duration::from_millis(10) {
            last_ping = Instant::now();
            let _ = ws.send(Message::Ping(Vec::from(*b"server").into()));
        }
        if st.frozen.load(Ordering::SeqCst) {
            // Half-open: hold the connection, read nothing, answer nothing.
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                st.received.lock().unwrap().push(t.as_str().to_owned());
                let _ = ws.send(Message::Text(t));
            }
            Ok(Message::Binary(b)) => {
                let _ = ws.send(Message::Binary(b));
            }
            Ok(Message::Pong(_)) => {
                st.pongs.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {
                // Ping or Close: tungstenite queued the reply; send it now.
                let _ = ws.flush();
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                // A clone of the socket is kept for `kill`: shut it down explicitly
                // so the client sees the end of the connection.
                let _ = ws.get_ref().shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

type ServerWs = tungstenite::WebSocket<TcpStream>;

/// The server handshake over a socket with a short read timeout (retried until done).
fn accept_patiently<C>(stream: TcpStream, callback: C) -> Option<ServerWs>
where
    C: tungstenite::handshake::server::Callback,
{
    use tungstenite::handshake::HandshakeError;
    let deadline = Instant::now() + PATIENCE;
    let mut result = tungstenite::accept_hdr(stream, callback);
    loop {
        match result {
            Ok(ws) => return Some(ws),
            Err(HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                result = mid.handshake();
            }
            Err(_) => return None,
        }
    }
}

// ---- scenarios ----

use std::sync::atomic::AtomicU32 as Counter;

use heartline_blocking::{BoxError, ClientEvent, ClientHandle, ConnectTarget};
use heartline_core::{
    Backoff, ClientConfig, ConnectFailure, GiveUpReason, Initiator, Jitter, Notice, ReadyState,
    SendErrorKind,
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

impl EventSource for heartline_blocking::ClientEvents {
    fn next_before(&mut self, deadline: Instant) -> Next {
        use std::sync::mpsc::RecvTimeoutError;
        match self.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(event) => Next::Event(event),
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
            Err(RecvTimeoutError::Timeout) => Next::TimedOut,
        }
    }
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
}

impl Setup {
    /// [`fast_config`], nothing else.
    pub fn fast() -> Setup {
        Setup {
            config: fast_config(),
            on_connect: None,
            tls_root: None,
        }
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

/// A `wss://` echo server on 127.0.0.1 with a self-signed certificate for that address.
pub struct TlsEchoServer {
    addr: SocketAddr,
    /// The certificate, DER: the root a client must trust.
    pub cert_der: Vec<u8>,
    stopped: Arc<AtomicBool>,
}

impl TlsEchoServer {
    /// Generates the certificate and starts serving.
    pub fn start() -> TlsEchoServer {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("generate a certificate");
        let cert_der = certified.cert.der().to_vec();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone().into()], key)
            .expect("server TLS configuration");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(PATIENCE));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let tls = rustls::StreamOwned::new(conn, tcp);
                    let Ok(mut ws) = tungstenite::accept(tls) else {
                        return;
                    };
                    while let Ok(message) = ws.read() {
                        if message.is_text() || message.is_binary() {
                            let _ = ws.send(message);
                        } else {
                            let _ = ws.flush();
                        }
                    }
                });
            }
        });
        TlsEchoServer {
            addr,
            cert_der,
            stopped,
        }
    }

    /// `wss://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("wss://{}/", self.addr)
    }
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One `#[test]` per scenario for the flavour that `$start` (a [`Start`]) starts. The
/// including test file names this module `common`.
macro_rules! client_scenario_tests {
    ($start:path) => {
        #[test]
        fn reconnects_after_the_server_dies_and_delivers_what_was_sent_meanwhile() {
            common::server_dies_and_returns($start);
        }

        #[test]
        fn a_half_open_server_is_noticed_by_the_heartbeat_and_left() {
            common::half_open_server($start);
        }

        #[test]
        fn close_stops_for_good() {
            common::close_stops_for_good($start);
        }

        #[test]
        fn a_401_handshake_gives_up_and_says_why() {
            common::http_401_gives_up($start);
        }

        #[test]
        fn a_503_with_retry_after_delays_the_next_attempt_as_asked() {
            common::retry_after_is_honoured($start);
        }

        #[test]
        fn an_echoed_app_heartbeat_keeps_the_connection_and_is_not_delivered() {
            common::app_heartbeat_echoed($start);
        }

        #[test]
        fn a_terminal_close_code_from_the_server_gives_up() {
            common::terminal_close_code_gives_up($start);
        }

        #[test]
        fn each_attempt_takes_fresh_headers_from_the_callback() {
            common::fresh_headers_per_attempt($start);
        }

        #[test]
        fn pongs_go_out_while_the_application_does_not_read() {
            common::pongs_flow_while_the_application_does_not_read($start);
        }

        #[test]
        fn wss_with_a_self_signed_certificate_and_its_root() {
            common::wss_with_a_custom_root($start);
        }
    };
}
