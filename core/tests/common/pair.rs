//! A `Pair` of machines wired together in virtual time: client machines and one server
//! machine exchange frames over a simulated network with seeded latency, loss (as TCP
//! sees it: a retransmission delay, never a hole), frozen peers, partitions and a
//! server that dies and comes back.
//!
//! The network keeps each direction of each connection in order, as TCP does. What it
//! models of the WebSocket library on each side: a Ping is answered with a Pong, a Close
//! with a Close, and the server ends TCP once a close handshake is complete. A
//! partition drops whatever would cross it (so the connections it cuts are half-open);
//! a frozen peer (a suspended laptop, a stopped process) runs no timer and reads
//! nothing until it thaws, while the other side's packets wait in its socket.
//!
//! Everything that happens goes into [`Pair::trace`], so a seed gives the same trace
//! forever.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use heartline_core::{
    Action, Client, ClientConfig, ConnId, ConnectError, Disposition, Event, Frame, Message, Notice,
    Rng, Server, ServerAction, ServerConfig, ServerNotice, UpgradeRequest,
};

/// The simulated network.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// One-way latency, drawn uniformly from this range for each packet.
    pub latency: (Duration, Duration),
    /// Packets in a thousand that are lost once and retransmitted.
    pub loss_per_mille: u64,
    /// How long a lost packet takes to arrive after all.
    pub retransmit: Duration,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            latency: (Duration::from_millis(5), Duration::from_millis(40)),
            loss_per_mille: 20,
            retransmit: Duration::from_millis(200),
        }
    }
}

/// A frame on the wire, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wire {
    /// The TCP handshake and the HTTP upgrade request, in one packet.
    Syn,
    /// The 101.
    Accepted,
    /// The upgrade refused (connection refused, or an HTTP status).
    Refused(Option<u16>),
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// The peer ended TCP cleanly after a close handshake.
    Fin,
    /// The peer's socket is gone.
    Reset,
}

impl Wire {
    fn of(message: Message) -> Wire {
        match message {
            Message::Text(t) => Wire::Text(t),
            Message::Binary(b) => Wire::Binary(b),
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        Some(match self {
            Wire::Text(t) => Frame::Text(t),
            Wire::Binary(b) => Frame::Binary(b),
            Wire::Ping(p) => Frame::Ping(p),
            Wire::Pong(p) => Frame::Pong(p),
            Wire::Close(c) => Frame::Close(c.as_ref().map(|(code, r)| (*code, r.as_str()))),
            _ => return None,
        })
    }
}

/// One client process.
pub struct Peer {
    pub client: Client,
    /// The name it registers under.
    pub name: String,
    /// Suspended: runs nothing, reads nothing.
    pub frozen: bool,
    /// Cut off from the server: packets either way are dropped.
    pub partitioned: bool,
    /// Reads what the server sends. A peer that does not leaves the server's writes
    /// blocked (a slow consumer).
    pub reading: bool,
    /// Texts delivered to the application.
    pub received: Vec<String>,
    /// Notices, with the time since the start.
    pub notices: Vec<(Duration, Notice)>,
    /// Packets that arrived while frozen or not reading, in order.
    held: Vec<(usize, Wire)>,
    /// The deadline this client is filed under in [`Pair::deadlines`].
    filed: Option<std::time::Instant>,
    /// Fed since its outputs were last taken.
    dirty: bool,
}

/// One connection: a client's attempt, and the server's side of it once accepted.
struct Pipe {
    client: usize,
    cconn: ConnId,
    /// The server's id and the server's generation (a restarted server knows nothing).
    sconn: Option<(u64, ConnId)>,
    /// When the last packet each way arrives: TCP keeps them in order.
    last_to_server: Instant,
    last_to_client: Instant,
    /// Each side has sent a Close.
    client_closed: bool,
    server_closed: bool,
    /// A socket that is gone on that side.
    client_gone: bool,
    server_gone: bool,
}

enum To {
    Server,
    Client,
}

/// Client machines and a server machine on a simulated network, in virtual time.
pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub net: Net,
    rng: Rng,
    pub server: Option<Server>,
    server_config: ServerConfig,
    /// Bumped at every restart.
    generation: u64,
    pub server_frozen: bool,
    server_held: Vec<(usize, Wire)>,
    pub server_notices: Vec<(Duration, ServerNotice)>,
    pub clients: Vec<Peer>,
    /// The clients' deadlines, so that the next one is found without a scan.
    deadlines: BTreeSet<(std::time::Instant, usize)>,
    /// Clients fed since their outputs were last taken.
    dirty: Vec<usize>,
    pipes: Vec<Pipe>,
    /// Pipes by (client, client's connection) and by (generation, server's connection).
    by_client: HashMap<(usize, ConnId), usize>,
    by_server: HashMap<(u64, ConnId), usize>,
    /// Packets in flight: (arrival, sequence) -> (pipe, direction, what).
    in_flight: BTreeMap<(Instant, u64), (usize, To, Wire)>,
    sequence: u64,
    /// Every event, one line each: a seed gives the same trace forever.
    pub trace: String,
}

impl Pair {
    /// A running server with `server` and no clients; `seed` drives the network and
    /// the clients' jitter.
    pub fn new(seed: u64, net: Net, server: ServerConfig) -> Pair {
        let start = Instant::now();
        Pair {
            start,
            now: start,
            net,
            rng: Rng::new(seed),
            server: Some(Server::new(server.clone(), start).expect("valid server config")),
            server_config: server,
            generation: 0,
            server_frozen: false,
            server_held: Vec::new(),
            server_notices: Vec::new(),
            clients: Vec::new(),
            deadlines: BTreeSet::new(),
            dirty: Vec::new(),
            pipes: Vec::new(),
            by_client: HashMap::new(),
            by_server: HashMap::new(),
            in_flight: BTreeMap::new(),
            sequence: 0,
            trace: String::new(),
        }
    }

    /// Adds a client named `name`; it starts connecting at once. Returns its index.
    pub fn add_client(&mut self, name: &str, config: ClientConfig) -> usize {
        let seed = self.rng.next_u64();
        let client = Client::new(config, seed, self.now).expect("valid client config");
        self.clients.push(Peer {
            client,
            name: name.to_owned(),
            frozen: false,
            partitioned: false,
            reading: true,
            received: Vec::new(),
            notices: Vec::new(),
            held: Vec::new(),
            filed: None,
            dirty: false,
        });
        let i = self.clients.len() - 1;
        self.touch(i);
        i
    }

    /// Client `i` was fed: its outputs and its deadline may have changed.
    fn touch(&mut self, i: usize) {
        let peer = &mut self.clients[i];
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push(i);
        }
        if let Some(at) = peer.filed.take() {
            self.deadlines.remove(&(at, i));
        }
        if !peer.frozen {
            peer.filed = peer.client.poll_timeout();
            if let Some(at) = peer.filed {
                self.deadlines.insert((at, i));
            }
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs the world until `start + t`, event by event.
    pub fn run_until(&mut self, t: Duration) {
        let end = self.start + t;
        loop {
            self.flush_outputs();
            let Some(next) = self.next_event() else {
                break;
            };
            if next > end {
                break;
            }
            assert!(next >= self.now, "an event in the past");
            self.now = next;
            self.step();
        }
        self.now = end.max(self.now);
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.elapsed() + d);
    }

    /// Kills the server process: its kernel resets every connection.
    pub fn kill_server(&mut self) {
        self.log(format_args!("server killed"));
        self.server = None;
        self.server_held.clear();
        for p in 0..self.pipes.len() {
            let pipe = &mut self.pipes[p];
            if pipe.sconn.is_some() && !pipe.server_gone {
                pipe.server_gone = true;
                self.send(p, To::Client, Wire::Reset);
            }
        }
    }

    /// Starts a new server process (a new machine: it knows no connection).
    pub fn start_server(&mut self) {
        self.log(format_args!("server started"));
        self.generation += 1;
        self.server = Some(Server::new(self.server_config.clone(), self.now).expect("config"));
    }

    /// Freezes or thaws the server.
    pub fn set_server_frozen(&mut self, frozen: bool) {
        self.log(format_args!("server frozen: {frozen}"));
        self.server_frozen = frozen;
        if !frozen {
            for (p, wire) in std::mem::take(&mut self.server_held) {
                self.at_server(p, wire);
            }
        }
    }

    /// Freezes or thaws client `i`.
    pub fn set_frozen(&mut self, i: usize, frozen: bool) {
        self.log(format_args!("client {i} frozen: {frozen}"));
        self.clients[i].frozen = frozen;
        if !frozen {
            // Its clock jumped: whatever came due while it slept is handled now.
            let now = self.now;
            self.clients[i].client.handle_timeout(now);
        }
        self.touch(i);
        self.release(i);
    }

    /// Whether client `i` reads what the server sends.
    pub fn set_reading(&mut self, i: usize, reading: bool) {
        self.clients[i].reading = reading;
        self.release(i);
    }

    /// Cuts client `i` off from the server, or heals the cut.
    pub fn set_partitioned(&mut self, i: usize, partitioned: bool) {
        self.log(format_args!("client {i} partitioned: {partitioned}"));
        self.clients[i].partitioned = partitioned;
    }

    /// Server-side connections of client `i` that the server still holds open.
    pub fn server_conns_of(&self, i: usize) -> usize {
        let Some(server) = &self.server else { return 0 };
        self.pipes
            .iter()
            .filter(|p| p.client == i)
            .filter_map(|p| p.sconn)
            .filter(|&(g, c)| g == self.generation && server.is_open(c))
            .count()
    }

    // ---- the world's clock ----

    fn next_event(&self) -> Option<Instant> {
        let packets = self.in_flight.keys().next().map(|(t, _)| *t);
        let server = self
            .server
            .as_ref()
            .filter(|_| !self.server_frozen)
            .and_then(Server::poll_timeout);
        let clients = self.deadlines.first().map(|(at, _)| *at);
        [packets, server, clients].into_iter().flatten().min()
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (p, to, wire) = entry.remove();
            match to {
                To::Server => self.at_server(p, wire),
                To::Client => self.at_client(p, wire),
            }
        }
        if !self.server_frozen {
            if let Some(server) = &mut self.server {
                server.handle_timeout(now);
            }
        }
        while let Some(&(at, i)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.clients[i].client.handle_timeout(now);
            self.touch(i);
        }
    }

    /// Executes what every machine decided, until nothing is pending.
    fn flush_outputs(&mut self) {
        loop {
            let mut any = false;
            for i in std::mem::take(&mut self.dirty) {
                self.clients[i].dirty = false;
                if self.clients[i].frozen {
                    continue;
                }
                while let Some(action) = self.clients[i].client.poll_action() {
                    any = true;
                    self.client_action(i, action);
                }
                while let Some(notice) = self.clients[i].client.poll_notice() {
                    self.log(format_args!("client {i}: {notice:?}"));
                    let t = self.elapsed();
                    self.clients[i].notices.push((t, notice));
                }
            }
            if !self.server_frozen {
                while let Some(action) = self.server.as_mut().and_then(Server::poll_action) {
                    any = true;
                    self.server_action(action);
                }
                while let Some(notice) = self.server.as_mut().and_then(Server::poll_notice) {
                    self.log(format_args!("server: {notice:?}"));
                    let t = self.elapsed();
                    self.server_notices.push((t, notice));
                }
            }
            if !any {
                return;
            }
        }
    }

    // ---- the network ----

    fn send(&mut self, p: usize, to: To, wire: Wire) {
        if self.clients[self.pipes[p].client].partitioned {
            return;
        }
        let (lo, hi) = self.net.latency;
        let spread = (hi - lo).as_micros() as u64;
        let mut delay = lo + Duration::from_micros(self.rng.below_inclusive(spread));
        if self.rng.below_inclusive(999) < self.net.loss_per_mille {
            delay += self.net.retransmit;
        }
        let pipe = &mut self.pipes[p];
        let last = match to {
            To::Server => &mut pipe.last_to_server,
            To::Client => &mut pipe.last_to_client,
        };
        let at = (self.now + delay).max(*last);
        *last = at;
        self.sequence += 1;
        self.in_flight.insert((at, self.sequence), (p, to, wire));
    }

    fn log(&mut self, what: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.trace, "{:>8} {what}", self.elapsed().as_millis());
    }

    // ---- the client side ----

    fn pipe_of(&self, i: usize, conn: ConnId) -> Option<usize> {
        self.by_client.get(&(i, conn)).copied()
    }

    fn client_action(&mut self, i: usize, action: Action) {
        if let Action::Connect { conn, .. } = action {
            self.pipes.push(Pipe {
                client: i,
                cconn: conn,
                sconn: None,
                last_to_server: self.now,
                last_to_client: self.now,
                client_closed: false,
                server_closed: false,
                client_gone: false,
                server_gone: false,
            });
            let p = self.pipes.len() - 1;
            self.by_client.insert((i, conn), p);
            return self.send(p, To::Server, Wire::Syn);
        }
        let conn = match &action {
            Action::SendPing { conn, .. }
            | Action::SendHeartbeat { conn }
            | Action::Send { conn, .. }
            | Action::Close { conn, .. }
            | Action::Abort { conn }
            | Action::Connect { conn, .. } => *conn,
        };
        let Some(p) = self
            .pipe_of(i, conn)
            .filter(|&p| !self.pipes[p].client_gone)
        else {
            return;
        };
        let wire = match action {
            Action::SendPing { payload, .. } => Wire::Ping(payload.as_bytes().to_vec()),
            Action::SendHeartbeat { .. } => Wire::Text("ping".into()),
            Action::Send { message, .. } => Wire::of(message),
            Action::Close { code, reason, .. } => {
                self.pipes[p].client_closed = true;
                Wire::Close(Some((code, reason)))
            }
            Action::Abort { .. } | Action::Connect { .. } => {
                self.pipes[p].client_gone = true;
                Wire::Reset
            }
        };
        self.send(p, To::Server, wire);
    }

    fn release(&mut self, i: usize) {
        let peer = &self.clients[i];
        if peer.frozen || !peer.reading {
            return;
        }
        for (p, wire) in std::mem::take(&mut self.clients[i].held) {
            self.at_client(p, wire);
        }
    }

    fn at_client(&mut self, p: usize, wire: Wire) {
        let i = self.pipes[p].client;
        let peer = &self.clients[i];
        let data = matches!(wire, Wire::Text(_) | Wire::Binary(_));
        if peer.frozen || (data && !peer.reading) || !peer.held.is_empty() {
            // Waits in the socket, behind what already waits there.
            self.clients[i].held.push((p, wire));
            return;
        }
        if self.pipes[p].client_gone {
            return;
        }
        let conn = self.pipes[p].cconn;
        let now = self.now;
        let event = match &wire {
            Wire::Accepted => Event::Connected(conn),
            Wire::Refused(status) => Event::ConnectFailed(
                conn,
                match status {
                    Some(status) => ConnectError::Http {
                        status: *status,
                        retry_after: None,
                    },
                    None => ConnectError::Io("connection refused"),
                },
            ),
            Wire::Fin => Event::Disconnected(conn, None),
            Wire::Reset => Event::Disconnected(conn, Some("connection reset")),
            other => match other.frame() {
                Some(frame) => Event::Frame(conn, frame),
                None => return,
            },
        };
        let disposition = self.clients[i].client.handle_event(now, event);
        self.touch(i);
        match &wire {
            Wire::Fin | Wire::Reset | Wire::Refused(_) => self.pipes[p].client_gone = true,
            Wire::Accepted if disposition == Disposition::Stale => {
                // The client gave up on it meanwhile: its socket closes.
                self.pipes[p].client_gone = true;
                self.send(p, To::Server, Wire::Reset);
            }
            Wire::Text(t) if disposition == Disposition::Deliver => {
                self.clients[i].received.push(t.clone());
            }
            // The library answers a Ping, and a Close it did not start.
            Wire::Ping(payload) => self.send(p, To::Server, Wire::Pong(payload.clone())),
            Wire::Close(c) if !self.pipes[p].client_closed => {
                self.pipes[p].client_closed = true;
                self.send(p, To::Server, Wire::Close(c.clone()));
            }
            _ => {}
        }
    }

    // ---- the server side ----

    fn at_server(&mut self, p: usize, wire: Wire) {
        if self.server_frozen {
            self.server_held.push((p, wire));
            return;
        }
        for reply in self.server_reads(p, wire) {
            self.send(p, To::Client, reply);
        }
    }

    /// What the server's side does with `wire`; returns what it sends back.
    fn server_reads(&mut self, p: usize, wire: Wire) -> Vec<Wire> {
        let generation = self.generation;
        let now = self.now;
        let name = self.clients[self.pipes[p].client].name.clone();
        let pipe = &mut self.pipes[p];
        let Some(server) = self.server.as_mut() else {
            // Nobody listens: the kernel refuses or resets.
            return match wire {
                Wire::Syn => vec![Wire::Refused(None)],
                Wire::Reset => vec![],
                _ => vec![Wire::Reset],
            };
        };
        if wire == Wire::Syn {
            let Ok(conn) = server.incoming(now) else {
                return vec![Wire::Refused(None)];
            };
            let target = format!("/ws/?name={name}");
            return match server.accept(now, &UpgradeRequest::new(&target, &[])) {
                Ok(accepted) => {
                    if server.open(now, conn, accepted.name).is_err() {
                        return vec![Wire::Reset];
                    }
                    pipe.sconn = Some((generation, conn));
                    self.by_server.insert((generation, conn), p);
                    vec![Wire::Accepted]
                }
                Err(rejection) => {
                    server.handle_disconnected(now, conn, None);
                    vec![Wire::Refused(Some(rejection.status))]
                }
            };
        }
        let Some((g, conn)) = pipe.sconn else {
            return vec![];
        };
        if g != generation || pipe.server_gone {
            return match wire {
                Wire::Reset | Wire::Fin => vec![],
                _ => vec![Wire::Reset],
            };
        }
        if wire == Wire::Reset {
            pipe.server_gone = true;
            server.handle_disconnected(now, conn, Some("connection reset"));
            return vec![];
        }
        if let Some(frame) = wire.frame() {
            server.handle_frame(now, conn, frame);
        }
        match wire {
            // The library answers a Ping.
            Wire::Ping(payload) => vec![Wire::Pong(payload)],
            // A Close completes a handshake (or starts one, which the library answers):
            // either way the server then ends TCP.
            Wire::Close(c) => {
                let mut replies = Vec::new();
                if !pipe.server_closed {
                    pipe.server_closed = true;
                    replies.push(Wire::Close(c));
                }
                pipe.server_gone = true;
                server.handle_disconnected(now, conn, None);
                replies.push(Wire::Fin);
                replies
            }
            _ => vec![],
        }
    }

    fn server_action(&mut self, action: ServerAction) {
        let conn = action.conn();
        let generation = self.generation;
        let Some(&p) = self.by_server.get(&(generation, conn)) else {
            return;
        };
        if self.pipes[p].server_gone {
            return;
        }
        let reading = self.clients[self.pipes[p].client].reading;
        let now = self.now;
        let wire = match action {
            ServerAction::SendPing { payload, .. } => Wire::Ping(payload.as_bytes().to_vec()),
            ServerAction::Send { message, .. } | ServerAction::Reply { message, .. } => {
                let len = message.len();
                if let Some(server) = self.server.as_mut() {
                    // A client that does not read leaves the server's writes blocked.
                    if reading {
                        server.handle_written(conn, len);
                    } else {
                        server.handle_write_blocked(now, conn);
                    }
                }
                Wire::of(message)
            }
            ServerAction::Close { code, reason, .. } => {
                self.pipes[p].server_closed = true;
                Wire::Close(Some((code, reason.into_owned())))
            }
            ServerAction::Evict { reason, .. } => {
                if let Some(code) = reason.close_code() {
                    let close = Wire::Close(Some((code, reason.description().into())));
                    self.send(p, To::Client, close);
                }
                self.pipes[p].server_gone = true;
                Wire::Reset
            }
            ServerAction::Abort { .. } => {
                self.pipes[p].server_gone = true;
                Wire::Reset
            }
        };
        self.send(p, To::Client, wire);
    }
}
