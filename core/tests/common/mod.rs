//! Shared test harness: a client driven in virtual time.
#![allow(dead_code)]

pub mod pair;
pub mod server;

use std::time::{Duration, Instant};

use heartline_core::{
    Action, Backoff, Client, ClientConfig, ConnId, Disposition, Event, Frame, Jitter, Notice,
};

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A configuration with round, readable numbers and no jitter: ping after 1 s of quiet,
/// 500 ms pong timeout, fixed 2 s reconnect delay, 3 s connect timeout, 1 s close timeout,
/// 10 s to become stable.
pub fn config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.heartbeat.interval = ms(1000);
    c.heartbeat.timeout = ms(500);
    c.reconnect.backoff = Backoff::Fixed(ms(2000));
    c.reconnect.jitter = Jitter::None;
    c.connect_timeout = ms(3000);
    c.close_timeout = ms(1000);
    c
}

/// A client in virtual time, with everything it emitted kept for assertions.
pub struct Harness {
    pub client: Client,
    pub start: Instant,
    pub now: Instant,
}

impl Harness {
    /// A client with `config` and seed 1, at virtual time zero.
    pub fn new(config: ClientConfig) -> Self {
        Harness::with_seed(config, 1)
    }

    /// A client with `config` and `seed`, at virtual time zero.
    pub fn with_seed(config: ClientConfig, seed: u64) -> Self {
        let start = Instant::now();
        let client = Client::new(config, seed, start).expect("valid test config");
        Harness {
            client,
            start,
            now: start,
        }
    }

    /// Virtual time elapsed since the start.
    pub fn t(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the clock to `start + at` and handles due timers.
    pub fn at(&mut self, at: Duration) {
        self.now = self.start + at;
        self.client.handle_timeout(self.now);
    }

    /// Moves the clock forward by `d` and handles due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
    }

    /// Jumps to the next deadline and handles it; returns the time it fired at.
    pub fn fire_next(&mut self) -> Duration {
        let next = self.client.poll_timeout().expect("a deadline is armed");
        assert!(next >= self.now, "deadline {next:?} is in the past");
        self.now = next;
        self.client.handle_timeout(self.now);
        self.t()
    }

    /// The next deadline, relative to the start.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.client.poll_timeout().map(|d| d - self.start)
    }

    /// All pending actions.
    pub fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.client.poll_action()).collect()
    }

    /// All pending notices.
    pub fn notices(&mut self) -> Vec<Notice> {
        std::iter::from_fn(|| self.client.poll_notice()).collect()
    }

    /// Takes the pending actions and returns the connection of the single `Connect`
    /// among them; panics if there is none.
    pub fn expect_connect(&mut self) -> ConnId {
        let connects: Vec<ConnId> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Connect { conn, .. } => Some(conn),
                _ => None,
            })
            .collect();
        assert_eq!(connects.len(), 1, "expected exactly one Connect");
        connects[0]
    }

    /// Completes the pending connect: returns the now-open connection. Drains actions and
    /// notices.
    pub fn open(&mut self) -> ConnId {
        let conn = self.expect_connect();
        self.event(Event::Connected(conn));
        self.notices();
        conn
    }

    /// Feeds an event.
    pub fn event(&mut self, event: Event<'_>) -> Disposition {
        self.client.handle_event(self.now, event)
    }

    /// Feeds a frame on `conn`.
    pub fn frame(&mut self, conn: ConnId, frame: Frame<'_>) -> Disposition {
        self.client
            .handle_event(self.now, Event::Frame(conn, frame))
    }
}

/// Drives `h` until it emits a protocol ping, answering nothing; returns the payload.
pub fn take_ping(actions: &[Action]) -> Option<Vec<u8>> {
    actions.iter().find_map(|a| match a {
        Action::SendPing { payload, .. } => Some(payload.as_bytes().to_vec()),
        _ => None,
    })
}
