//! Property tests: random event sequences against the invariants a server's users rely
//! on: a registry name always maps to a live connection, no deadline is left in the
//! past, nothing is emitted for a connection that is gone, nobody is pinged or evicted
//! early, backlogs stay bounded, every opened connection is closed exactly once, a
//! handshake or a stalled write is cut off at its deadline and not before.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use common::server::{config, ms};
use heartline_core::{
    ConnId, EvictReason, Frame, Message, Server, ServerAction, ServerConfig, ServerNotice,
};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    /// Advance the clock by this many ms and handle timeouts.
    Advance(u16),
    /// Jump to the next deadline.
    Fire,
    /// A stamp from the past reaches handle_timeout.
    Backwards(u16),
    /// Open a connection with `NAMES[i]`, or anonymous.
    Open(Option<usize>),
    /// A socket accepted whose upgrade is not done yet.
    Incoming,
    /// The upgrade of the n-th connection is done (if it is still pending).
    Upgrade(usize, Option<usize>),
    /// A write to the n-th connection could not finish / everything went out.
    Blocked(usize),
    Flushed(usize),
    /// Events on the n-th connection ever opened (possibly gone).
    Pong(usize),
    Text(usize),
    Heartbeat(usize),
    PeerClose(usize),
    Disconnected(usize),
    Written(usize, u16),
    Send(usize, u16),
    SendTo(usize, u16),
    Broadcast(u16),
    Close(usize),
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 0usize..12;
    prop_oneof![
        4 => (0u16..2500).prop_map(Op::Advance),
        4 => Just(Op::Fire),
        1 => (0u16..2000).prop_map(Op::Backwards),
        4 => prop::option::weighted(0.8, 0usize..NAMES.len()).prop_map(Op::Open),
        1 => Just(Op::Incoming),
        1 => (conn.clone(), prop::option::weighted(0.8, 0usize..NAMES.len()))
            .prop_map(|(c, n)| Op::Upgrade(c, n)),
        2 => conn.clone().prop_map(Op::Blocked),
        2 => conn.clone().prop_map(Op::Flushed),
        3 => conn.clone().prop_map(Op::Pong),
        2 => conn.clone().prop_map(Op::Text),
        2 => conn.clone().prop_map(Op::Heartbeat),
        1 => conn.clone().prop_map(Op::PeerClose),
        2 => conn.clone().prop_map(Op::Disconnected),
        2 => (conn.clone(), 0u16..400).prop_map(|(c, n)| Op::Written(c, n)),
        2 => (conn.clone(), 0u16..400).prop_map(|(c, n)| Op::Send(c, n)),
        1 => (0usize..NAMES.len(), 0u16..400).prop_map(|(c, n)| Op::SendTo(c, n)),
        1 => (0u16..400).prop_map(Op::Broadcast),
        1 => conn.prop_map(Op::Close),
        1 => prop::bool::weighted(0.1).prop_map(|_| Op::Shutdown),
    ]
}

struct World {
    server: Server,
    config: ServerConfig,
    start: Instant,
    /// Latest time fed in (what the server clamps to).
    now: Instant,
    /// Every connection ever accepted, in order.
    conns: Vec<ConnId>,
    /// When each connection was accepted, while its upgrade is pending.
    pending: HashMap<ConnId, Instant>,
    /// Connections dropped before they opened.
    dropped: HashSet<ConnId>,
    /// Since when writes to each connection are blocked.
    blocked: HashMap<ConnId, Instant>,
    /// Last sign of life of connections that are open.
    last_seen: HashMap<ConnId, Instant>,
    /// Last Ping payload sent to each connection.
    pings: HashMap<ConnId, [u8; 8]>,
    opened: HashSet<ConnId>,
    gone: HashSet<ConnId>,
    shutdown_reported: bool,
}

impl World {
    fn conn(&self, i: usize) -> Option<ConnId> {
        self.conns.get(i).copied()
    }

    fn frame(&mut self, conn: ConnId, frame: Frame<'_>) {
        if self.server.is_open(conn) {
            self.last_seen.insert(conn, self.now);
        }
        self.server.handle_frame(self.now, conn, frame);
        if !self.server.is_open(conn) {
            self.last_seen.remove(&conn);
        }
    }

    fn upgrade(&mut self, conn: ConnId, name: Option<usize>) {
        let name = name.map(|i| NAMES[i].to_owned());
        let opened = self.server.open(self.now, conn, name);
        prop_assert_eq_ok(
            opened.is_ok(),
            self.pending.contains_key(&conn) && !self.server.is_shutting_down(),
        );
        if opened.is_ok() {
            self.pending.remove(&conn);
            self.last_seen.insert(conn, self.now);
        }
    }

    fn apply(&mut self, op: &Op) -> bool {
        let mut exact = false;
        match *op {
            Op::Advance(n) => {
                self.now += ms(u64::from(n));
                self.server.handle_timeout(self.now);
            }
            Op::Fire => {
                if let Some(t) = self.server.poll_timeout() {
                    self.now = self.now.max(t);
                    self.server.handle_timeout(t);
                    exact = true;
                }
            }
            Op::Backwards(n) => {
                let then = self.now.checked_sub(ms(u64::from(n))).unwrap_or(self.start);
                self.server.handle_timeout(then.max(self.start));
            }
            Op::Open(name) => {
                if let Ok(conn) = self.server.incoming(self.now) {
                    self.conns.push(conn);
                    self.pending.insert(conn, self.now);
                    self.upgrade(conn, name);
                }
            }
            Op::Incoming => {
                if let Ok(conn) = self.server.incoming(self.now) {
                    self.conns.push(conn);
                    self.pending.insert(conn, self.now);
                }
            }
            Op::Upgrade(i, name) => {
                if let Some(c) = self.conn(i) {
                    self.upgrade(c, name);
                }
            }
            Op::Blocked(i) => {
                if let Some(c) = self.conn(i) {
                    if self.server.backlog(c).is_some() && !self.pending.contains_key(&c) {
                        self.blocked.entry(c).or_insert(self.now);
                    }
                    self.server.handle_write_blocked(self.now, c);
                }
            }
            Op::Flushed(i) => {
                if let Some(c) = self.conn(i) {
                    self.blocked.remove(&c);
                    self.server.handle_write_flushed(c);
                }
            }
            Op::Pong(i) => {
                if let Some(c) = self.conn(i) {
                    let payload = self.pings.get(&c).copied().unwrap_or_default();
                    self.frame(c, Frame::Pong(&payload));
                }
            }
            Op::Text(i) => {
                if let Some(c) = self.conn(i) {
                    self.frame(c, Frame::Text("hello"));
                }
            }
            Op::Heartbeat(i) => {
                if let Some(c) = self.conn(i) {
                    self.frame(c, Frame::Text(r#"{"ModeCode":"heart_beat","msg":1}"#));
                }
            }
            Op::PeerClose(i) => {
                if let Some(c) = self.conn(i) {
                    self.frame(c, Frame::Close(Some((1000, ""))));
                }
            }
            Op::Disconnected(i) => {
                if let Some(c) = self.conn(i) {
                    if self.pending.remove(&c).is_some() {
                        self.dropped.insert(c);
                    }
                    self.server.handle_disconnected(self.now, c, None);
                }
            }
            Op::Written(i, n) => {
                if let Some(c) = self.conn(i) {
                    self.server.handle_written(c, usize::from(n));
                }
            }
            Op::Send(i, n) => {
                if let Some(c) = self.conn(i) {
                    let _ = self.server.send(self.now, c, payload(n));
                }
            }
            Op::SendTo(i, n) => {
                let _ = self.server.send_to(self.now, NAMES[i], payload(n));
            }
            Op::Broadcast(n) => {
                self.server.broadcast(self.now, payload(n));
            }
            Op::Close(i) => {
                if let Some(c) = self.conn(i) {
                    let _ = self.server.close(self.now, c, 4000, "bye");
                }
            }
            Op::Shutdown => self.server.shutdown(self.now),
        }
        exact
    }

    fn check(&mut self, exact: bool) -> Result<(), TestCaseError> {
        let now = self.now;
        // Outputs of this step: actions first, then notices.
        let mut aborted = Vec::new();
        while let Some(action) = self.server.poll_action() {
            let conn = action.conn();
            prop_assert!(
                !self.gone.contains(&conn),
                "action for a gone connection: {action:?}"
            );
            prop_assert!(self.opened.contains(&conn) || self.conns.contains(&conn));
            match action {
                ServerAction::SendPing { payload, .. } => {
                    let seen = self.last_seen.get(&conn).copied();
                    prop_assert!(seen.is_some(), "ping for a connection not open");
                    prop_assert!(
                        seen.is_some_and(|s| now >= s + self.config.ping_interval),
                        "pinged before a quiet ping_interval"
                    );
                    let mut p = [0u8; 8];
                    p.copy_from_slice(payload.as_bytes());
                    self.pings.insert(conn, p);
                }
                ServerAction::Abort { .. } => {
                    if self.pending.remove(&conn).is_some() {
                        prop_assert!(
                            self.server.is_shutting_down(),
                            "handshake aborted while running"
                        );
                        self.dropped.insert(conn);
                    } else {
                        aborted.push(conn);
                    }
                }
                ServerAction::Evict {
                    reason: EvictReason::HandshakeTimeout,
                    ..
                } => {
                    let since = self.pending.remove(&conn);
                    prop_assert!(since.is_some(), "handshake timeout for an open connection");
                    if let Some(since) = since {
                        let deadline = since + self.config.handshake_timeout;
                        prop_assert!(now >= deadline, "handshake cut off early");
                        if exact {
                            prop_assert_eq!(now, deadline, "handshake cut off late");
                        }
                    }
                    self.dropped.insert(conn);
                }
                ServerAction::Evict {
                    reason: EvictReason::WriteStall,
                    ..
                } => {
                    let since = self.blocked.get(&conn).copied();
                    prop_assert!(since.is_some(), "write stall without a blocked write");
                    if let Some(since) = since {
                        let deadline = since + self.config.write_timeout;
                        prop_assert!(now >= deadline, "write stall cut off early");
                        if exact {
                            prop_assert_eq!(now, deadline, "write stall cut off late");
                        }
                    }
                    aborted.push(conn);
                }
                ServerAction::Evict { .. } => aborted.push(conn),
                _ => {}
            }
        }
        let mut closed_now = HashSet::new();
        while let Some(notice) = self.server.poll_notice() {
            match notice {
                ServerNotice::Opened { conn, .. } => {
                    prop_assert!(self.opened.insert(conn), "opened twice");
                }
                ServerNotice::Closed {
                    conn,
                    evicted: Some(EvictReason::Idle),
                    ..
                } if !self.gone.contains(&conn) && !self.last_seen.contains_key(&conn) => {
                    prop_assert!(false, "evicted a connection that was not open");
                }
                ServerNotice::Closed {
                    conn,
                    evicted: Some(EvictReason::Idle),
                    ..
                } => {
                    let seen = self.last_seen.get(&conn).copied();
                    prop_assert!(seen.is_some(), "evicted a connection that was not open");
                    if let Some(seen) = seen {
                        let deadline = seen + self.config.idle_timeout;
                        prop_assert!(now >= deadline, "evicted before the idle deadline");
                        if exact {
                            prop_assert_eq!(now, deadline, "evicted after the idle deadline");
                        }
                    }
                    prop_assert!(self.opened.contains(&conn), "closed before opened");
                    prop_assert!(self.gone.insert(conn), "closed twice");
                    closed_now.insert(conn);
                    self.last_seen.remove(&conn);
                    self.blocked.remove(&conn);
                }
                ServerNotice::Closed { conn, .. } => {
                    prop_assert!(self.opened.contains(&conn), "closed before opened");
                    prop_assert!(self.gone.insert(conn), "closed twice");
                    closed_now.insert(conn);
                    self.last_seen.remove(&conn);
                    self.blocked.remove(&conn);
                }
                ServerNotice::ShutdownComplete => {
                    prop_assert!(!self.shutdown_reported, "shutdown reported twice");
                    prop_assert!(self.server.is_empty());
                    self.shutdown_reported = true;
                }
                _ => {}
            }
        }
        for conn in aborted {
            prop_assert!(closed_now.contains(&conn), "abort without removal");
        }
        // Connections the server no longer holds are exactly the closed ones.
        for conn in &self.conns {
            let held = self.server.backlog(*conn).is_some();
            let ended = self.gone.contains(conn) || self.dropped.contains(conn);
            prop_assert_eq!(held, !ended);
            prop_assert!(!(self.gone.contains(conn) && self.dropped.contains(conn)));
            if let Some(b) = self.server.backlog(*conn) {
                prop_assert!(b <= self.config.max_backlog_bytes);
            }
            if !self.server.is_open(*conn) {
                self.last_seen.remove(conn);
            }
        }
        // Every registered name maps to an open connection that has that name.
        for (name, conn) in self.server.clients() {
            prop_assert!(
                self.server.is_open(conn),
                "{name} maps to a closed connection"
            );
            prop_assert_eq!(self.server.name(conn), Some(name));
            prop_assert_eq!(self.server.lookup(name), Some(conn));
        }
        // Every open named connection is the registered one for its name.
        for (conn, name) in self.server.connections() {
            if let Some(name) = name {
                prop_assert_eq!(self.server.lookup(name), Some(conn));
            }
        }
        // No deadline is left in the past, and handling the same moment again does
        // nothing (no busy loop).
        self.server.handle_timeout(now);
        prop_assert!(self.server.poll_action().is_none(), "busy loop");
        if let Some(t) = self.server.poll_timeout() {
            prop_assert!(t > now, "deadline in the past");
        }
        Ok(())
    }
}

/// `assert_eq!` for a helper that cannot return a proptest error.
fn prop_assert_eq_ok(got: bool, want: bool) {
    assert_eq!(
        got, want,
        "open succeeds exactly for a pending upgrade while running"
    );
}

fn payload(n: u16) -> Message {
    Message::Binary(vec![0; usize::from(n)])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold(ops in prop::collection::vec(op(), 1..120), slack in prop::sample::select(vec![0u64, 1, 100, 1999])) {
        let mut config = config();
        config.max_backlog_bytes = 1000;
        config.ping_slack = ms(slack);
        // Shorter than the idle timeout, so stalls and handshakes run out first.
        config.write_timeout = ms(1500);
        config.handshake_timeout = ms(2000);
        let start = Instant::now();
        let mut w = World {
            server: Server::new(config.clone(), start).unwrap(),
            config,
            start,
            now: start,
            conns: Vec::new(),
            pending: HashMap::new(),
            dropped: HashSet::new(),
            blocked: HashMap::new(),
            last_seen: HashMap::new(),
            pings: HashMap::new(),
            opened: HashSet::new(),
            gone: HashSet::new(),
            shutdown_reported: false,
        };
        for op in &ops {
            let exact = w.apply(op);
            w.check(exact)?;
        }
        // In the end, after a shutdown and enough time, everything is gone.
        w.server.shutdown(w.now);
        w.check(false)?;
        while w.server.poll_timeout().is_some() {
            w.apply(&Op::Fire);
            w.check(true)?;
        }
        prop_assert!(w.server.is_shut_down());
        prop_assert!(w.shutdown_reported);
        prop_assert_eq!(w.gone.len(), w.opened.len());
        prop_assert_eq!(w.gone.len() + w.dropped.len(), w.conns.len());
    }
}
