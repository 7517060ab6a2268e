//! `embed`: heartline-core driven from a loop of your own.
//!
//! One thread, one `mio` poller, many clients on non-blocking sockets. tungstenite
//! turns bytes into frames; [`heartline_core::Client`] makes every decision: when to
//! connect, ping, declare the server dead, back off and reconnect, give up. No heartline
//! adapter is used (only heartline-tungstenite's table of the close code a read error
//! calls for): this file is the whole driver, and `docs/embedding.md` walks through it.
//!
//! ```text
//! embed URL [--clients N] [--duration-s S] [--until-eof] [--ping-interval-ms N]
//! ```
//!
//! Client `i` connects to URL with `name=embed-<i>` added to its query. Events are JSON
//! lines on stdout, each with `"client"`; the run ends (after `--duration-s`, at EOF on
//! stdin with `--until-eof`, or once every client gave up) with one line
//! `{"event":"result","clients":N,"opened":A,"reopened":B,"gave_up":C}`.

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use heartline_core::{
    close_code, Action, Client, ClientConfig, ConnId, ConnectError, Disposition, Event, Frame,
    HeartbeatKind, Message as Outbound, Notice,
};
use heartline_examples::events::{binary_json, notice_json, text_json};
use heartline_examples::jsonl::{self, EventLog, Value};
// The close code a tungstenite read error calls for (the one table the adapters use).
use heartline_tungstenite::wire::violation;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use tungstenite::handshake::client::{ClientHandshake, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// Many heartline clients on one thread, in a readiness loop of its own.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The server, `ws://HOST:PORT/PATH`.
    url: String,
    /// How many clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// End the run (every client closes with 1000) after this many seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// End the run when stdin reaches end of file.
    #[arg(long)]
    until_eof: bool,
    /// Quiet time before a heartbeat Ping (the core's default is 20 s).
    #[arg(long)]
    ping_interval_ms: Option<u64>,
}

const WAKER: Token = Token(usize::MAX);

type Handshake = ClientHandshake<TcpStream>;

/// What one client's socket is doing.
enum Sock {
    /// None: the core has not asked for a connection (or is backing off).
    Idle,
    /// TCP connect in flight.
    Tcp(ConnId, TcpStream),
    /// WebSocket upgrade in flight.
    Upgrade(ConnId, MidHandshake<Handshake>),
    /// Open. `blocked`: a write could not finish, and the core was told. `failed`: the
    /// peer broke the protocol; nothing more is read, and the connection ends once the
    /// core's Close frame is written.
    Open {
        conn: ConnId,
        ws: WebSocket<TcpStream>,
        blocked: bool,
        failed: bool,
    },
}

/// One client: the core's machine, its socket, what the result line counts.
struct Slot {
    /// Its place in the loop's table, and its token in the poller.
    index: usize,
    core: Client,
    sock: Sock,
    /// The server's URL with this client's name in its query.
    url: String,
    /// The deadline this slot holds in the loop's timer set.
    armed: Option<Instant>,
    ever_open: bool,
    lost: bool,
    reopened: bool,
    gave_up: bool,
    /// Closed for good, and counted so.
    done: bool,
}

/// What every slot shares: the poller's registry, the server, the log.
struct Ctx {
    registry: Registry,
    addr: SocketAddr,
    log: EventLog,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let addr = server_addr(&args.url)?;
    let mut config = ClientConfig::default();
    if let Some(ms) = args.ping_interval_ms {
        config.heartbeat.interval = Duration::from_millis(ms);
    }
    let mut poll = Poll::new()?;
    let ctx = Ctx {
        registry: poll.registry().try_clone()?,
        addr,
        log: EventLog::new(),
    };
    let start = Instant::now();
    // Each client's own seed, so their reconnect jitter differs.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let sep = if args.url.contains('?') { '&' } else { '?' };
    let mut slots = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let core = Client::new(config.clone(), seed.wrapping_add(i as u64), start)
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        slots.push(Slot {
            index: i,
            core,
            sock: Sock::Idle,
            url: format!("{}{sep}name=embed-{i}", args.url),
            armed: None,
            ever_open: false,
            lost: false,
            reopened: false,
            gave_up: false,
            done: false,
        });
    }
    let eof = Arc::new(AtomicBool::new(false));
    if args.until_eof {
        let (eof, waker) = (eof.clone(), Waker::new(poll.registry(), WAKER)?);
        std::thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            eof.store(true, Ordering::Relaxed);
            let _ = waker.wake();
        });
    }
    let end = args.duration_s.map(|s| start + Duration::from_secs(s));

    // Every deadline of every client, soonest first: the loop sleeps until the first.
    let mut timers: BTreeSet<(Instant, usize)> = BTreeSet::new();
    let mut events = Events::with_capacity(1024);
    let mut ending = false;
    let mut now = start;
    let mut done = 0;
    for slot in &mut slots {
        done += turn(slot, &ctx, now, &mut timers);
    }
    while done < slots.len() {
        if !ending && (end.is_some_and(|e| now >= e) || eof.load(Ordering::Relaxed)) {
            ending = true;
            for slot in &mut slots {
                // A client that already gave up has nothing to close.
                let _ = slot.core.close(now, close_code::NORMAL, "done");
                done += turn(slot, &ctx, now, &mut timers);
            }
        }
        let mut wake = timers.first().map(|&(t, _)| t);
        if !ending {
            wake = match (wake, end) {
                (Some(w), Some(e)) => Some(w.min(e)),
                (w, e) => w.or(e),
            };
        }
        poll.poll(&mut events, wake.map(|t| t.saturating_duration_since(now)))?;
        now = Instant::now();
        for event in events.iter() {
            if let Some(slot) = slots.get_mut(event.token().0) {
                done += turn(slot, &ctx, now, &mut timers);
            }
        }
        let due: Vec<usize> = timers
            .iter()
            .take_while(|&&(t, _)| t <= now)
            .map(|&(_, i)| i)
            .collect();
        for i in due {
            done += turn(&mut slots[i], &ctx, now, &mut timers);
        }
    }
    let count = |f: fn(&Slot) -> bool| Value::from(slots.iter().filter(|s| f(s)).count() as u64);
    ctx.log.emit(
        "result",
        &[
            ("clients", Value::from(slots.len() as u64)),
            ("opened", count(|s| s.ever_open)),
            ("reopened", count(|s| s.reopened)),
            ("gave_up", count(|s| s.gave_up)),
        ],
    );
    Ok(())
}

/// One turn of one client: let its socket progress, pass the deadline if it is due,
/// execute every action, report the notices, and re-arm its timer. 1 if this turn
/// closed the client for good, else 0.
fn turn(
    slot: &mut Slot,
    ctx: &Ctx,
    now: Instant,
    timers: &mut BTreeSet<(Instant, usize)>,
) -> usize {
    let i = slot.index;
    slot.core.handle_wall_clock(now, SystemTime::now());
    slot.progress(ctx, now);
    if slot.core.poll_timeout().is_some_and(|t| t <= now) {
        slot.core.handle_timeout(now);
    }
    while let Some(action) = slot.core.poll_action() {
        slot.act(action, ctx, now);
    }
    if slot.end_if_failed(ctx, now) {
        while let Some(action) = slot.core.poll_action() {
            slot.act(action, ctx, now);
        }
    }
    while let Some(notice) = slot.core.poll_notice() {
        slot.tally(&notice);
        let line = notice_json(ctx.log.t_ms(), &notice);
        jsonl::print(&jsonl::prefixed("client", i as u64, &line));
    }
    if let Some(t) = slot.armed.take() {
        timers.remove(&(t, i));
    }
    slot.armed = slot.core.poll_timeout();
    if let Some(t) = slot.armed {
        timers.insert((t, i));
    }
    let finished = slot.core.is_closed() && !slot.done;
    slot.done |= finished;
    usize::from(finished)
}

impl Slot {
    /// Drives the socket as far as it goes without blocking, reporting each outcome.
    fn progress(&mut self, ctx: &Ctx, now: Instant) {
        self.sock = match std::mem::replace(&mut self.sock, Sock::Idle) {
            // A non-blocking connect is done once the socket has a peer.
            Sock::Tcp(conn, stream) => match (stream.take_error(), stream.peer_addr()) {
                (Ok(None), Ok(_)) => {
                    let url = self.url.clone();
                    self.upgrade(now, conn, tungstenite::client(url, stream))
                }
                (Ok(None), Err(e)) if e.kind() == ErrorKind::NotConnected => {
                    Sock::Tcp(conn, stream)
                }
                (Ok(Some(e)) | Err(e), _) | (_, Err(e)) => {
                    self.connect_failed(now, conn, &e);
                    Sock::Idle
                }
            },
            Sock::Upgrade(conn, mid) => self.upgrade(now, conn, mid.handshake()),
            open => open,
        };
        self.read(ctx, now);
        self.flush(ctx, now);
    }

    fn upgrade(
        &mut self,
        now: Instant,
        conn: ConnId,
        result: Result<(WebSocket<TcpStream>, Response), HandshakeError<Handshake>>,
    ) -> Sock {
        match result {
            Ok((ws, _)) => {
                self.feed(now, Event::Connected(conn));
                Sock::Open {
                    conn,
                    ws,
                    blocked: false,
                    failed: false,
                }
            }
            Err(HandshakeError::Interrupted(mid)) => Sock::Upgrade(conn, mid),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                    .map(Duration::from_secs);
                self.feed(
                    now,
                    Event::ConnectFailed(
                        conn,
                        ConnectError::Http {
                            status,
                            retry_after,
                        },
                    ),
                );
                Sock::Idle
            }
            Err(HandshakeError::Failure(e)) => {
                self.connect_failed(now, conn, &e);
                Sock::Idle
            }
        }
    }

    /// Reads until the socket has nothing more (the poller is edge-triggered).
    fn read(&mut self, ctx: &Ctx, now: Instant) {
        loop {
            let Sock::Open {
                conn,
                ws,
                failed: false,
                ..
            } = &mut self.sock
            else {
                return;
            };
            let conn = *conn;
            match ws.read() {
                Ok(message) => {
                    let Some(frame) = frame(&message) else {
                        continue;
                    };
                    // Heartbeat replies and control frames are the core's; the rest is ours.
                    if self.core.handle_event(now, Event::Frame(conn, frame))
                        == Disposition::Deliver
                    {
                        let t_ms = ctx.log.t_ms();
                        let line = match &message {
                            Message::Text(t) => text_json(t_ms, t.as_str()),
                            other => binary_json(t_ms, other.len()),
                        };
                        jsonl::print(&jsonl::prefixed("client", self.index as u64, &line));
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return,
                Err(tungstenite::Error::ConnectionClosed) => return self.ended(ctx, now, None),
                // Bad UTF-8, an oversized message, a malformed frame: the core closes
                // with the matching code (1007, 1009, 1002) and reconnects.
                Err(e) => match violation(&e) {
                    Some((code, reason)) => {
                        if let Sock::Open { failed, .. } = &mut self.sock {
                            *failed = true;
                        }
                        return self.feed(now, Event::Violation(conn, code, reason));
                    }
                    None => return self.ended(ctx, now, Some(&e.to_string())),
                },
            }
        }
    }

    /// After a violation, once the core's Close is written: the connection ends.
    fn end_if_failed(&mut self, ctx: &Ctx, now: Instant) -> bool {
        let failed = matches!(self.sock, Sock::Open { failed: true, .. });
        if failed {
            self.ended(ctx, now, None);
        }
        failed
    }

    /// Pushes buffered bytes to the socket and tells the core whether writes are stuck
    /// or moving again: the core alone decides when "stuck" has lasted too long.
    fn flush(&mut self, ctx: &Ctx, now: Instant) {
        let Sock::Open {
            conn, ws, blocked, ..
        } = &mut self.sock
        else {
            return;
        };
        let conn = *conn;
        match ws.flush() {
            Ok(()) if *blocked => {
                *blocked = false;
                self.feed(now, Event::WriteFlushed(conn));
            }
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                if !*blocked {
                    *blocked = true;
                    self.feed(now, Event::WriteBlocked(conn));
                }
            }
            Err(tungstenite::Error::ConnectionClosed) => self.ended(ctx, now, None),
            Err(e) => self.ended(ctx, now, Some(&e.to_string())),
        }
    }

    /// Does what the core asks. An action for a connection this slot no longer has is
    /// stale: ignored.
    fn act(&mut self, action: Action, ctx: &Ctx, now: Instant) {
        match action {
            Action::Connect { conn, .. } => {
                let connected = TcpStream::connect(ctx.addr).and_then(|mut stream| {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    ctx.registry
                        .register(&mut stream, Token(self.index), interest)?;
                    Ok(stream)
                });
                match connected {
                    Ok(stream) => self.sock = Sock::Tcp(conn, stream),
                    Err(e) => self.connect_failed(now, conn, &e),
                }
            }
            Action::SendPing { conn, payload } => self.write(
                ctx,
                now,
                conn,
                Message::Ping(payload.as_bytes().to_vec().into()),
            ),
            Action::SendHeartbeat { conn } => {
                if let HeartbeatKind::App(hb) = &self.core.config().heartbeat.kind {
                    let message = outbound(hb.message.clone());
                    self.write(ctx, now, conn, message);
                }
            }
            Action::Send { conn, message } => self.write(ctx, now, conn, outbound(message)),
            Action::Close { conn, code, reason } => {
                let close = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                self.write(ctx, now, conn, Message::Close(Some(close)));
            }
            Action::Abort { conn } => {
                if self.conn() == Some(conn) {
                    self.drop_socket(ctx);
                }
            }
        }
    }

    fn write(&mut self, ctx: &Ctx, now: Instant, to: ConnId, message: Message) {
        let Sock::Open { conn, ws, .. } = &mut self.sock else {
            return;
        };
        if *conn != to {
            return;
        }
        match ws.write(message) {
            // WouldBlock: the message is buffered; `flush` reports the stall.
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            // Writing after our own Close: the core already knows the connection ends.
            Err(tungstenite::Error::Protocol(_)) => return,
            Err(e) => return self.ended(ctx, now, Some(&e.to_string())),
        }
        self.flush(ctx, now);
    }

    /// The connection is gone: drop the socket and say so once.
    fn ended(&mut self, ctx: &Ctx, now: Instant, error: Option<&str>) {
        if let Some(conn) = self.conn() {
            self.drop_socket(ctx);
            self.feed(now, Event::Disconnected(conn, error));
        }
    }

    fn drop_socket(&mut self, ctx: &Ctx) {
        let registry = &ctx.registry;
        // Closing the descriptor removes it from the poller anyway.
        let _ = match std::mem::replace(&mut self.sock, Sock::Idle) {
            Sock::Tcp(_, mut stream) => registry.deregister(&mut stream),
            Sock::Upgrade(_, mut mid) => registry.deregister(mid.get_mut().get_mut()),
            Sock::Open { mut ws, .. } => registry.deregister(ws.get_mut()),
            Sock::Idle => Ok(()),
        };
    }

    fn conn(&self) -> Option<ConnId> {
        match &self.sock {
            Sock::Idle => None,
            Sock::Tcp(conn, _) | Sock::Upgrade(conn, _) | Sock::Open { conn, .. } => Some(*conn),
        }
    }

    fn connect_failed(&mut self, now: Instant, conn: ConnId, error: &dyn std::fmt::Display) {
        let text = error.to_string();
        self.feed(now, Event::ConnectFailed(conn, ConnectError::Io(&text)));
    }

    fn feed(&mut self, now: Instant, event: Event<'_>) {
        // `Stale` needs no handling here: this slot only reports its current socket.
        self.core.handle_event(now, event);
    }

    fn tally(&mut self, notice: &Notice) {
        match notice {
            Notice::Open { .. } => {
                self.reopened |= self.lost;
                self.ever_open = true;
            }
            Notice::Closed { .. } => self.lost = true,
            Notice::GaveUp { .. } => self.gave_up = true,
            _ => {}
        }
    }
}

/// The core's view of a tungstenite message; `None` for a raw frame (never read).
fn frame(message: &Message) -> Option<Frame<'_>> {
    Some(match message {
        Message::Text(t) => Frame::Text(t.as_str()),
        Message::Binary(b) => Frame::Binary(b),
        Message::Ping(p) => Frame::Ping(p),
        Message::Pong(p) => Frame::Pong(p),
        Message::Close(c) => {
            Frame::Close(c.as_ref().map(|c| (u16::from(c.code), c.reason.as_str())))
        }
        Message::Frame(_) => return None,
    })
}

fn outbound(message: Outbound) -> Message {
    match message {
        Outbound::Text(t) => Message::text(t),
        Outbound::Binary(b) => Message::binary(b),
    }
}

/// The server's address, resolved once before the loop starts (a resolver blocks; a
/// long-lived embedder resolves on a thread of its own).
fn server_addr(url: &str) -> io::Result<SocketAddr> {
    let bad = |why: &str| io::Error::new(ErrorKind::InvalidInput, format!("{url}: {why}"));
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| bad("embed speaks ws:// only"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad("the name has no address"))
}
