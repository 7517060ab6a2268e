//! The client supervisor: heartbeat, reconnect with backoff, close semantics and a send
//! queue, in one sans-IO state machine.

mod close;
pub(crate) mod config;
mod heartbeat;
mod ledger;
mod lifecycle;
mod queue;
mod types;
mod wake;

pub use config::{
    AppHeartbeat, ClientConfig, HeartbeatConfig, HeartbeatKind, Overflow, QueueConfig,
    ReconnectConfig, ReplyMatcher,
};
pub use types::{
    Action, CloseError, ConnectError, ConnectFailure, DropCause, Event, GiveUpReason, Notice,
    SendError, SendErrorKind,
};

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use self::heartbeat::Beat;
use self::ledger::Ledger;
use self::lifecycle::Next;
use crate::backoff::Jitter;
use crate::frame::{close_code, Frame, Message};
use crate::rng::Rng;
use crate::timers::TimerTable;
use crate::{ConfigError, ConnId, Disposition, Initiator, PingPayload, ReadyState};

/// Named timers, handled in this order when several are due together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Connect = 0,
    Close,
    WriteStall,
    PongDeadline,
    Ping,
    Stable,
    Reconnect,
}

const TIMERS: usize = 7;
const ALL_TIMERS: [Timer; TIMERS] = [
    Timer::Connect,
    Timer::Close,
    Timer::WriteStall,
    Timer::PongDeadline,
    Timer::Ping,
    Timer::Stable,
    Timer::Reconnect,
];

/// Why the client drops a connection whose writes stalled.
const WRITE_STALL: &str = "write timed out: the peer is not reading";

/// What follows a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterClose {
    /// The application closed: stop for good.
    Stop,
    /// `reconnect_now` while open: connect again at once.
    ReconnectNow,
    /// The peer closed: decide by its close code.
    Decide,
}

#[derive(Debug)]
enum Phase {
    Connecting {
        conn: ConnId,
    },
    Open {
        conn: ConnId,
    },
    Closing {
        conn: ConnId,
        after: AfterClose,
        code: u16,
        reason: String,
        by: Initiator,
    },
    /// Waiting out a reconnect delay.
    Waiting,
    /// Closed for good.
    Closed {
        /// `true` when the application closed it (then `reconnect_now` does nothing);
        /// `false` when the client gave up (then `reconnect_now` starts over).
        by_app: bool,
    },
}

/// The client supervisor. See the crate docs for the loop that drives it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    rng: Rng,
    phase: Phase,
    /// Last connection handed out; the next is `last_conn + 1`.
    last_conn: ConnId,
    /// Reconnect attempts in a row without a stable connection.
    failures: u32,
    /// This outage's place in the equal-jitter range (see [`Jitter::Equal`]), drawn at
    /// its first reconnect.
    place: u64,
    /// When this outage's last reconnect attempt was due: with [`Jitter::Equal`] the
    /// next one is due a delay after it, not after the failure, so the time a failure
    /// took to be seen does not move the schedule.
    last_due: Option<Instant>,
    beat: Beat,
    rtt: Option<Duration>,
    timers: TimerTable<TIMERS>,
    now: Instant,
    /// The latest time the client looked for a suspension at (see `Client::enter`).
    checked: Instant,
    /// The last [`Client::handle_wall_clock`] reading, with the time it came with.
    wall: Option<(Instant, SystemTime)>,
    actions: VecDeque<Action>,
    notices: VecDeque<Notice>,
    /// Messages waiting for the connection to open.
    queue: VecDeque<Message>,
    queue_bytes: usize,
    /// Payload bytes of `Send` actions not yet taken by the driver.
    action_bytes: usize,
    /// What the open connection took to write and what the peer was seen to read.
    ledger: Ledger,
}

impl Client {
    /// A client that starts connecting at once: the first [`Client::poll_action`] is
    /// [`Action::Connect`]. `seed` drives the reconnect jitter: the same seed and the same
    /// inputs give the same outputs.
    pub fn new(config: ClientConfig, seed: u64, now: Instant) -> Result<Client, ConfigError> {
        config.validate()?;
        let mut client = Client {
            config,
            rng: Rng::new(seed),
            phase: Phase::Waiting,
            last_conn: ConnId(0),
            failures: 0,
            place: 0,
            last_due: None,
            beat: Beat::default(),
            rtt: None,
            timers: TimerTable::new(),
            now,
            checked: now,
            wall: None,
            actions: VecDeque::with_capacity(8),
            notices: VecDeque::with_capacity(8),
            queue: VecDeque::new(),
            queue_bytes: 0,
            action_bytes: 0,
            ledger: Ledger::default(),
        };
        client.connect(now);
        Ok(client)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Feeds one event in. For a [`Event::Frame`] the answer says whether the
    /// application should see the frame; for other events it is [`Disposition::Consumed`]
    /// (or [`Disposition::Stale`] for a connection that is no longer current).
    pub fn handle_event(&mut self, now: Instant, event: Event<'_>) -> Disposition {
        let now = self.enter(now, Duration::ZERO);
        match event {
            Event::Connected(conn) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                if matches!(self.phase, Phase::Connecting { .. }) {
                    self.on_open(now, conn);
                }
                Disposition::Consumed
            }
            Event::ConnectFailed(conn, error) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                if !matches!(self.phase, Phase::Connecting { .. }) {
                    // A failure reported for a connection already open ends it like
                    // any other transport loss.
                    let detail = match error {
                        ConnectError::Io(e) => e,
                        ConnectError::Http { .. } => "connection failed",
                    };
                    self.on_disconnected(now, conn, Some(detail));
                } else {
                    let failure = match error {
                        ConnectError::Http {
                            status,
                            retry_after,
                        } => ConnectFailure::Http {
                            status,
                            retry_after,
                        },
                        ConnectError::Io(e) => ConnectFailure::Io(e.to_owned()),
                    };
                    self.on_connect_failed(now, conn, failure);
                }
                Disposition::Consumed
            }
            Event::Frame(conn, frame) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                self.on_frame(now, conn, frame)
            }
            Event::WriteBlocked(conn) | Event::WriteFlushed(conn) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                let blocked = matches!(event, Event::WriteBlocked(_));
                let connected = !matches!(self.phase, Phase::Connecting { .. });
                match (blocked, self.timers.get(Timer::WriteStall as usize)) {
                    (true, None) if connected => self
                        .timers
                        .set(Timer::WriteStall as usize, now + self.config.write_timeout),
                    (false, Some(_)) => self.timers.clear(Timer::WriteStall as usize),
                    _ => {}
                }
                Disposition::Consumed
            }
            Event::Disconnected(conn, error) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                self.on_disconnected(now, conn, error);
                Disposition::Consumed
            }
            Event::Violation(conn, code, reason) => {
                if !self.is_current(conn) {
                    return Disposition::Stale;
                }
                self.on_violation(now, conn, code, reason);
                Disposition::Consumed
            }
        }
    }

    /// Handles every deadline at or before `now`. Each handled deadline moves or goes,
    /// so calling this again with the same `now` does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.enter(now, Duration::ZERO);
        // Each timer handled either clears itself or is re-armed strictly in the future,
        // so this loop ends; the bound is a guard, not a limit in practice.
        for _ in 0..TIMERS * 2 {
            let Some(i) = self.timers.take_due(now) else {
                return;
            };
            self.on_timer(now, ALL_TIMERS[i]);
        }
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front()?;
        if let Action::Send { message, .. } = &action {
            self.action_bytes -= message.len();
        }
        Some(action)
    }

    /// Moves every pending action, in order, to the end of `into`: what calling
    /// [`Client::poll_action`] until `None` would give. When `into` is empty the two
    /// queues trade places, so taking a batch costs nothing per action.
    #[inline]
    pub fn take_actions(&mut self, into: &mut VecDeque<Action>) {
        self.action_bytes = 0;
        if into.is_empty() {
            std::mem::swap(&mut self.actions, into);
        } else {
            into.append(&mut self.actions);
        }
    }

    /// The next thing to tell the application.
    #[inline]
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// The one deadline at which [`Client::handle_timeout`] must be called next.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Like the browser's `readyState`. A client waiting to reconnect is `Connecting`.
    pub fn state(&self) -> ReadyState {
        match self.phase {
            Phase::Connecting { .. } | Phase::Waiting => ReadyState::Connecting,
            Phase::Open { .. } => ReadyState::Open,
            Phase::Closing {
                after: AfterClose::Stop,
                ..
            } => ReadyState::Closing,
            // A close on the way to a reconnect is, for the application, connecting.
            Phase::Closing { .. } => ReadyState::Connecting,
            Phase::Closed { .. } => ReadyState::Closed,
        }
    }

    /// Whether the client has stopped for good (closed by the application or gave up).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    /// The connection in use or being opened, if any.
    pub fn current_conn(&self) -> Option<ConnId> {
        match self.phase {
            Phase::Connecting { conn } | Phase::Open { conn } | Phase::Closing { conn, .. } => {
                Some(conn)
            }
            Phase::Waiting | Phase::Closed { .. } => None,
        }
    }

    /// Payload bytes sent by the application and not yet handed to the driver (queued
    /// while disconnected, or waiting in the action queue), like the browser's
    /// `bufferedAmount`.
    pub fn buffered_amount(&self) -> usize {
        self.queue_bytes + self.action_bytes
    }

    /// Messages queued while the connection is not open.
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }

    /// The last measured heartbeat round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    // ---- internals ----

    #[inline]
    fn clamp(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn is_current(&self, conn: ConnId) -> bool {
        self.current_conn() == Some(conn)
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match (timer, &self.phase) {
            (Timer::Connect, Phase::Connecting { conn }) => {
                let conn = *conn;
                self.actions.push_back(Action::Abort { conn });
                self.on_connect_failed(now, conn, ConnectFailure::Timeout);
            }
            (Timer::Close | Timer::WriteStall, Phase::Closing { conn, .. }) => {
                let conn = *conn;
                self.actions.push_back(Action::Abort { conn });
                self.finish_close(now);
            }
            (Timer::WriteStall, Phase::Open { conn }) => {
                let conn = *conn;
                self.actions.push_back(Action::Abort { conn });
                self.leave_open(now);
                self.notices.push_back(Notice::Closed {
                    conn,
                    code: close_code::ABNORMAL,
                    reason: WRITE_STALL.to_owned(),
                    by: Initiator::Local,
                });
                self.after_disconnect(now, Next::Retry(None));
            }
            (Timer::Ping, Phase::Open { conn }) => {
                let conn = *conn;
                self.send_heartbeat(now, conn, now + self.config.heartbeat.timeout);
            }
            (Timer::PongDeadline, Phase::Open { conn }) => {
                let conn = *conn;
                self.notices.push_back(Notice::HeartbeatMissed { conn });
                self.actions.push_back(Action::Abort { conn });
                self.leave_open(now);
                self.notices.push_back(Notice::Closed {
                    conn,
                    code: close_code::ABNORMAL,
                    reason: "heartbeat timeout".to_owned(),
                    by: Initiator::Local,
                });
                self.after_disconnect(now, Next::Retry(None));
            }
            (Timer::Stable, Phase::Open { .. }) => self.failures = 0,
            (Timer::Reconnect, Phase::Waiting) => self.connect(now),
            // A timer that outlived its phase (never armed across phases, but harmless).
            _ => {}
        }
    }
}
