//! The server machine with arbitrary connections, frames, writes, timers and registry
//! operations: accepts, upgrades under a few names (so replacement happens often),
//! pongs right and wrong, heartbeats, peer closes, stalls, sends, broadcasts, closes
//! and a shutdown.
//!
//! Checked after every step: one open connection per name and a registry that agrees
//! with itself, no deadline behind the latest time fed in, every message the server
//! accepted handed to the driver exactly once, backlogs within their bound, nothing
//! emitted for a connection after its `Closed`, every close code sendable; at the end
//! a shutdown completes and every connection that opened was closed exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use heartline_core::{
    close_code, ConnId, Frame, Message, Server, ServerAction, ServerConfig, ServerNotice,
};

use crate::support::{Clock, Tick};

const NAMES: [&str; 5] = ["a", "b", "c", "d", ""];

/// A configuration and the steps.
#[derive(Debug, Arbitrary)]
pub struct Input {
    knobs: Knobs,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
struct Knobs {
    ping_ms: u16,
    idle_extra_ms: u16,
    slack_ms: u16,
    handshake_ms: u16,
    close_ms: u16,
    write_ms: u16,
    max_message: u16,
    max_backlog: u16,
}

impl Knobs {
    fn config(&self) -> ServerConfig {
        let ms = |v: u16| Duration::from_millis(1 + u64::from(v % 5000));
        let ping = ms(self.ping_ms);
        {
            let mut built = ServerConfig::default();
            built.ping_interval = ping;
            built.idle_timeout = ping + ms(self.idle_extra_ms);
            built.ping_slack = Duration::from_millis(u64::from(self.slack_ms % 1000));
            built.handshake_timeout = ms(self.handshake_ms);
            built.close_timeout = ms(self.close_ms);
            built.write_timeout = ms(self.write_ms);
            built.max_message_size = 1 + usize::from(self.max_message % 1024);
            built.max_backlog_bytes = 1 + usize::from(self.max_backlog % 4096);
            built
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Incoming {
    PongForLastPing,
    Pong(Vec<u8>),
    Ping(Vec<u8>),
    Text(String),
    Binary(Vec<u8>),
    /// One of the default application heartbeats.
    Heartbeat(bool),
    Close(Option<(u16, String)>),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Advance(u16),
    /// A long jump, in seconds.
    Sleep(u16),
    Fire,
    Backwards(u16),
    Incoming,
    AcceptFailed,
    /// The n-th connection's upgrade is done, under `NAMES[i]` or no name.
    Open(u8, Option<u8>),
    /// Accepted and upgraded at once.
    Connect(Option<u8>),
    Frame(u8, Incoming),
    Written(u8, u16),
    Blocked(u8),
    Flushed(u8),
    Disconnected(u8),
    Send(u8, u16),
    SendTo(u8, u16),
    Broadcast(u16, Option<u8>),
    Close(u8, u16, u8),
    Shutdown,
}

struct World {
    server: Server,
    config: ServerConfig,
    clock: Clock,
    conns: Vec<ConnId>,
    /// Messages the server took for each connection, and handed out for it.
    taken: HashMap<ConnId, usize>,
    handed: HashMap<ConnId, usize>,
    last_ping: HashMap<ConnId, Vec<u8>>,
    opened: HashSet<ConnId>,
    closed: HashSet<ConnId>,
    shutdown_complete: bool,
}

/// Runs one input.
pub fn run(input: Input) {
    let config = input.knobs.config();
    let clock = Clock::new();
    let server = Server::new(config.clone(), clock.start).expect("the folded config is valid");
    let mut w = World {
        server,
        config,
        clock,
        conns: Vec::new(),
        taken: HashMap::new(),
        handed: HashMap::new(),
        last_ping: HashMap::new(),
        opened: HashSet::new(),
        closed: HashSet::new(),
        shutdown_complete: false,
    };
    for op in input.ops.iter().take(400) {
        w.step(op);
        w.drain();
        w.check(matches!(op, Op::Advance(_) | Op::Sleep(_) | Op::Fire));
    }
    w.wind_down();
}

fn name(i: u8) -> String {
    NAMES[usize::from(i) % NAMES.len()].to_owned()
}

/// A message of 1 to 2048 bytes: never empty, so a broadcast shows in the backlogs.
fn message(len: u16) -> Message {
    Message::Binary(vec![7; 1 + usize::from(len % 2048)])
}

impl World {
    fn conn(&self, i: u8) -> Option<ConnId> {
        (!self.conns.is_empty()).then(|| self.conns[usize::from(i) % self.conns.len()])
    }

    fn incoming(&mut self) -> Option<ConnId> {
        let conn = self.server.incoming(self.clock.now).ok()?;
        assert!(!self.conns.contains(&conn), "{conn} given out twice");
        self.conns.push(conn);
        Some(conn)
    }

    fn open(&mut self, conn: ConnId, name: Option<String>) {
        let opened = self.server.open(self.clock.now, conn, name.clone());
        if opened.is_ok() {
            assert!(self.server.is_open(conn));
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                assert_eq!(self.server.lookup(&n), Some(conn), "{n} not registered");
            }
        }
    }

    fn step(&mut self, op: &Op) {
        let now = self.clock.now;
        match op {
            Op::Advance(ms) => self.tick(Tick::Advance(*ms)),
            Op::Sleep(s) => self.tick(Tick::Sleep(*s)),
            Op::Fire => self.tick(Tick::Fire),
            Op::Backwards(ms) => self.tick(Tick::Backwards(*ms)),
            Op::Incoming => {
                self.incoming();
            }
            Op::AcceptFailed => {
                let again = self.server.handle_accept_failed(now);
                assert!(again > now, "accept retried at once");
            }
            Op::Open(i, n) => {
                if let Some(c) = self.conn(*i) {
                    self.open(c, n.map(name));
                }
            }
            Op::Connect(n) => {
                if let Some(c) = self.incoming() {
                    self.open(c, n.map(name));
                }
            }
            Op::Frame(i, incoming) => {
                if let Some(c) = self.conn(*i) {
                    self.frame(c, incoming);
                }
            }
            Op::Written(i, n) => {
                if let Some(c) = self.conn(*i) {
                    self.server.handle_written(c, usize::from(*n));
                }
            }
            Op::Blocked(i) => {
                if let Some(c) = self.conn(*i) {
                    self.server.handle_write_blocked(now, c);
                }
            }
            Op::Flushed(i) => {
                if let Some(c) = self.conn(*i) {
                    self.server.handle_write_flushed(c);
                }
            }
            Op::Disconnected(i) => {
                if let Some(c) = self.conn(*i) {
                    self.server.handle_disconnected(now, c, None);
                }
            }
            Op::Send(i, len) => {
                if let Some(c) = self.conn(*i) {
                    if self.server.send(now, c, message(*len)).is_ok() {
                        *self.taken.entry(c).or_default() += 1;
                    }
                }
            }
            Op::SendTo(n, len) => {
                let name = name(*n);
                let target = self.server.lookup(&name);
                if self.server.send_to(now, &name, message(*len)).is_ok() {
                    let c = target.expect("send_to succeeded for an unknown name");
                    *self.taken.entry(c).or_default() += 1;
                }
            }
            Op::Broadcast(len, except) => self.broadcast(*len, except.and_then(|i| self.conn(i))),
            Op::Close(i, code, reason_len) => {
                if let Some(c) = self.conn(*i) {
                    let reason = "r".repeat(usize::from(*reason_len));
                    let fits =
                        close_code::is_sendable(*code) && reason.len() <= close_code::MAX_REASON;
                    match self.server.close(now, c, *code, &reason) {
                        Ok(_) => assert!(fits, "close({code}, {} bytes) accepted", reason.len()),
                        Err(_) => assert!(!fits, "close({code}) refused"),
                    }
                }
            }
            Op::Shutdown => self.server.shutdown(now),
        }
    }

    fn tick(&mut self, tick: Tick) {
        if let Some(at) = self.clock.tick(tick, self.server.poll_timeout()) {
            self.server.handle_timeout(at);
        }
    }

    fn frame(&mut self, c: ConnId, incoming: &Incoming) {
        let last = self.last_ping.get(&c).cloned().unwrap_or_default();
        let frame = match incoming {
            Incoming::PongForLastPing => Frame::Pong(&last),
            Incoming::Pong(p) => Frame::Pong(p),
            Incoming::Ping(p) => Frame::Ping(p),
            Incoming::Text(t) => Frame::Text(t),
            Incoming::Binary(b) => Frame::Binary(b),
            Incoming::Heartbeat(json) => Frame::Text(if *json {
                r#"{"ModeCode":"heart_beat","n":1}"#
            } else {
                "ping"
            }),
            Incoming::Close(close) => Frame::Close(close.as_ref().map(|(c, r)| (*c, r.as_str()))),
        };
        self.server.handle_frame(self.clock.now, c, frame);
    }

    /// Which connection got the broadcast is read off the backlogs: each one that took
    /// it grew by the message's length.
    fn broadcast(&mut self, len: u16, except: Option<ConnId>) {
        let message = message(len);
        let size = message.len();
        let before: Vec<(ConnId, usize)> = self
            .server
            .connections()
            .map(|(c, _)| c)
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|c| Some((c, self.server.backlog(c)?)))
            .collect();
        let sent = self
            .server
            .broadcast_except(self.clock.now, message, except);
        let mut got = 0;
        for (c, backlog) in before {
            if self.server.backlog(c) == Some(backlog + size) {
                assert_ne!(Some(c), except, "broadcast reached the excepted {c}");
                *self.taken.entry(c).or_default() += 1;
                got += 1;
            }
        }
        assert_eq!(sent, got, "broadcast's count and the backlogs disagree");
    }

    fn drain(&mut self) {
        while let Some(action) = self.server.poll_action() {
            let conn = action.conn();
            assert!(
                !self.closed.contains(&conn),
                "{action:?} after {conn} closed"
            );
            match action {
                ServerAction::Send { .. } => *self.handed.entry(conn).or_default() += 1,
                ServerAction::SendPing { payload, .. } => {
                    assert!(self.server.is_open(conn), "ping for {conn}, not open");
                    self.last_ping.insert(conn, payload.as_bytes().to_vec());
                }
                ServerAction::Close { code, reason, .. } => {
                    assert!(
                        close_code::is_sendable(code),
                        "close code {code} on the wire"
                    );
                    assert!(reason.len() <= close_code::MAX_REASON, "reason too long");
                }
                ServerAction::Evict { reason, .. } => {
                    if let Some(code) = reason.close_code() {
                        assert!(close_code::is_sendable(code), "evict code {code}");
                    }
                }
                ServerAction::Reply { .. } | ServerAction::Abort { .. } => {}
            }
        }
        while let Some(notice) = self.server.poll_notice() {
            match notice {
                ServerNotice::Opened { conn, .. } => {
                    assert!(self.opened.insert(conn), "{conn} opened twice");
                }
                ServerNotice::Closed { conn, .. } => {
                    assert!(self.opened.contains(&conn), "{conn} closed, never opened");
                    assert!(self.closed.insert(conn), "{conn} closed twice");
                }
                ServerNotice::Replaced { name, old, new } => {
                    assert_ne!(old, new);
                    assert_eq!(self.server.lookup(&name), Some(new), "{name} not moved");
                }
                ServerNotice::ShutdownComplete => {
                    assert!(!self.shutdown_complete, "shutdown completed twice");
                    assert!(self.server.is_shutting_down());
                    self.shutdown_complete = true;
                }
                ServerNotice::Rejected { .. } => {}
                ServerNotice::Resumed { lost } => assert!(
                    self.config.suspend_threshold.is_some_and(|t| lost > t),
                    "resumed after losing only {lost:?}"
                ),
                // A notice the target does not know yet: a kind added to the core,
                // to be given its own invariant here.
                other => panic!("notice the fuzz target does not check: {other:?}"),
            }
        }
    }

    /// `timed`: the step ran the timers at `now`, so nothing is due any more.
    fn check(&self, timed: bool) {
        let next = self.server.poll_timeout();
        assert!(
            next.is_none_or(|d| d > self.clock.now || (!timed && d == self.clock.now)),
            "deadline {:?} not past now {:?}",
            next.map(|d| d - self.clock.start),
            self.clock.now - self.clock.start
        );
        let mut names = HashSet::new();
        for (name, conn) in self.server.clients() {
            assert!(names.insert(name.to_owned()), "{name} registered twice");
            assert!(self.server.is_open(conn), "{name} maps to {conn}, not open");
            assert_eq!(self.server.name(conn), Some(name));
            assert_eq!(self.server.lookup(name), Some(conn));
        }
        let mut open_names = HashSet::new();
        for (conn, name) in self.server.connections() {
            if let Some(name) = name {
                assert!(open_names.insert(name), "two open connections named {name}");
                assert_eq!(
                    self.server.lookup(name),
                    Some(conn),
                    "{name} not in registry"
                );
            }
            let backlog = self.server.backlog(conn).unwrap_or_default();
            assert!(
                backlog <= self.config.max_backlog_bytes,
                "{conn} backlog {backlog}"
            );
        }
        for (conn, taken) in &self.taken {
            let handed = self.handed.get(conn).copied().unwrap_or_default();
            assert_eq!(*taken, handed, "{conn}: messages taken and handed out");
        }
    }

    /// Shutdown, then past every timeout: everything that opened is closed, once.
    fn wind_down(&mut self) {
        self.server.shutdown(self.clock.now);
        self.drain();
        // Deadline by deadline, as a running driver would (one jump past them all would
        // read as a suspension, and move them). Each step handles at least one
        // deadline: the closes, handshakes, stalls and evictions of every connection.
        let most = 4 * (self.server.len() + self.server.handshakes()) + 8;
        for _ in 0..most {
            let Some(t) = self.server.poll_timeout() else {
                break;
            };
            self.clock.now = self.clock.now.max(t);
            self.server.handle_timeout(self.clock.now);
            self.drain();
        }
        assert!(self.server.is_shut_down(), "shutdown did not complete");
        assert!(self.shutdown_complete, "no ShutdownComplete");
        assert!(self.server.is_empty() && self.server.handshakes() == 0);
        assert_eq!(self.opened, self.closed, "opened and closed differ");
        assert_eq!(
            self.server.poll_timeout(),
            None,
            "a deadline after shutdown"
        );
    }
}
