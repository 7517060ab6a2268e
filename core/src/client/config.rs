//! Client configuration: every knob, its default and the reason for it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::frame::{close_code, Frame, Message};
use crate::ConfigError;

/// Everything a [`Client`](crate::Client) needs to know. `Default` gives a configuration
/// that suits a client talking to a server behind ordinary proxies and load balancers.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `ClientConfig::default()` and set the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// How the client checks that the server is still there.
    pub heartbeat: HeartbeatConfig,
    /// When and how often to come back after a disconnect.
    pub reconnect: ReconnectConfig,
    /// What happens to messages sent while the connection is not open.
    pub queue: QueueConfig,
    /// How long one connection attempt (TCP, TLS and the HTTP upgrade) may take.
    ///
    /// Default 10 s: long enough for a slow TLS handshake across continents, short
    /// enough that a black-holed SYN does not stall reconnection for minutes (the OS
    /// default is often over two minutes).
    pub connect_timeout: Duration,
    /// How long to wait for the close handshake before dropping the connection.
    ///
    /// Default 5 s: a live peer answers a Close in one round trip; a dead one never does.
    pub close_timeout: Duration,
    /// How long the connection's socket may take nothing (a write could not finish and
    /// none has finished since) before the client drops the connection as broken and
    /// reconnects.
    ///
    /// Default 5 s: a server that is merely busy drains a socket buffer in well under a
    /// second; one that takes nothing for 5 s has stopped reading, and the heartbeat
    /// cannot tell, because its answers may still arrive.
    pub write_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            heartbeat: HeartbeatConfig::default(),
            reconnect: ReconnectConfig::default(),
            queue: QueueConfig::default(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientConfig {
    /// Checks that the configuration makes sense; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let hb = &self.heartbeat;
        if !matches!(hb.kind, HeartbeatKind::Off) {
            nonzero("heartbeat.interval", hb.interval)?;
            nonzero("heartbeat.timeout", hb.timeout)?;
            nonzero("heartbeat.probe_timeout", hb.probe_timeout)?;
        }
        if let Some(threshold) = hb.suspend_threshold {
            nonzero("heartbeat.suspend_threshold", threshold)?;
        }
        if let HeartbeatKind::App(app) = &hb.kind {
            if app.message.is_empty() {
                return Err(ConfigError::new(
                    "heartbeat.kind",
                    "an application heartbeat message must not be empty",
                ));
            }
        }
        nonzero("connect_timeout", self.connect_timeout)?;
        nonzero("close_timeout", self.close_timeout)?;
        nonzero("write_timeout", self.write_timeout)?;
        let rc = &self.reconnect;
        match rc.backoff {
            Backoff::Fixed(d) => nonzero("reconnect.backoff", d)?,
            Backoff::Exponential {
                initial,
                max,
                factor,
            } => {
                nonzero("reconnect.backoff.initial", initial)?;
                if max < initial {
                    return Err(ConfigError::new(
                        "reconnect.backoff.max",
                        "must be at least reconnect.backoff.initial",
                    ));
                }
                if factor < 2 {
                    return Err(ConfigError::new(
                        "reconnect.backoff.factor",
                        "must be at least 2",
                    ));
                }
            }
        }
        if rc.jitter == Jitter::Full && rc.backoff.max_delay() < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "reconnect.jitter",
                "full jitter over a delay under 10 ms reconnects in a tight loop",
            ));
        }
        if let Some(code) = rc
            .terminal_close_codes
            .iter()
            .find(|c| !(1000..=4999).contains(*c))
        {
            return Err(ConfigError::new(
                "reconnect.terminal_close_codes",
                format!("{code} is not a WebSocket close code"),
            ));
        }
        if let Some(s) = rc
            .terminal_http_statuses
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(ConfigError::new(
                "reconnect.terminal_http_statuses",
                format!("{s} is not an HTTP status"),
            ));
        }
        if self.queue.max_messages > 0 && self.queue.max_bytes == 0 {
            return Err(ConfigError::new(
                "queue.max_bytes",
                "is 0 while queue.max_messages is not: no message could ever be queued",
            ));
        }
        Ok(())
    }
}

pub(crate) fn nonzero(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::new(field, "must be greater than zero"))
    } else {
        Ok(())
    }
}

/// The client's heartbeat.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `HeartbeatConfig::default()` and set the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// What a heartbeat is on the wire.
    pub kind: HeartbeatKind,
    /// Quiet time before a heartbeat is sent.
    ///
    /// Default 20 s: below the 30-60 s idle limits of common proxies and load balancers
    /// (nginx `proxy_read_timeout` 60 s, AWS ALB 60 s, Heroku 55 s), so the heartbeat
    /// itself keeps the path open.
    pub interval: Duration,
    /// How long to wait for the reply before the peer is declared dead.
    ///
    /// Default 10 s: generous for a round trip on a congested mobile link; with the
    /// interval it bounds detection of a dead peer to 30 s.
    pub timeout: Duration,
    /// Whether any inbound frame proves the peer alive (`true`, the default, as seed 003's
    /// `heartCheck` does) or only the reply to a heartbeat does (`false`, seed 001).
    ///
    /// With `true`, a busy connection sends no heartbeats at all.
    pub any_frame_is_alive: bool,
    /// How much time the client may lose before it concludes that it was suspended (a
    /// laptop lid, a frozen VM, a stopped process): it was woken this far past its
    /// deadline, or [`Client::handle_wall_clock`](crate::Client::handle_wall_clock)
    /// saw the wall clock move this much further than the driver's clock. The connection
    /// is then suspect: a heartbeat goes out at once with [`HeartbeatConfig::probe_timeout`]
    /// and only its reply proves the peer alive, and the backoff starts fresh. `None`
    /// turns the check off.
    ///
    /// Default 5 s: a running process is woken within milliseconds of its deadline, so 5 s
    /// late is a suspension, not load; the peer has meanwhile most likely given up on
    /// the connection, or a NAT on the way has forgotten it.
    pub suspend_threshold: Option<Duration>,
    /// The deadline for the reply to the heartbeat sent after a suspension (never longer
    /// than [`HeartbeatConfig::timeout`]).
    ///
    /// Default 3 s: a live peer answers in one round trip, and after a suspension a dead
    /// connection is the likelier case; the sooner it is found, the sooner a new one opens.
    pub probe_timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            kind: HeartbeatKind::Protocol,
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            any_frame_is_alive: true,
            suspend_threshold: Some(Duration::from_secs(5)),
            probe_timeout: Duration::from_secs(3),
        }
    }
}

/// What a heartbeat is.
#[derive(Debug, Clone)]
pub enum HeartbeatKind {
    /// A protocol Ping frame whose 8-byte payload is a sequence number; the matching Pong
    /// gives a round-trip time. Every conforming WebSocket peer answers it.
    Protocol,
    /// An application message and a rule recognising its reply, for servers that speak
    /// the seed articles' `"ping"`/`"pong"` or JSON `heart_beat` style.
    App(AppHeartbeat),
    /// No heartbeat: a dead peer is noticed only when the OS notices.
    Off,
}

/// An application-level heartbeat: the message to send and how to recognise the reply.
/// Replies are consumed by the core and not delivered to the application.
#[derive(Debug, Clone)]
pub struct AppHeartbeat {
    /// The message sent as a heartbeat.
    pub message: Message,
    /// Which inbound message is the reply.
    pub reply: ReplyMatcher,
}

impl AppHeartbeat {
    /// Sends `ping` as text and expects exactly `pong` back (seed 001).
    pub fn text(ping: &str, pong: &str) -> Self {
        AppHeartbeat {
            message: Message::Text(ping.to_owned()),
            reply: ReplyMatcher::Exact(Message::Text(pong.to_owned())),
        }
    }

    /// Sends `message` and expects the server to echo it back unchanged (seed 002's JSON
    /// `heart_beat`, seed 003's `"666"`).
    pub fn echo(message: Message) -> Self {
        AppHeartbeat {
            message,
            reply: ReplyMatcher::Echo,
        }
    }
}

/// Recognises the reply to an application heartbeat.
#[derive(Clone)]
pub enum ReplyMatcher {
    /// The reply is exactly this message.
    Exact(Message),
    /// The reply is the heartbeat message itself, echoed: the same bytes, whether the
    /// server echoes it as text or as binary.
    Echo,
    /// The reply is a text message containing this string.
    TextContains(String),
    /// Any rule of the application's.
    Custom(Arc<dyn Fn(&Frame<'_>) -> bool + Send + Sync>),
}

impl ReplyMatcher {
    /// Whether `frame` is the reply to `sent`.
    pub fn matches(&self, sent: &Message, frame: &Frame<'_>) -> bool {
        match self {
            ReplyMatcher::Exact(m) => m.as_frame() == *frame,
            // Echo servers do not always keep the frame type (seed 002's server, run on
            // `ws` 8, echoes a text heartbeat as a binary frame): compare the bytes.
            ReplyMatcher::Echo => match (sent, frame) {
                (Message::Text(s), Frame::Text(t)) => s == t,
                (Message::Text(s), Frame::Binary(b)) => s.as_bytes() == *b,
                (Message::Binary(s), Frame::Binary(b)) => s == b,
                (Message::Binary(s), Frame::Text(t)) => s.as_slice() == t.as_bytes(),
                _ => false,
            },
            ReplyMatcher::TextContains(s) => {
                matches!(frame, Frame::Text(t) if t.contains(s.as_str()))
            }
            ReplyMatcher::Custom(f) => f(frame),
        }
    }
}

impl fmt::Debug for ReplyMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyMatcher::Exact(m) => f.debug_tuple("Exact").field(m).finish(),
            ReplyMatcher::Echo => f.write_str("Echo"),
            ReplyMatcher::TextContains(s) => f.debug_tuple("TextContains").field(s).finish(),
            ReplyMatcher::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Reconnection policy.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `ReconnectConfig::default()` and set the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// The delay curve.
    ///
    /// Default: exponential from 1 s doubling to 30 s. The first retry is quick enough
    /// for a server restart; the cap keeps a long outage from turning into hours of wait.
    pub backoff: Backoff,
    /// Randomisation applied after the cap.
    ///
    /// Default [`Jitter::Equal`]: spreads a crowd of clients dropped by the same restart,
    /// each keeping its place in line for the whole outage, and after the first retry
    /// keeps at least half of each wait, so no client retries in a tight loop.
    /// Measured with 10,000 clients and a server restarted after 1 s (the storm bench):
    /// all back in 3.2 s, the fullest 100 ms holding 1.5-1.7x the mean, against
    /// 3.0-3.6x with a fresh draw per attempt and 9-12x (and a 16 s tail) with
    /// [`Jitter::Full`].
    pub jitter: Jitter,
    /// Maximum reconnect attempts in a row without a stable connection; `None` retries
    /// forever (seed 000's `reconnectCount`, with `None` for its `-1`). `Some(0)` never
    /// reconnects.
    ///
    /// Default `None`: a client's job is to stay connected; terminal failures (below)
    /// still stop it.
    pub max_attempts: Option<u32>,
    /// How long a connection must stay open before the attempt counter resets.
    ///
    /// Default 10 s: a server that accepts and then drops at once (a crash loop) keeps
    /// backing off instead of being hammered at the first retry's delay.
    pub stable_after: Duration,
    /// Upper bound on a server's `Retry-After` (HTTP 429 and 503).
    ///
    /// Default 5 min: honours a real maintenance window, ignores an absurd header.
    pub retry_after_cap: Duration,
    /// Handshake answers after which trying again is pointless.
    ///
    /// Default 400, 401, 403, 404, 410: the request itself is wrong or unwelcome, and
    /// hammering an auth failure can get a client banned.
    pub terminal_http_statuses: Vec<u16>,
    /// Close codes that mean "do not come back".
    ///
    /// Default 1002, 1003, 1007, 1008, 1009, 1010 (the peer rejects what this client
    /// sends; reconnecting repeats the offence) and [`close_code::REPLACED`] (another
    /// device took over this identity; returning would start a replace war).
    pub terminal_close_codes: Vec<u16>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            backoff: Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30)),
            jitter: Jitter::Equal,
            max_attempts: None,
            stable_after: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(300),
            terminal_http_statuses: vec![400, 401, 403, 404, 410],
            terminal_close_codes: vec![
                close_code::PROTOCOL_ERROR,
                close_code::UNSUPPORTED,
                close_code::INVALID_PAYLOAD,
                close_code::POLICY,
                close_code::TOO_BIG,
                close_code::MANDATORY_EXTENSION,
                close_code::REPLACED,
            ],
        }
    }
}

/// Bounds of the queue that holds messages sent while the connection is not open. It
/// also takes back the messages a lost connection never got to write (sent while it
/// was open, not yet handed to the WebSocket library), ahead of the rest: they go out
/// on the next connection.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `QueueConfig::default()` and set the fields you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Most messages held. Default 1024. `0` disables queueing: sends while
    /// disconnected are rejected.
    pub max_messages: usize,
    /// Most payload bytes held. Default 1 MiB: a few seconds of a chatty client's
    /// traffic, small enough not to matter to any process.
    pub max_bytes: usize,
    /// What to do when a message does not fit. Default [`Overflow::RejectNew`]: the
    /// caller gets its message back with an error and decides.
    pub overflow: Overflow,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_messages: 1024,
            max_bytes: 1 << 20,
            overflow: Overflow::RejectNew,
        }
    }
}

/// Queue overflow policy. Either way the loss is reported, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the new message: `send` returns it inside the error.
    RejectNew,
    /// Drop the oldest queued messages to make room, and emit
    /// [`Notice::Dropped`](crate::Notice::Dropped).
    DropOldest,
}
