//! The server supervisor: liveness (pings and eviction), a registry of clients by name,
//! application heartbeats, outbound backlog bounds, upgrade validation and graceful
//! shutdown, for every connection of a server in one sans-IO state machine.

mod commands;
mod config;
mod handshake;
mod json;
mod table;
mod time;
mod types;
mod upgrade;

pub use config::{FrameFn, HeartbeatAnswer, HeartbeatMatch, HeartbeatRule, ServerConfig};
pub use types::{
    EvictReason, OpenError, ServerAction, ServerNotice, ServerSendError, ServerSendErrorKind,
};
pub use upgrade::{
    percent_decode, Accepted, AuthorizeFn, NameFn, NameSource, OriginRule, PathRule, QueryError,
    Rejection, UpgradeRequest, UpgradeRules,
};

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::frame::{close_code, Frame, Message};
use crate::{ConfigError, ConnId, Disposition, Initiator, PingPayload};
use table::{Closing, Stage, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    Running,
    Draining,
    Done,
}

/// The server supervisor: liveness (pings and eviction), a registry of clients by
/// name, application heartbeats, outbound backlog bounds, upgrade validation and
/// graceful shutdown, for every connection of a server.
///
/// ## The driver's part
///
/// 1. For each accepted socket, [`Server::incoming`]: its handshake deadline starts.
///    When its request head is in, [`Server::accept`] judges it; on `Err` answer the
///    [`Rejection`]'s status and body, on `Ok` write the 101 and call [`Server::open`]
///    with the name.
/// 2. Feed frames ([`Server::handle_frame`]), written bytes ([`Server::handle_written`]),
///    writes that could not finish and those that did ([`Server::handle_write_blocked`],
///    [`Server::handle_write_flushed`]) and ends of connections
///    ([`Server::handle_disconnected`]).
/// 3. Drain [`Server::poll_action`] and execute each action on the connection it names
///    (ignore actions for connections you no longer have), then wait for IO or
///    [`Server::poll_timeout`] and call [`Server::handle_timeout`].
///
/// Every deadline is the server's: a driver keeps no timer of its own.
///
/// ## Liveness
///
/// Any inbound frame is a sign of life. A client quiet for
/// [`ServerConfig::ping_interval`] gets one protocol Ping; a client silent for
/// [`ServerConfig::idle_timeout`] since its last sign of life is evicted at exactly that
/// moment: one [`ServerAction::Evict`] with [`EvictReason::Idle`], and it is forgotten at
/// once. A client that silent is almost always dead or unreachable, so waiting for its
/// close handshake would only hold the socket for another `close_timeout`; but the
/// Close (4408) costs nothing to write, and a client that was merely frozen (a suspended
/// laptop, a stalled tab) then learns why it was dropped instead of seeing a bare reset.
/// Backlog and write-stall evictions work the same way; a handshake that does not
/// finish in time is evicted without a frame.
///
/// All deadlines of all connections come from one timer source: five intrusive lists
/// (handshake, quiet, pinged, closing, and write-stalled), each in deadline order because
/// every connection shares the same timeouts. [`Server::poll_timeout`] is the smallest of
/// five heads, an inbound frame relinks its connection at the tail of the quiet list (no
/// heap operation, no allocation), and [`Server::handle_timeout`] touches only
/// connections that are due.
///
/// ## Payloads
///
/// The server is generic over the outbound payload type `P`, with its length in bytes
/// given by a function at construction ([`Server::with_payload_len`]). A driver can then
/// use its WebSocket library's own message type (tungstenite's `Message` shares its bytes
/// on clone), so [`Server::broadcast`] clones a handle per client instead of copying the
/// payload, and the driver converts nothing. A function rather than a trait, because
/// the orphan rule forbids a driver crate to implement a core trait for a library's
/// type. [`Server::new`] uses the core's own [`Message`], which is copied per client on
/// broadcast; use `Arc<Message>` or the library's type when that matters.
///
/// ## Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use heartline_core::{
///     Disposition, EvictReason, Frame, Server, ServerAction, ServerConfig, UpgradeRequest,
/// };
///
/// let start = Instant::now();
/// let mut server = Server::new(ServerConfig::default(), start).unwrap();
/// // An upgrade request arrives: judge it before answering 101.
/// let headers: &[(&str, &[u8])] = &[("Host", b"example.com")];
/// let req = UpgradeRequest::new("/ws/?name=alice", headers);
/// let alice = server.incoming(start).unwrap();
/// let accepted = server.accept(start, &req).unwrap();
/// // The 101 went out: the connection is open and registered.
/// server.open(start, alice, accepted.name).unwrap();
/// assert_eq!(server.lookup("alice"), Some(alice));
/// // A browser's heartbeat is answered and not delivered.
/// let seen = start + Duration::from_secs(1);
/// assert_eq!(server.handle_frame(seen, alice, Frame::Text("ping")), Disposition::Consumed);
/// assert!(matches!(server.poll_action(), Some(ServerAction::Reply { .. })));
/// // Then silence: a Ping after 30 s of quiet (give or take the batching slack)...
/// let t = server.poll_timeout().unwrap();
/// server.handle_timeout(t);
/// assert!(matches!(server.poll_action(), Some(ServerAction::SendPing { .. })));
/// // ...and eviction exactly 75 s after the last sign of life.
/// let t = server.poll_timeout().unwrap();
/// assert_eq!(t, seen + Duration::from_secs(75));
/// server.handle_timeout(t);
/// assert_eq!(
///     server.poll_action(),
///     Some(ServerAction::Evict { conn: alice, reason: EvictReason::Idle })
/// );
/// assert_eq!(server.lookup("alice"), None);
/// ```
pub struct Server<P = Message> {
    config: ServerConfig,
    /// [`ServerConfig::effective_ping_slack`].
    ping_slack: Duration,
    len: fn(&P) -> usize,
    now: Instant,
    table: Table,
    registry: HashMap<Arc<str>, ConnId>,
    ping_seq: u64,
    /// Actions and whether each is final: queued as a connection was removed (an
    /// eviction or abort), so it goes out although the connection is gone.
    /// Other actions for a connection that is gone by the time they are polled are
    /// dropped: the driver no longer has it.
    actions: VecDeque<(ServerAction<P>, bool)>,
    notices: VecDeque<ServerNotice>,
    shutdown: Shutdown,
}

impl<P> fmt::Debug for Server<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("connections", &self.table.len())
            .field("registered", &self.registry.len())
            .field("pending_actions", &self.actions.len())
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

impl Server<Message> {
    /// A server whose payloads are the core's [`Message`].
    pub fn new(config: ServerConfig, now: Instant) -> Result<Self, ConfigError> {
        Server::with_payload_len(config, now, Message::len)
    }
}

impl<P> Server<P> {
    /// A server whose payloads are `P`, with `len` giving a payload's size in bytes (what
    /// the backlog bound counts). For tungstenite: `|m: &Message| m.len()`.
    pub fn with_payload_len(
        config: ServerConfig,
        now: Instant,
        len: fn(&P) -> usize,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Server {
            ping_slack: config.effective_ping_slack(),
            config,
            len,
            now,
            table: Table::new(),
            registry: HashMap::new(),
            ping_seq: 0,
            actions: VecDeque::with_capacity(64),
            notices: VecDeque::with_capacity(16),
            shutdown: Shutdown::Running,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    // ---- events ----

    /// A frame arrived on `conn`. Any frame is a sign of life. The answer says whether
    /// the application should see it ([`Disposition::Deliver`]), the server dealt with
    /// it (`Consumed`: control frames, application heartbeats, oversized messages), or
    /// `conn` is gone (`Stale`).
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame<'_>) -> Disposition {
        let now = self.clamp(now);
        let Some(idx) = self.table.find(conn) else {
            return Disposition::Stale;
        };
        let too_big = match frame {
            Frame::Text(t) => t.len() > self.config.max_message_size,
            Frame::Binary(b) => b.len() > self.config.max_message_size,
            _ => false,
        };
        match self.table.slot(idx).stage {
            // Data still arriving during a close handshake is the application's.
            Stage::Closing => {
                return match frame {
                    Frame::Text(_) | Frame::Binary(_) if !too_big => Disposition::Deliver,
                    _ => Disposition::Consumed,
                }
            }
            // Not upgraded yet: no frame can have been parsed for it.
            Stage::Handshake => return Disposition::Stale,
            Stage::Quiet | Stage::Pinged => {}
        }
        self.table.move_to(idx, Stage::Quiet, now);
        match frame {
            Frame::Pong(payload) => {
                let slot = self.table.slot_mut(idx);
                if let Some((seq, sent)) = slot.ping {
                    if PingPayload::from_seq(seq).as_bytes() == payload {
                        slot.rtt = Some(now.saturating_duration_since(sent));
                        slot.ping = None;
                    }
                }
                Disposition::Consumed
            }
            Frame::Ping(_) => Disposition::Consumed,
            Frame::Close(close) => {
                let (code, reason) = close.unwrap_or((close_code::NO_STATUS, ""));
                // The WebSocket library answers the Close; wait for the peer to end TCP.
                self.start_close(
                    now,
                    idx,
                    code,
                    Cow::Owned(reason.to_owned()),
                    Initiator::Remote,
                );
                Disposition::Consumed
            }
            Frame::Text(_) | Frame::Binary(_) if too_big => {
                self.start_close(
                    now,
                    idx,
                    close_code::TOO_BIG,
                    Cow::Borrowed("message too big"),
                    Initiator::Local,
                );
                Disposition::Consumed
            }
            Frame::Text(_) | Frame::Binary(_) => self.app_heartbeat(idx, conn, frame),
        }
    }

    /// `bytes` of payload handed out in [`ServerAction::Send`] or
    /// [`ServerAction::Reply`] were written to `conn`'s socket.
    pub fn handle_written(&mut self, conn: ConnId, bytes: usize) {
        if let Some(idx) = self.table.find(conn) {
            let slot = self.table.slot_mut(idx);
            slot.backlog = slot.backlog.saturating_sub(bytes);
        }
    }

    /// A write to `conn` could not finish: its socket takes no more for now. Unless
    /// [`Server::handle_write_flushed`] follows within [`ServerConfig::write_timeout`],
    /// the client is evicted with [`EvictReason::WriteStall`]. Reporting it again while
    /// blocked changes nothing: the stall counts from the first report.
    pub fn handle_write_blocked(&mut self, now: Instant, conn: ConnId) {
        let now = self.clamp(now);
        match self.table.find(conn) {
            // The handshake deadline bounds the writes of an upgrade.
            Some(idx) if self.table.slot(idx).stage != Stage::Handshake => {
                self.table.stall(idx, now);
            }
            _ => {}
        }
    }

    /// Everything written to `conn` so far is on its socket: a stall, if any, is over.
    pub fn handle_write_flushed(&mut self, conn: ConnId) {
        if let Some(idx) = self.table.find(conn) {
            self.table.unstall(idx);
        }
    }

    /// `conn` ended: the peer closed TCP, an IO error happened (`error` says which), or
    /// the driver finished a close or an HTTP answer. The connection leaves the server
    /// and the registry.
    pub fn handle_disconnected(&mut self, now: Instant, conn: ConnId, error: Option<&str>) {
        self.clamp(now);
        let Some(idx) = self.table.find(conn) else {
            return;
        };
        if self.table.slot(idx).stage == Stage::Handshake {
            // Never opened: nobody heard of it.
            self.table.remove(idx);
            self.check_shutdown();
            return;
        }
        let closing = self.table.slot_mut(idx).closing.take();
        let (code, reason, by) = match closing {
            Some(c) => (c.code, c.reason, c.by),
            None => (
                close_code::ABNORMAL,
                Cow::Owned(error.unwrap_or("connection lost").to_owned()),
                Initiator::Transport,
            ),
        };
        self.remove(idx, code, reason, by, None);
    }

    // ---- outputs ----

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<ServerAction<P>> {
        while let Some((action, is_final)) = self.actions.pop_front() {
            if is_final || self.table.find(action.conn()).is_some() {
                return Some(action);
            }
            // Queued for a connection that has gone since: the driver no longer has it.
        }
        None
    }

    /// The next thing to tell the application.
    pub fn poll_notice(&mut self) -> Option<ServerNotice> {
        self.notices.pop_front()
    }

    // ---- getters ----

    /// Connections held: open, or closing and not yet gone (not those still in their
    /// handshake).
    pub fn len(&self) -> usize {
        self.table.len() - self.table.count(Stage::Handshake)
    }

    /// Whether no connection is held (see [`Server::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sockets accepted whose upgrade is not done yet.
    pub fn handshakes(&self) -> usize {
        self.table.count(Stage::Handshake)
    }

    /// Whether `conn` is open (not closing, not gone).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.table
            .find(conn)
            .is_some_and(|i| self.table.slot(i).stage.is_open())
    }

    /// The connection registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<ConnId> {
        self.registry.get(name).copied()
    }

    /// The name `conn` connected with (also while it closes, or after it was replaced).
    pub fn name(&self, conn: ConnId) -> Option<&str> {
        let idx = self.table.find(conn)?;
        self.table.slot(idx).name.as_deref()
    }

    /// The registry: every registered name and its connection, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = (&str, ConnId)> + '_ {
        self.registry.iter().map(|(n, c)| (&**n, *c))
    }

    /// Every open connection (named or not) and its name.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, Option<&str>)> + '_ {
        (0..self.table.capacity()).filter_map(|i| {
            let slot = self.table.held(i)?;
            slot.stage
                .is_open()
                .then(|| (self.table.id(i as u32), slot.name.as_deref()))
        })
    }

    /// Payload bytes handed to the driver for `conn` and not yet reported written.
    pub fn backlog(&self, conn: ConnId) -> Option<usize> {
        self.table.find(conn).map(|i| self.table.slot(i).backlog)
    }

    /// The round-trip time of `conn`'s last answered Ping.
    pub fn rtt(&self, conn: ConnId) -> Option<Duration> {
        self.table.find(conn).and_then(|i| self.table.slot(i).rtt)
    }

    /// Whether [`Server::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown != Shutdown::Running
    }

    /// Whether shutdown finished: every connection is gone.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown == Shutdown::Done
    }

    // ---- internals ----

    fn app_heartbeat(&mut self, idx: u32, conn: ConnId, frame: Frame<'_>) -> Disposition {
        let Some(rule) = self
            .config
            .app_heartbeats
            .iter()
            .find(|r| r.matches(&frame))
        else {
            return Disposition::Deliver;
        };
        let disposition = if rule.deliver {
            Disposition::Deliver
        } else {
            Disposition::Consumed
        };
        let message = match &rule.answer {
            HeartbeatAnswer::Nothing => return disposition,
            HeartbeatAnswer::Reply(m) => m.clone(),
            HeartbeatAnswer::Echo => match frame {
                Frame::Text(t) => Message::Text(t.to_owned()),
                Frame::Binary(b) => Message::Binary(b.to_vec()),
                _ => return disposition,
            },
        };
        let len = message.len();
        if self.charge(idx, len) {
            self.actions
                .push_back((ServerAction::Reply { conn, message }, false));
        }
        disposition
    }

    /// Starts a close handshake on an open connection: it leaves the registry at once.
    fn start_close(
        &mut self,
        now: Instant,
        idx: u32,
        code: u16,
        reason: Cow<'static, str>,
        by: Initiator,
    ) {
        let conn = self.table.id(idx);
        self.unregister(idx, conn);
        if by == Initiator::Local {
            self.actions.push_back((
                ServerAction::Close {
                    conn,
                    code,
                    reason: reason.clone(),
                },
                false,
            ));
        }
        self.table.slot_mut(idx).closing = Some(Closing { code, reason, by });
        self.table.move_to(idx, Stage::Closing, now);
    }

    /// Drops a connection at once, with one action that says why.
    fn evict(&mut self, idx: u32, reason: EvictReason) {
        let conn = self.table.id(idx);
        self.actions
            .push_back((ServerAction::Evict { conn, reason }, true));
        if self.table.slot(idx).stage == Stage::Handshake {
            // Never opened: nobody heard of it.
            self.table.remove(idx);
            self.check_shutdown();
            return;
        }
        let code = reason.close_code().unwrap_or(close_code::ABNORMAL);
        let text = Cow::Borrowed(reason.description());
        self.remove(idx, code, text, Initiator::Local, Some(reason));
    }

    fn unregister(&mut self, idx: u32, conn: ConnId) {
        if let Some(name) = &self.table.slot(idx).name {
            // Only if the name is still ours: a replaced connection must not remove its
            // successor.
            if self.registry.get(&**name) == Some(&conn) {
                self.registry.remove(&**name);
            }
        }
    }

    fn remove(
        &mut self,
        idx: u32,
        code: u16,
        reason: Cow<'static, str>,
        by: Initiator,
        evicted: Option<EvictReason>,
    ) {
        let conn = self.table.id(idx);
        self.unregister(idx, conn);
        let name = self.table.remove(idx);
        self.notices.push_back(ServerNotice::Closed {
            conn,
            name,
            code,
            reason,
            by,
            evicted,
        });
        self.check_shutdown();
    }

    fn check_shutdown(&mut self) {
        if self.shutdown == Shutdown::Draining && self.table.len() == 0 {
            self.shutdown = Shutdown::Done;
            self.notices.push_back(ServerNotice::ShutdownComplete);
        }
    }
}

/// `t + d`, or `None` (never) when that is past what `Instant` can hold.
fn at(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}
