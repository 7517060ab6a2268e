//! Server configuration: every knob, its default and the reason for it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::json;
use super::upgrade::{NameSource, PathRule, UpgradeRules};
use crate::client::config::nonzero;
use crate::frame::{Frame, Message};
use crate::ConfigError;

/// Everything a [`Server`](crate::Server) needs to know. `Default` serves seed 002's
/// clients (`/ws/?name=...`, `"ping"`/`"pong"` and JSON `heart_beat`) behind ordinary
/// proxies.
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `ServerConfig::default()` and set the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Inbound quiet time after which the server sends a protocol Ping. Any inbound
    /// frame restarts it, so a chatty client is never pinged.
    ///
    /// Default 30 s: traffic at least twice a minute keeps the path through proxies and
    /// load balancers open (their idle limits are commonly 60 s), and it is the
    /// interval of the `ws` library's well-known `isAlive` example.
    pub ping_interval: Duration,
    /// Inbound quiet time after which a client is evicted (closed with
    /// [`close_code::IDLE_TIMEOUT`](crate::close_code::IDLE_TIMEOUT) and dropped). Must be
    /// longer than `ping_interval`.
    ///
    /// Default 75 s: the Ping goes out after 30 s and a live client then has 45 s to
    /// answer, room for a congested mobile link; seed clients that heartbeat every 30 s
    /// (seed 002) stay well inside it.
    pub idle_timeout: Duration,
    /// How late a Ping may go out so that clients due within the same window are pinged
    /// in one wake-up. Pings are never early, and eviction does not depend on when the
    /// Ping went out, so it stays exact. The slack in force is at most a tenth of
    /// `ping_interval` and half of `idle_timeout - ping_interval`, so short test
    /// intervals keep proportionate timing and a client always keeps most of its time
    /// to answer.
    ///
    /// Default 100 ms: nothing for liveness (even with a 1 s interval), and it bounds the
    /// wake-ups spent on pings to about ten a second however many clients there are,
    /// instead of one per client when their deadlines are spread out. Zero wakes for
    /// every deadline.
    pub ping_slack: Duration,
    /// Application heartbeats from clients that cannot send Ping frames (browsers), in
    /// order; the first rule that matches a text or binary message applies. Empty turns
    /// the feature off.
    ///
    /// Default: [`HeartbeatRule::text`]`("ping", "pong")` (seed 001) and
    /// [`HeartbeatRule::json_echo`]`("ModeCode", "heart_beat")` (seed 002).
    pub app_heartbeats: Vec<HeartbeatRule>,
    /// How upgrade requests are judged before the 101.
    pub upgrade: UpgradeRules,
    /// How long one HTTP upgrade may take, from the accepted socket to the 101 written,
    /// before the socket is dropped ([`EvictReason::HandshakeTimeout`](crate::EvictReason)).
    ///
    /// Default 10 s: a client on a poor mobile link sends its few hundred bytes of
    /// request well within it, and a client that trickles bytes to hold sockets open
    /// (slowloris) is cut off soon.
    pub handshake_timeout: Duration,
    /// How long the close handshake may take before the connection is aborted.
    ///
    /// Default 5 s: a live peer answers a Close in one round trip; a dead one never does.
    pub close_timeout: Duration,
    /// How long a connection's socket may take nothing (a write could not finish and
    /// none has finished since) before the client is evicted
    /// ([`EvictReason::WriteStall`](crate::EvictReason)).
    ///
    /// Default 10 s: a reader that is merely slow drains a socket buffer in well under a
    /// second; a peer that takes nothing for 10 s has stopped reading, even if it still
    /// sends (and so looks alive to the idle timeout).
    pub write_timeout: Duration,
    /// How much time the server may lose before it concludes that it was suspended (a
    /// frozen VM, a stopped process, a laptop lid over a development server): it woke
    /// this much past the deadline it asked for, with nothing heard meanwhile. Every
    /// deadline then moves by the time lost ([`ServerNotice::Resumed`](crate::ServerNotice)),
    /// so clients are judged on the time the server saw pass: those that were silent
    /// only because the server could not ping them are pinged, not evicted at once.
    /// `None`: deadlines stand, and a long suspension evicts every quiet client.
    ///
    /// Default 5 s, as the client's: a running server is woken within milliseconds of
    /// its deadline; 5 s lost is a suspension.
    pub suspend_threshold: Option<Duration>,
    /// How long a driver waits before it accepts again after accepting failed (out of
    /// file descriptors, say): see
    /// [`Server::handle_accept_failed`](crate::Server::handle_accept_failed).
    ///
    /// Default 50 ms: long enough that a listener in trouble is not retried in a busy
    /// loop, short enough that connections wait little once descriptors are free again.
    pub accept_pause: Duration,
    /// Largest inbound message in bytes. Drivers configure their WebSocket library with
    /// it; a larger message that still reaches the core is not delivered and the
    /// connection is closed with [`close_code::TOO_BIG`](crate::close_code::TOO_BIG).
    ///
    /// Default 64 KiB: far above heartbeats and chat or JSON messages, and it bounds
    /// what one client can make the server buffer. WebSocket libraries default to tens
    /// of megabytes per message, which lets any client claim that much memory; raise
    /// it deliberately for file transfer.
    pub max_message_size: usize,
    /// Largest inbound frame in bytes; drivers configure their WebSocket library with
    /// it, which fails a larger frame with [`close_code::TOO_BIG`](crate::close_code::TOO_BIG)
    /// before reading its payload. A message may span several frames, each within
    /// this limit, up to `max_message_size` in all.
    ///
    /// Default 64 KiB, like `max_message_size`: one frame header can then claim no
    /// more memory than one message.
    pub max_frame_size: usize,
    /// Most payload bytes per client handed to the driver and not yet reported written
    /// with [`Server::handle_written`](crate::Server::handle_written). A send that would
    /// pass it evicts the client with [`close_code::BACKLOG`](crate::close_code::BACKLOG).
    ///
    /// Default 256 KiB: hundreds of typical messages or four of the largest inbound
    /// ones echoed back; a client that far behind is not keeping up, and 10,000 such
    /// clients still fit in 2.5 GiB instead of growing without limit.
    pub max_backlog_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            ping_slack: Duration::from_millis(100),
            app_heartbeats: vec![
                HeartbeatRule::text("ping", "pong"),
                HeartbeatRule::json_echo("ModeCode", "heart_beat"),
            ],
            upgrade: UpgradeRules::default(),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            suspend_threshold: Some(Duration::from_secs(5)),
            accept_pause: Duration::from_millis(50),
            max_message_size: 64 << 10,
            max_frame_size: 64 << 10,
            max_backlog_bytes: 256 << 10,
        }
    }
}

impl ServerConfig {
    /// The ping slack in force: [`ServerConfig::ping_slack`] capped at a tenth of
    /// `ping_interval` and half of `idle_timeout - ping_interval`.
    pub fn effective_ping_slack(&self) -> Duration {
        let gap = self.idle_timeout.saturating_sub(self.ping_interval);
        self.ping_slack.min(self.ping_interval / 10).min(gap / 2)
    }

    /// Checks that the configuration makes sense; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero("ping_interval", self.ping_interval)?;
        if self.idle_timeout <= self.ping_interval {
            return Err(ConfigError::new(
                "idle_timeout",
                "must be longer than ping_interval, or clients are evicted before they are pinged",
            ));
        }
        nonzero("handshake_timeout", self.handshake_timeout)?;
        nonzero("close_timeout", self.close_timeout)?;
        nonzero("write_timeout", self.write_timeout)?;
        if let Some(threshold) = self.suspend_threshold {
            nonzero("suspend_threshold", threshold)?;
        }
        nonzero("accept_pause", self.accept_pause)?;
        if self.max_message_size == 0 {
            return Err(ConfigError::new(
                "max_message_size",
                "must be greater than zero",
            ));
        }
        if self.max_frame_size == 0 {
            return Err(ConfigError::new(
                "max_frame_size",
                "must be greater than zero",
            ));
        }
        if self.max_backlog_bytes == 0 {
            return Err(ConfigError::new(
                "max_backlog_bytes",
                "must be greater than zero",
            ));
        }
        for rule in &self.app_heartbeats {
            match &rule.when {
                HeartbeatMatch::Exact(m) if m.is_empty() => {
                    return Err(ConfigError::new(
                        "app_heartbeats",
                        "a heartbeat message to match must not be empty",
                    ))
                }
                HeartbeatMatch::JsonField { key, .. } if key.is_empty() => {
                    return Err(ConfigError::new(
                        "app_heartbeats",
                        "a JSON heartbeat key must not be empty",
                    ))
                }
                _ => {}
            }
        }
        let up = &self.upgrade;
        match &up.path {
            PathRule::Exact(p) | PathRule::Prefix(p) if !p.starts_with('/') => {
                return Err(ConfigError::new("upgrade.path", "must start with '/'"));
            }
            _ => {}
        }
        if let NameSource::Query(key) = &up.name {
            if key.is_empty() {
                return Err(ConfigError::new(
                    "upgrade.name",
                    "the query parameter name must not be empty",
                ));
            }
        }
        if matches!(up.name, NameSource::None) && up.name_required {
            return Err(ConfigError::new(
                "upgrade.name_required",
                "is true while upgrade.name is None: every request would be refused",
            ));
        }
        if up.max_name_len == 0 {
            return Err(ConfigError::new(
                "upgrade.max_name_len",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// A predicate over inbound frames, for [`HeartbeatMatch::Custom`].
pub type FrameFn = Arc<dyn Fn(&Frame<'_>) -> bool + Send + Sync>;

/// An application heartbeat the server answers: which message it is, the answer, and
/// whether the application also sees it.
#[derive(Debug, Clone)]
pub struct HeartbeatRule {
    /// Which inbound message is the heartbeat.
    pub when: HeartbeatMatch,
    /// What the server sends back.
    pub answer: HeartbeatAnswer,
    /// Whether the heartbeat is also delivered to the application. Default `false`:
    /// heartbeats are consumed, as the seeds' servers never treat them as messages.
    pub deliver: bool,
}

impl HeartbeatRule {
    /// Text `ping` is answered with text `pong` (seed 001: `"ping"` / `"pong"`).
    pub fn text(ping: &str, pong: &str) -> Self {
        HeartbeatRule {
            when: HeartbeatMatch::Exact(Message::Text(ping.to_owned())),
            answer: HeartbeatAnswer::Reply(Message::Text(pong.to_owned())),
            deliver: false,
        }
    }

    /// Text `message` is echoed back unchanged (seed 003's `"666"`).
    pub fn echo_text(message: &str) -> Self {
        HeartbeatRule {
            when: HeartbeatMatch::Exact(Message::Text(message.to_owned())),
            answer: HeartbeatAnswer::Echo,
            deliver: false,
        }
    }

    /// A JSON object whose top-level `key` is the string `value` is echoed back (seed
    /// 002: `{"ModeCode":"heart_beat","msg":...}`).
    pub fn json_echo(key: &str, value: &str) -> Self {
        HeartbeatRule {
            when: HeartbeatMatch::JsonField {
                key: key.to_owned(),
                value: value.to_owned(),
            },
            answer: HeartbeatAnswer::Echo,
            deliver: false,
        }
    }

    /// Whether `frame` is this heartbeat.
    pub fn matches(&self, frame: &Frame<'_>) -> bool {
        match &self.when {
            HeartbeatMatch::Exact(m) => m.as_frame() == *frame,
            HeartbeatMatch::JsonField { key, value } => match frame {
                Frame::Text(t) => json::top_level_str_field_is(t, key, value),
                _ => false,
            },
            HeartbeatMatch::Custom(f) => f(frame),
        }
    }
}

/// Recognises an application heartbeat.
///
/// (The client's `ReplyMatcher` answers a different question: whether a frame replies to
/// what *we* sent, hence its `Echo` variant; the server matches what the peer sent.)
#[derive(Clone)]
pub enum HeartbeatMatch {
    /// Exactly this message (text or binary).
    Exact(Message),
    /// A JSON text message: an object whose top-level member `key` is the string `value`.
    JsonField {
        /// The member name (`ModeCode`).
        key: String,
        /// Its string value (`heart_beat`).
        value: String,
    },
    /// Any rule of the application's.
    Custom(FrameFn),
}

impl fmt::Debug for HeartbeatMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeartbeatMatch::Exact(m) => f.debug_tuple("Exact").field(m).finish(),
            HeartbeatMatch::JsonField { key, value } => f
                .debug_struct("JsonField")
                .field("key", key)
                .field("value", value)
                .finish(),
            HeartbeatMatch::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The server's answer to an application heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatAnswer {
    /// Send this message.
    Reply(Message),
    /// Send the heartbeat back unchanged.
    Echo,
    /// Send nothing: the heartbeat only counts as a sign of life.
    Nothing,
}
