//! The core alone, in virtual time: a scripted life of a client printed as a timeline.
//!
//! No socket and no clock: the script plays the network (a server that answers, then
//! freezes, then refuses, then comes back and finally says "go away") and the client's
//! decisions are printed as they are made. Runs in an instant, the same way every time.
//!
//! `cargo run -p heartline-examples --bin timeline`

use std::time::{Duration, Instant};

use heartline_core::{
    Action, Backoff, Client, ClientConfig, ConnId, ConnectError, Event, Frame, Jitter, Message,
};
use heartline_examples::events::describe;

struct Script {
    client: Client,
    start: Instant,
    now: Instant,
}

impl Script {
    fn say(&self, what: &str) {
        let t = (self.now - self.start).as_secs_f64();
        println!("[{t:>7.3}s] {what}");
    }

    /// Prints what the client did and asked for; returns the actions for the script.
    fn drain(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(n) = self.client.poll_notice() {
            self.say(&describe(&n));
        }
        while let Some(a) = self.client.poll_action() {
            self.say(&format!("    -> {}", describe_action(&a)));
            actions.push(a);
        }
        actions
    }

    /// Advances to the next deadline; returns what the client asked for then.
    fn wait(&mut self) -> Vec<Action> {
        let Some(next) = self.client.poll_timeout() else {
            return Vec::new();
        };
        self.now = next;
        self.client.handle_timeout(next);
        self.drain()
    }

    fn after(&mut self, ms: u64, event: Event<'_>) {
        self.now += Duration::from_millis(ms);
        self.client.handle_event(self.now, event);
    }
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Connect { conn, .. } => format!("connect {conn}"),
        Action::SendPing { conn, .. } => format!("ping on {conn}"),
        Action::SendHeartbeat { conn } => format!("heartbeat message on {conn}"),
        Action::Send { conn, message } => format!("send {message:?} on {conn}"),
        Action::Close { conn, code, reason } => format!("close {conn} with {code} \"{reason}\""),
        Action::Abort { conn } => format!("drop {conn}"),
    }
}

fn conn_of(actions: &[Action]) -> Option<ConnId> {
    actions.iter().find_map(|a| match a {
        Action::Connect { conn, .. } => Some(*conn),
        _ => None,
    })
}

fn main() {
    let mut config = ClientConfig::default();
    config.heartbeat.interval = Duration::from_secs(5);
    config.heartbeat.timeout = Duration::from_secs(2);
    config.reconnect.backoff =
        Backoff::exponential(Duration::from_millis(500), Duration::from_secs(8));
    config.reconnect.jitter = Jitter::Equal;
    config.reconnect.max_attempts = Some(5);
    let start = Instant::now();
    let client = match Client::new(config, 2026, start) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut s = Script {
        client,
        start,
        now: start,
    };
    println!("heartline timeline: one client, a scripted server, virtual time\n");

    let conn = conn_of(&s.drain()).expect("first connect");
    s.after(40, Event::Connected(conn));
    s.drain();
    s.say("app sends \"hello\"");
    let _ = s.client.send(s.now, Message::from("hello"));
    s.drain();
    s.after(15, Event::Frame(conn, Frame::Text("hello")));
    s.say("server echoes \"hello\" (delivered to the app)");
    s.drain();

    s.say("-- quiet connection: the heartbeat keeps it honest --");
    for _ in 0..2 {
        for a in s.wait() {
            if let Action::SendPing { conn, payload } = a {
                s.after(23, Event::Frame(conn, Frame::Pong(payload.as_bytes())));
                s.drain();
            }
        }
    }

    s.say("-- the server freezes (half-open TCP): pings go unanswered --");
    s.wait();
    s.wait();
    s.say("app sends \"are you there?\" while disconnected (queued)");
    let _ = s.client.send(s.now, Message::from("are you there?"));

    s.say("-- the server is down: connections are refused --");
    for _ in 0..3 {
        let actions = s.wait();
        if let Some(conn) = conn_of(&actions) {
            s.after(
                2,
                Event::ConnectFailed(conn, ConnectError::Io("connection refused")),
            );
            s.drain();
        }
    }

    s.say("-- the server is back --");
    let actions = s.wait();
    if let Some(conn) = conn_of(&actions) {
        s.after(35, Event::Connected(conn));
        s.drain();
        s.now += Duration::from_secs(12);
        s.say("-- 12 s later the server restarts politely (1012) --");
        s.client.handle_event(
            s.now,
            Event::Frame(conn, Frame::Close(Some((1012, "restart")))),
        );
        s.after(3, Event::Disconnected(conn, None));
        s.drain();
        let actions = s.wait();
        if let Some(conn) = conn_of(&actions) {
            s.after(
                30,
                Event::ConnectFailed(
                    conn,
                    ConnectError::Http {
                        status: 401,
                        retry_after: None,
                    },
                ),
            );
            s.say("-- the server now refuses our credentials --");
            s.drain();
        }
    }
    println!(
        "\nstate: {:?}; no timer left: {}",
        s.client.state(),
        s.client.poll_timeout().is_none()
    );
}
