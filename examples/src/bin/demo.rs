//! heartline in fifteen seconds: a client that keeps its connection alive and honest.
//!
//! ```text
//! cargo run -p heartline-examples --bin demo
//! ```
//!
//! One process starts a local echo server, connects a heartline client (smol adapter,
//! short intervals so everything happens quickly), and then treats the server badly:
//!
//! 1. messages go back and forth; heartbeats measure the round trip;
//! 2. the server is killed: the client notices, backs off with growing delays;
//! 3. messages sent meanwhile are queued;
//! 4. the server comes back on the same port: the client reconnects by itself and the
//!    queued messages arrive, in order;
//! 5. the server freezes (connection open, nothing answered): the heartbeat notices;
//! 6. the client closes.
//!
//! Everything is printed as a timeline. The program ends by itself and exits 0 when
//! every step behaved as described, 1 otherwise.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use heartline_async::{ClientBuilder, ClientEvent, ClientEvents, ClientHandle};
use heartline_core::{close_code, Backoff, ClientConfig, Jitter, Notice};
use heartline_examples::echo::{EchoServer, ServerEvent};
use heartline_examples::events::describe;

/// Prints timeline lines, `[  1.234s] who: what`.
#[derive(Clone, Copy)]
struct Timeline {
    start: Instant,
}

impl Timeline {
    fn say(&self, who: &str, what: &str) {
        let t = self.start.elapsed().as_secs_f64();
        // A closed stdout (`demo | head`) is no reason to stop the demo or panic.
        let _ = writeln!(std::io::stdout(), "[{t:7.3}s] {who:<6} {what}");
    }
}

fn main() -> ExitCode {
    let timeline = Timeline {
        start: Instant::now(),
    };
    match smol::block_on(demo(timeline)) {
        Ok(()) => {
            timeline.say("demo", "done: every step behaved as described");
            ExitCode::SUCCESS
        }
        Err(e) => {
            timeline.say("demo", &format!("FAILED: {e}"));
            ExitCode::from(1)
        }
    }
}

fn start_server(addr: SocketAddr, timeline: Timeline) -> Result<EchoServer, String> {
    let server = EchoServer::start_observed(addr, move |event| {
        let what = match event {
            ServerEvent::Accepted(peer) => format!("accepted {peer}"),
            ServerEvent::Echoed(text) => format!("echoed {text:?}"),
            ServerEvent::EchoedBinary(len) => format!("echoed {len} bytes"),
            ServerEvent::Disconnected(peer) => format!("connection from {peer} ended"),
        };
        timeline.say("server", &what);
    })
    .map_err(|e| format!("cannot start the echo server on {addr}: {e}"))?;
    timeline.say(
        "server",
        &format!("echo server listening on ws://{}", server.addr()),
    );
    Ok(server)
}

/// The client's side of the demo: its events, printed as they come, and waits for the
/// ones the next step depends on.
struct Watch {
    events: ClientEvents,
    timeline: Timeline,
    /// Texts echoed back, in arrival order.
    received: Vec<String>,
}

impl Watch {
    /// The next event (`Some(None)` once the stream ended), or `None` at `deadline`.
    async fn next_before(&mut self, deadline: Instant) -> Option<Option<ClientEvent>> {
        future::or(async { Some(self.events.recv().await) }, async {
            Timer::at(deadline).await;
            None
        })
        .await
    }

    /// Prints events until one matches `want`; fails after `patience`.
    async fn until(
        &mut self,
        what: &str,
        patience: Duration,
        want: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, String> {
        let deadline = Instant::now() + patience;
        loop {
            let event = match self.next_before(deadline).await {
                Some(Some(event)) => event,
                Some(None) => return Err(format!("the client stopped before {what}")),
                None => return Err(format!("no {what} within {patience:?}")),
            };
            self.show(&event);
            if want(&event) {
                return Ok(event);
            }
        }
    }

    fn show(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Notice(notice) => self.timeline.say("client", &describe(notice)),
            ClientEvent::Text(text) => {
                self.timeline
                    .say("client", &format!("<- {:?}", text.as_str()));
                self.received.push(text.as_str().to_owned());
            }
            ClientEvent::Binary(data) => self
                .timeline
                .say("client", &format!("<- {} bytes", data.len())),
            _ => {}
        }
    }

    /// Prints the events that already happened, then the heading of the next step.
    fn step(&mut self, heading: &str) {
        while let Some(event) = self.events.try_recv() {
            self.show(&event);
        }
        self.timeline.say("demo", &format!("== {heading}"));
    }

    /// Prints what is left until the event stream ends.
    async fn drain(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            match self.next_before(deadline).await {
                Some(Some(event)) => self.show(&event),
                Some(None) => return Ok(()),
                None => return Err(format!("the client did not finish within {patience:?}")),
            }
        }
    }
}

fn is_notice(event: &ClientEvent, f: impl Fn(&Notice) -> bool) -> bool {
    matches!(event, ClientEvent::Notice(n) if f(n))
}

fn send(timeline: Timeline, client: &ClientHandle, text: &str) -> Result<(), String> {
    client
        .send_text(text)
        .map_err(|e| format!("send {text:?}: {e}"))?;
    timeline.say("client", &format!("-> {text:?}"));
    Ok(())
}

async fn pause(ms: u64) {
    Timer::after(Duration::from_millis(ms)).await;
}

async fn demo(timeline: Timeline) -> Result<(), String> {
    let server = start_server(([127, 0, 0, 1], 0).into(), timeline)?;
    let addr = server.addr();

    // Short intervals so the whole story fits in a few seconds; the defaults are
    // 20 s / 10 s / 1-30 s, sized for real networks.
    let mut config = ClientConfig::default();
    config.heartbeat.interval = Duration::from_millis(300);
    config.heartbeat.timeout = Duration::from_millis(600);
    config.reconnect.backoff =
        Backoff::exponential(Duration::from_millis(200), Duration::from_secs(2));
    config.reconnect.jitter = Jitter::Equal;
    config.connect_timeout = Duration::from_millis(900);
    timeline.say(
        "demo",
        "client: ping after 300 ms of quiet, pong timeout 600 ms, \
         backoff 200 ms doubling to 2 s (equal jitter)",
    );
    let (client, events) = heartline_async::smol::connect(
        ClientBuilder::new(format!("ws://{addr}/demo")).config(config),
    )
    .map_err(|e| format!("cannot build the client: {e}"))?;
    let mut watch = Watch {
        events,
        timeline,
        received: Vec::new(),
    };
    let patience = Duration::from_secs(3);

    watch.step("1. connect and exchange messages");
    watch
        .until("open", patience, |e| {
            is_notice(e, |n| matches!(n, Notice::Open { .. }))
        })
        .await?;
    for text in ["hello", "heartline"] {
        send(timeline, &client, text)?;
    }
    watch
        .until(
            "the echo of \"heartline\"",
            patience,
            |e| matches!(e, ClientEvent::Text(t) if t.as_str() == "heartline"),
        )
        .await?;
    timeline.say("demo", "idle: the client pings when the line is quiet");
    for _ in 0..2 {
        watch
            .until("a heartbeat round trip", patience, |e| {
                is_notice(e, |n| matches!(n, Notice::Rtt(_)))
            })
            .await?;
    }

    watch.step("2. kill the server (no Close frame, like a crash)");
    server.kill();
    watch
        .until("the client noticing", patience, |e| {
            is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
        })
        .await?;

    watch.step("3. send while the server is down: the messages are queued");
    let queued = ["queued 1", "queued 2", "queued 3"];
    for text in queued {
        send(timeline, &client, text)?;
    }
    timeline.say(
        "client",
        &format!("buffered_amount = {} bytes", client.buffered_amount()),
    );
    watch
        .until(
            "a third reconnect attempt scheduled",
            Duration::from_secs(5),
            |e| {
                is_notice(
                    e,
                    |n| matches!(n, Notice::ReconnectScheduled { attempt, .. } if *attempt >= 3),
                )
            },
        )
        .await?;

    watch.step("4. restart the server on the same port");
    let server = start_server(addr, timeline)?;
    watch
        .until("open again", Duration::from_secs(5), |e| {
            is_notice(e, |n| matches!(n, Notice::Open { .. }))
        })
        .await?;
    watch
        .until(
            "the last queued message echoed",
            patience,
            |e| matches!(e, ClientEvent::Text(t) if t.as_str() == "queued 3"),
        )
        .await?;
    let got: Vec<&str> = watch
        .received
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("queued"))
        .collect();
    if got != queued {
        return Err(format!("queued messages came back as {got:?}"));
    }
    timeline.say("demo", "all queued messages delivered, in order, once");

    watch.step("5. freeze the server: the connection stays open, nothing is answered");
    pause(100).await;
    server.freeze();
    watch
        .until("the heartbeat noticing", patience, |e| {
            is_notice(e, |n| matches!(n, Notice::HeartbeatMissed { .. }))
        })
        .await?;
    watch
        .until("a reconnect scheduled", patience, |e| {
            is_notice(e, |n| matches!(n, Notice::ReconnectScheduled { .. }))
        })
        .await?;
    // Let one attempt at the frozen server show its connect timeout (after a backoff
    // of up to 1.6 s: the attempt counter has not reset since step 2).
    watch
        .until(
            "the frozen server's handshake timing out",
            Duration::from_secs(5),
            |e| is_notice(e, |n| matches!(n, Notice::ConnectFailed { .. })),
        )
        .await?;

    watch.step("6. close the client");
    client
        .close(close_code::NORMAL, "demo over")
        .map_err(|e| e.to_string())?;
    drop(client);
    watch.drain(patience).await?;
    server.kill();
    timeline.say("demo", "client closed for good; server stopped");
    Ok(())
}
