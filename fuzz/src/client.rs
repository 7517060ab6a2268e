//! The client machine under arbitrary event sequences, times and wall-clock readings,
//! driven the way a driver would: it reports only on connections it started (or on
//! made-up ids, which must be stale), executes the actions it takes, stalls, fails
//! writes and gives the rest back.
//!
//! Checked after every step: at most one connection attempt in flight, connection ids
//! grow, no message goes to a connection that is gone (a stale ping or close may: the
//! driver drops those), no deadline behind the latest time
//! fed in, close codes and reasons fit the wire, every message accepted is handed over
//! once, dropped with a notice, or still queued; after `close()` the client winds
//! down within its close timeout.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use heartline_core::{
    close_code, Action, AppHeartbeat, Backoff, Client, ClientConfig, ConnId, ConnectError, Event,
    Frame, HeartbeatKind, Jitter, Message, Notice, Overflow, ReadyState,
};

use crate::support::{Clock, Tick};

/// A configuration and the driver's steps.
#[derive(Debug, Arbitrary)]
pub struct Input {
    knobs: Knobs,
    seed: u64,
    ops: Vec<Op>,
}

/// Configuration values, folded into ranges the core accepts (most of the time) so the
/// fuzzer spends its effort on the machine, not on validation.
#[derive(Debug, Arbitrary)]
struct Knobs {
    heartbeat: u8,
    any_frame_is_alive: bool,
    interval_ms: u16,
    timeout_ms: u16,
    suspend_ms: Option<u16>,
    probe_ms: u16,
    jitter: u8,
    exponential: bool,
    base_ms: u16,
    max_attempts: Option<u8>,
    stable_ms: u16,
    connect_ms: u16,
    close_ms: u16,
    write_ms: u16,
    queue_messages: u8,
    queue_bytes: u16,
    drop_oldest: bool,
}

impl Knobs {
    fn config(&self) -> ClientConfig {
        let ms = |v: u16| Duration::from_millis(1 + u64::from(v % 5000));
        let mut c = ClientConfig::default();
        c.heartbeat.kind = match self.heartbeat % 4 {
            0 => HeartbeatKind::Protocol,
            1 => HeartbeatKind::App(AppHeartbeat::text("ping", "pong")),
            2 => HeartbeatKind::App(AppHeartbeat::echo(Message::Text("echo".into()))),
            _ => HeartbeatKind::Off,
        };
        c.heartbeat.any_frame_is_alive = self.any_frame_is_alive;
        c.heartbeat.interval = ms(self.interval_ms);
        c.heartbeat.timeout = ms(self.timeout_ms);
        c.heartbeat.suspend_threshold = self.suspend_ms.map(ms);
        c.heartbeat.probe_timeout = ms(self.probe_ms);
        c.reconnect.jitter = match self.jitter % 3 {
            0 => Jitter::None,
            1 => Jitter::Full,
            _ => Jitter::Equal,
        };
        let base = ms(self.base_ms);
        c.reconnect.backoff = if self.exponential {
            Backoff::exponential(base, base * 16)
        } else {
            Backoff::Fixed(base)
        };
        c.reconnect.max_attempts = self.max_attempts.map(|n| u32::from(n % 8));
        c.reconnect.stable_after = ms(self.stable_ms);
        c.reconnect.retry_after_cap = Duration::from_secs(120);
        c.connect_timeout = ms(self.connect_ms);
        c.close_timeout = ms(self.close_ms);
        c.write_timeout = ms(self.write_ms);
        c.queue.max_messages = usize::from(self.queue_messages % 16);
        c.queue.max_bytes = usize::from(self.queue_bytes);
        c.queue.overflow = if self.drop_oldest {
            Overflow::DropOldest
        } else {
            Overflow::RejectNew
        };
        c
    }
}

/// Which connection an event is about.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Who {
    Current,
    Previous,
    /// An id the driver may never have seen.
    Made(u8),
}

#[derive(Debug, Arbitrary)]
enum Failure {
    Io,
    Http {
        status: u16,
        retry_after_ms: Option<u32>,
    },
}

#[derive(Debug, Arbitrary)]
enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    /// The Pong a well-behaved server sends for the last Ping.
    PongForLastPing,
    Pong(Vec<u8>),
    /// The reply to the application heartbeat.
    HeartbeatReply,
    Close(Option<(u16, String)>),
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Time passes, then the timers run.
    Advance(u16),
    /// A long jump (a suspended laptop, a frozen VM), in seconds.
    Sleep(u16),
    /// Straight to the next deadline.
    Fire,
    /// A stamp from the past reaches the core.
    Backwards(u16),
    /// The wall clock moves by this many ms beside `Instant` (NTP, a suspend `Instant`
    /// did not count), and the driver reports it.
    Wall(i32),
    Connected(Who),
    ConnectFailed(Who, Failure),
    Frame(Who, Incoming),
    Violation(Who, u16),
    Disconnected(Who),
    Blocked(Who),
    Flushed(Who),
    Send {
        text: bool,
        len: u8,
    },
    /// `send_now` on the current connection, as the blocking driver does.
    SendNow {
        len: u8,
    },
    Close {
        code: u16,
        reason_len: u8,
    },
    ReconnectNow,
    /// The driver stops taking actions until a write goes through.
    Stall,
    /// The driver takes what is pending, its first write fails and the connection is
    /// lost with that message; the rest is given back.
    FailWrite,
}

struct World {
    client: Client,
    config: ClientConfig,
    clock: Clock,
    /// How far the wall clock is off `Instant`.
    skew_ms: i64,
    /// Connections started and not ended (by an abort, or by a report of the driver's).
    live: HashSet<ConnId>,
    issued: Vec<ConnId>,
    last_ping: Option<Vec<u8>>,
    closed_by_app: bool,
    stalled: Option<ConnId>,
    next_id: u64,
    accepted: usize,
    handed: HashSet<u64>,
    dropped: usize,
    unconfirmed: usize,
}

/// Runs one input.
pub fn run(input: Input) {
    let config = input.knobs.config();
    let clock = Clock::new();
    let client = match Client::new(config.clone(), input.seed, clock.start) {
        Ok(client) => client,
        Err(_) => {
            assert!(
                config.validate().is_err(),
                "rejected a config validate() accepts"
            );
            return;
        }
    };
    let mut w = World {
        client,
        config,
        clock,
        skew_ms: 0,
        live: HashSet::new(),
        issued: Vec::new(),
        last_ping: None,
        closed_by_app: false,
        stalled: None,
        next_id: 0,
        accepted: 0,
        handed: HashSet::new(),
        dropped: 0,
        unconfirmed: 0,
    };
    w.drain();
    for op in input.ops.iter().take(400) {
        w.step(op);
        w.drain();
        w.check(matches!(op, Op::Advance(_) | Op::Sleep(_) | Op::Fire));
    }
    w.wind_down();
}

/// The message with id `id`: its first bytes carry the id, so each one is told apart.
fn tagged(id: u64, text: bool, len: u8) -> Message {
    if text {
        Message::Text(format!("{id:016x}{}", "t".repeat(usize::from(len))))
    } else {
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.resize(8 + usize::from(len), 0xa5);
        Message::Binary(bytes)
    }
}

fn tag_of(message: &Message) -> u64 {
    match message {
        Message::Text(t) => u64::from_str_radix(&t[..16], 16).expect("a tagged text"),
        Message::Binary(b) => u64::from_le_bytes(b[..8].try_into().expect("a tagged binary")),
    }
}

impl World {
    fn who(&self, who: Who) -> Option<ConnId> {
        match who {
            Who::Current => self.client.current_conn().filter(|c| self.live.contains(c)),
            Who::Previous => self.issued.iter().rev().nth(1).copied(),
            Who::Made(n) => Some(ConnId(u64::from(n))),
        }
    }

    fn wall(&self) -> SystemTime {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = epoch + (self.clock.now - self.clock.start);
        let skew = Duration::from_millis(self.skew_ms.unsigned_abs());
        if self.skew_ms >= 0 {
            at + skew
        } else {
            at - skew
        }
    }

    fn ended(&mut self, conn: ConnId) {
        self.live.remove(&conn);
    }

    fn step(&mut self, op: &Op) {
        let now = self.clock.now;
        match op {
            Op::Advance(ms) => self.tick(Tick::Advance(*ms)),
            Op::Sleep(s) => self.tick(Tick::Sleep(*s)),
            Op::Fire => self.tick(Tick::Fire),
            Op::Backwards(ms) => self.tick(Tick::Backwards(*ms)),
            Op::Wall(ms) => {
                self.skew_ms = self.skew_ms.saturating_add(i64::from(*ms));
                self.client.handle_wall_clock(now, self.wall());
            }
            Op::Connected(who) => {
                if let Some(c) = self.who(*who).filter(|c| self.live.contains(c)) {
                    self.client.handle_event(now, Event::Connected(c));
                }
            }
            Op::ConnectFailed(who, failure) => {
                if let Some(c) = self.who(*who) {
                    let error = match failure {
                        Failure::Io => ConnectError::Io("refused"),
                        Failure::Http {
                            status,
                            retry_after_ms,
                        } => ConnectError::Http {
                            status: *status,
                            retry_after: retry_after_ms.map(|m| Duration::from_millis(m.into())),
                        },
                    };
                    self.client
                        .handle_event(now, Event::ConnectFailed(c, error));
                    self.ended(c);
                }
            }
            Op::Frame(who, incoming) => {
                if let Some(c) = self.who(*who) {
                    self.frame(c, incoming);
                }
            }
            Op::Violation(who, code) => {
                if let Some(c) = self.who(*who) {
                    self.client
                        .handle_event(now, Event::Violation(c, *code, "fuzz"));
                }
            }
            Op::Disconnected(who) => {
                if let Some(c) = self.who(*who) {
                    self.client.handle_event(now, Event::Disconnected(c, None));
                    self.ended(c);
                }
            }
            Op::Blocked(who) => {
                if let Some(c) = self.who(*who) {
                    self.client.handle_event(now, Event::WriteBlocked(c));
                }
            }
            Op::Flushed(who) => {
                if let Some(c) = self.who(*who) {
                    if self.stalled == Some(c) {
                        self.stalled = None;
                    }
                    self.client.handle_event(now, Event::WriteFlushed(c));
                }
            }
            Op::Send { text, len } => {
                let id = self.fresh();
                let sent = self.client.send(now, tagged(id, *text, *len));
                if self.closed_by_app {
                    assert!(sent.is_err(), "send accepted after close()");
                }
                self.accepted += usize::from(sent.is_ok());
            }
            Op::SendNow { len } => self.send_now(*len),
            Op::Close { code, reason_len } => {
                let reason = "r".repeat(usize::from(*reason_len));
                let closed = self.client.close(now, *code, &reason);
                let fits = close_code::is_sendable(*code) && reason.len() <= close_code::MAX_REASON;
                if closed.is_ok() {
                    assert!(fits, "close({code}, {} bytes) accepted", reason.len());
                    self.closed_by_app = true;
                }
            }
            Op::ReconnectNow => self.client.reconnect_now(now),
            Op::Stall => {
                let open = self.client.state() == ReadyState::Open;
                if let Some(c) = self.who(Who::Current).filter(|_| open) {
                    self.stalled = Some(c);
                    self.client.handle_event(now, Event::WriteBlocked(c));
                }
            }
            Op::FailWrite => self.fail_write(),
        }
    }

    fn tick(&mut self, tick: Tick) {
        if let Some(at) = self.clock.tick(tick, self.client.poll_timeout()) {
            self.client.handle_timeout(at);
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn frame(&mut self, c: ConnId, incoming: &Incoming) {
        let now = self.clock.now;
        let last_ping = self.last_ping.clone().unwrap_or_default();
        let frame = match incoming {
            Incoming::Text(t) => Frame::Text(t),
            Incoming::Binary(b) => Frame::Binary(b),
            Incoming::Ping(p) => Frame::Ping(p),
            Incoming::PongForLastPing => Frame::Pong(&last_ping),
            Incoming::Pong(p) => Frame::Pong(p),
            Incoming::HeartbeatReply => match &self.config.heartbeat.kind {
                HeartbeatKind::App(app) if app.message == Message::Text("echo".into()) => {
                    Frame::Text("echo")
                }
                HeartbeatKind::App(_) => Frame::Text("pong"),
                _ => Frame::Pong(&last_ping),
            },
            Incoming::Close(close) => Frame::Close(close.as_ref().map(|(c, r)| (*c, r.as_str()))),
        };
        self.client.handle_event(now, Event::Frame(c, frame));
    }

    fn send_now(&mut self, len: u8) {
        let Some(c) = self.who(Who::Current) else {
            return;
        };
        let id = self.fresh();
        match self.client.send_now(c, tagged(id, false, len)) {
            Ok(Some(message)) => {
                self.accepted += 1;
                self.hand(c, &message);
            }
            Ok(None) => self.accepted += 1,
            Err(_) => {}
        }
    }

    fn fail_write(&mut self) {
        let Some(c) = self.who(Who::Current) else {
            return;
        };
        self.stalled = None;
        let mut taken = VecDeque::new();
        self.client.take_actions(&mut taken);
        let first = taken
            .iter()
            .position(|a| matches!(a, Action::Send { conn, .. } if *conn == c));
        if let Some(Action::Send { message, .. }) = first.and_then(|i| taken.remove(i)) {
            // Written to a socket that then failed: handed over, lost with it.
            self.hand(c, &message);
        }
        self.client.give_back(c, &mut taken);
        for action in taken {
            assert!(
                !matches!(action, Action::Send { conn, .. } if conn == c),
                "give_back left a send for {c}"
            );
            self.act(action);
        }
        self.client
            .handle_event(self.clock.now, Event::Disconnected(c, Some("broken pipe")));
        self.ended(c);
    }

    fn hand(&mut self, c: ConnId, message: &Message) {
        assert!(self.live.contains(&c), "a message for {c}, which is gone");
        let tag = tag_of(message);
        assert!(self.handed.insert(tag), "message {tag} handed over twice");
    }

    fn drain(&mut self) {
        if self.stalled.is_some() && self.stalled != self.client.current_conn() {
            self.stalled = None;
        }
        while let Some(action) = self
            .stalled
            .is_none()
            .then(|| self.client.poll_action())
            .flatten()
        {
            self.act(action);
        }
        while let Some(notice) = self.client.poll_notice() {
            self.notice(notice);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect {
                conn,
                attempt,
                deadline,
            } => {
                assert!(!self.closed_by_app, "connect after close()");
                assert!(
                    self.live.is_empty(),
                    "{conn} started while {:?} is in flight",
                    self.live
                );
                assert!(
                    self.issued.last().is_none_or(|l| conn > *l),
                    "ids must grow"
                );
                assert!(deadline > self.clock.now, "connect deadline not ahead");
                if let Some(max) = self.config.reconnect.max_attempts {
                    assert!(attempt <= max, "attempt {attempt} past max {max}");
                }
                self.live.insert(conn);
                self.issued.push(conn);
            }
            Action::Abort { conn } => self.ended(conn),
            Action::SendPing { conn, payload } => {
                assert!(self.issued.contains(&conn), "ping on {conn}, never started");
                assert!(!self.closed_by_app, "ping after close()");
                self.last_ping = Some(payload.as_bytes().to_vec());
            }
            Action::SendHeartbeat { conn } => {
                assert!(
                    self.issued.contains(&conn),
                    "heartbeat on {conn}, never started"
                );
                assert!(!self.closed_by_app, "heartbeat after close()");
            }
            Action::Send { conn, message } => self.hand(conn, &message),
            Action::Close { conn, code, reason } => {
                assert!(
                    self.issued.contains(&conn),
                    "close on {conn}, never started"
                );
                assert!(
                    close_code::is_sendable(code),
                    "close code {code} on the wire"
                );
                assert!(
                    reason.len() <= close_code::MAX_REASON,
                    "close reason too long"
                );
            }
        }
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Dropped { messages, .. } => self.dropped += messages,
            Notice::Unconfirmed { messages, .. } => {
                // Only messages handed over can be unconfirmed.
                self.unconfirmed += messages;
                assert!(
                    self.unconfirmed <= self.handed.len(),
                    "more unconfirmed than handed"
                );
            }
            Notice::ReconnectScheduled { attempt, delay } => {
                assert!(!self.closed_by_app, "reconnect scheduled after close()");
                assert!(attempt >= 1);
                let rc = &self.config.reconnect;
                let most = rc.backoff.max_delay().max(rc.retry_after_cap);
                assert!(delay <= most, "delay {delay:?} past {most:?}");
            }
            Notice::Open { conn } => assert!(self.live.contains(&conn), "{conn} opened, gone"),
            _ => {}
        }
    }

    /// `timed`: the step ran the timers at `now`, so nothing is due any more.
    fn check(&self, timed: bool) {
        let next = self.client.poll_timeout();
        assert!(
            next.is_none_or(|d| d > self.clock.now || (!timed && d == self.clock.now)),
            "deadline {:?} not past now {:?}",
            next.map(|d| d - self.clock.start),
            self.clock.now - self.clock.start
        );
        if self.stalled.is_none() {
            assert!(
                self.client
                    .current_conn()
                    .is_none_or(|c| Some(&c) == self.issued.last()),
                "current connection is not the newest"
            );
            let held = self.client.queued_messages();
            assert_eq!(
                self.accepted,
                self.handed.len() + self.dropped + held,
                "accepted = handed + dropped + queued"
            );
        }
    }

    /// `close()`, then the timers as they come due: whatever happened, the client ends
    /// within its close timeout, and every message is accounted for.
    fn wind_down(&mut self) {
        self.stalled = None;
        self.client
            .close(self.clock.now, 1000, "")
            .expect("close(1000) is valid");
        self.closed_by_app = true;
        let closed_at = self.clock.now;
        self.drain();
        for _ in 0..16 {
            let Some(at) = self.client.poll_timeout() else {
                break;
            };
            self.clock.now = self.clock.now.max(at);
            self.client.handle_timeout(at);
            self.drain();
        }
        assert!(
            self.client.is_closed(),
            "not closed: {:?}",
            self.client.state()
        );
        assert_eq!(self.client.poll_timeout(), None, "a deadline after the end");
        let took = self.clock.now - closed_at;
        assert!(took <= self.config.close_timeout, "close took {took:?}");
        assert_eq!(
            self.accepted,
            self.handed.len() + self.dropped,
            "accepted = handed + dropped at the end"
        );
    }
}
