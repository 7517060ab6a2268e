//! A harness driving a [`Server`] in virtual time.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use heartline_core::{
    ConnId, Disposition, Frame, Message, Server, ServerAction, ServerConfig, ServerNotice,
    UpgradeRequest,
};

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A configuration with short, round numbers: ping after 1 s quiet (no slack, so every
/// ping is exactly on its deadline), evict after 3 s, close handshakes 500 ms.
pub fn config() -> ServerConfig {
    let mut built = ServerConfig::default();
    built.ping_interval = ms(1000);
    built.idle_timeout = ms(3000);
    built.ping_slack = ms(0);
    built.close_timeout = ms(500);
    built
}

/// A server and a virtual clock.
pub struct Harness {
    pub server: Server,
    pub start: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        let start = Instant::now();
        Harness {
            server: Server::new(config, start).expect("valid config"),
            start,
            now: start,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the clock forward by `d` (without handling timers).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves the clock to the next deadline and handles it; `None` when there is none.
    pub fn step(&mut self) -> Option<Duration> {
        let t = self.server.poll_timeout()?;
        assert!(t >= self.now, "deadline in the past");
        self.now = t;
        self.server.handle_timeout(t);
        Some(self.elapsed())
    }

    /// Handles timers up to and including `t` after the start, deadline by deadline.
    pub fn run_until(&mut self, t: Duration) {
        let end = self.start + t;
        while let Some(d) = self.server.poll_timeout() {
            if d > end {
                break;
            }
            self.now = d.max(self.now);
            self.server.handle_timeout(self.now);
        }
        self.now = end.max(self.now);
        self.server.handle_timeout(self.now);
    }

    /// A socket accepted now, its upgrade not done yet.
    pub fn incoming(&mut self) -> ConnId {
        self.server
            .incoming(self.now)
            .expect("server takes the socket")
    }

    /// Opens a connection named `name` (a socket whose upgrade was accepted).
    pub fn open(&mut self, name: &str) -> ConnId {
        self.open_as(Some(name.to_owned()))
    }

    /// Opens a connection with `name`, or none.
    pub fn open_as(&mut self, name: Option<String>) -> ConnId {
        let conn = self.incoming();
        self.server
            .open(self.now, conn, name)
            .expect("server takes the connection");
        conn
    }

    /// Accepts the upgrade for `target` and opens the connection.
    pub fn connect(&mut self, target: &str) -> ConnId {
        let conn = self.incoming();
        let accepted = self
            .server
            .accept(self.now, &UpgradeRequest::new(target, &[]))
            .expect("upgrade accepted");
        self.server
            .open(self.now, conn, accepted.name)
            .expect("server takes the connection");
        conn
    }

    pub fn frame(&mut self, conn: ConnId, frame: Frame<'_>) -> Disposition {
        self.server.handle_frame(self.now, conn, frame)
    }

    pub fn text(&mut self, conn: ConnId, text: &str) -> Disposition {
        self.frame(conn, Frame::Text(text))
    }

    pub fn actions(&mut self) -> Vec<ServerAction<Message>> {
        std::iter::from_fn(|| self.server.poll_action()).collect()
    }

    pub fn notices(&mut self) -> Vec<ServerNotice> {
        std::iter::from_fn(|| self.server.poll_notice()).collect()
    }

    /// Answers every pending Ping with its Pong, as a live client's library does.
    pub fn answer_pings(&mut self) -> usize {
        let mut n = 0;
        for action in self.actions() {
            if let ServerAction::SendPing { conn, payload } = action {
                self.server
                    .handle_frame(self.now, conn, Frame::Pong(payload.as_bytes()));
                n += 1;
            }
        }
        n
    }
}

/// Shorthand for the Close action heartline sends.
pub fn close(conn: ConnId, code: u16, reason: &'static str) -> ServerAction<Message> {
    ServerAction::Close {
        conn,
        code,
        reason: reason.into(),
    }
}
