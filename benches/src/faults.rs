//! The processes and tools of the fault matrix (`faults`): a heartline server and a
//! heartline client that print what they see, a loopback proxy that can black-hole
//! its traffic, and the raw peers for slowloris and an oversized message.
//!
//! Timings are short so a fault is found in about a second: the server pings every
//! 250 ms and evicts after 750 ms of silence; the client's heartbeat is 250 ms with a
//! 250 ms timeout, it reconnects from 100 ms up to 1 s, and counts a wake 1 s late as a
//! suspension.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite;
use futures_lite::{FutureExt, StreamExt};
use heartline_async::server::ServerEvent;
use heartline_async::{ClientBuilder, ClientConfig, ClientEvent, Message, Notice, ReadyState};
use heartline_core::{Backoff, OriginRule, ServerNotice};

use crate::storm::unix_ms;

/// The server's ping interval.
pub const SERVER_PING: Duration = Duration::from_millis(250);
/// The server's idle timeout: a client silent this long is evicted.
pub const SERVER_IDLE: Duration = Duration::from_millis(750);
/// How long an upgrade may take before the server drops the socket.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest message the server takes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The client's heartbeat interval and timeout.
pub const CLIENT_PING: Duration = Duration::from_millis(250);

/// Writes one line to stdout at once: a killed process loses nothing it printed.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The server role: clients by `?name=`; prints `open NAME CONN`, `replaced NAME OLD
/// NEW`, `closed NAME CONN CODE EVICTED` and `got NAME TEXT` for every text message.
pub fn server(port: u16) -> Result<(), String> {
    let mut config = heartline_async::server::ServerConfig::default();
    let core = &mut config.core;
    core.ping_interval = SERVER_PING;
    core.idle_timeout = SERVER_IDLE;
    core.handshake_timeout = HANDSHAKE_TIMEOUT;
    core.close_timeout = Duration::from_secs(1);
    core.max_message_size = MAX_MESSAGE;
    core.max_frame_size = MAX_MESSAGE;
    core.upgrade.path = heartline_core::PathRule::Any;
    core.upgrade.origin = OriginRule::Any;
    smol::block_on(async {
        let (server, _) = heartline_async::server::smol::listen(("127.0.0.1", port), config)
            .await
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
        say(format_args!("listening"));
        while let Some(event) = server.next_event().await {
            match event {
                ServerEvent::Message {
                    name: Some(name),
                    message: Message::Text(text),
                    ..
                } => say(format_args!("got {name} {text}")),
                ServerEvent::Notice(ServerNotice::Opened {
                    conn,
                    name: Some(name),
                }) => say(format_args!("open {name} {}", conn.0)),
                ServerEvent::Notice(ServerNotice::Replaced { name, old, new }) => {
                    say(format_args!("replaced {name} {} {}", old.0, new.0));
                }
                ServerEvent::Notice(ServerNotice::Closed {
                    conn,
                    name: Some(name),
                    code,
                    evicted,
                    ..
                }) => {
                    let why = evicted.map_or("-", |e| e.as_str());
                    say(format_args!("closed {name} {} {code} {why}", conn.0));
                }
                _ => {}
            }
        }
        Ok(())
    })
}

/// The client's configuration: the default but for the short timings above.
pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.heartbeat.interval = CLIENT_PING;
    c.heartbeat.timeout = CLIENT_PING;
    c.heartbeat.probe_timeout = CLIENT_PING;
    c.heartbeat.suspend_threshold = Some(Duration::from_secs(1));
    c.reconnect.backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
    c.reconnect.stable_after = Duration::from_secs(1);
    c.connect_timeout = Duration::from_secs(1);
    c.close_timeout = Duration::from_secs(1);
    c.write_timeout = Duration::from_secs(1);
    c
}

/// What the client role counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientCounts {
    /// Messages `send` accepted.
    pub accepted: usize,
    /// Messages `send` refused.
    pub rejected: usize,
    /// Reported [`Notice::Dropped`].
    pub dropped: usize,
    /// Reported [`Notice::Unconfirmed`].
    pub unconfirmed: usize,
    /// Connections opened.
    pub opens: usize,
    /// Opens while another connection was still open.
    pub overlaps: usize,
}

/// The client role: sends `messages` texts (`0`, `1`, ...) every `every`, prints
/// `open MS` and `closed MS CODE` as they happen; once all are sent and none is
/// buffered (or `settle` has passed), closes and prints `summary` with its counts.
pub fn client(url: &str, messages: usize, every: Duration, settle: Duration) -> Result<(), String> {
    let builder = ClientBuilder::new(url).config(client_config());
    let (handle, mut events) =
        heartline_async::smol::connect(builder).map_err(|e| format!("client: {e}"))?;
    let counts = Arc::new(std::sync::Mutex::new(ClientCounts::default()));
    let seen = Arc::clone(&counts);
    let watcher = smol::spawn(async move {
        let mut open = false;
        while let Some(event) = events.next().await {
            let ClientEvent::Notice(notice) = event else {
                continue;
            };
            let mut c = seen.lock().unwrap_or_else(|e| e.into_inner());
            match notice {
                Notice::Open { .. } => {
                    c.opens += 1;
                    c.overlaps += usize::from(open);
                    open = true;
                    say(format_args!("open {}", unix_ms()));
                }
                Notice::Closed { code, .. } => {
                    open = false;
                    say(format_args!("closed {} {code}", unix_ms()));
                }
                Notice::Dropped { messages, .. } => c.dropped += messages,
                Notice::Unconfirmed { messages, .. } => c.unconfirmed += messages,
                _ => {}
            }
        }
    });
    smol::block_on(async {
        for i in 0..messages {
            let sent = handle.send_text(i.to_string());
            {
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                match sent {
                    Ok(()) => c.accepted += 1,
                    Err(_) => c.rejected += 1,
                }
            }
            smol::Timer::after(every).await;
        }
        let end = Instant::now() + settle;
        while Instant::now() < end
            && !(handle.state() == ReadyState::Open && handle.buffered_amount() == 0)
        {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        // One heartbeat round, so the server has read what went out last.
        smol::Timer::after(CLIENT_PING * 2).await;
        let _ = handle.close(1000, "done");
        let _ = watcher
            .or(async {
                smol::Timer::after(Duration::from_secs(2)).await;
            })
            .await;
    });
    let c = *counts.lock().unwrap_or_else(|e| e.into_inner());
    say(format_args!(
        "summary {} {} {} {} {} {}",
        c.accepted, c.rejected, c.dropped, c.unconfirmed, c.opens, c.overlaps
    ));
    Ok(())
}

/// Parses a `summary` line of the client role.
pub fn parse_summary(line: &str) -> Option<ClientCounts> {
    let n: Vec<usize> = line
        .strip_prefix("summary ")?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [accepted, rejected, dropped, unconfirmed, opens, overlaps] = n[..] else {
        return None;
    };
    Some(ClientCounts {
        accepted,
        rejected,
        dropped,
        unconfirmed,
        opens,
        overlaps,
    })
}

/// A loopback TCP proxy to `upstream` that can black-hole: while `hole` is set, every
/// byte that reaches it is read and thrown away, a connection that saw the hole stays
/// dead, and new connections are accepted and never forwarded.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    /// Set: traffic goes nowhere.
    pub hole: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts the proxy's accept thread.
    pub fn start(upstream: u16) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let hole = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&hole);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let flag = Arc::clone(&flag);
                thread::spawn(move || proxy_one(stream, upstream, &flag));
            }
        });
        Ok(Proxy { port, hole })
    }
}

fn proxy_one(client: TcpStream, upstream: u16, hole: &Arc<AtomicBool>) {
    if hole.load(Ordering::SeqCst) {
        return drain(client);
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let dead = Arc::new(AtomicBool::new(false));
    let pump = |from: TcpStream, to: TcpStream| {
        let (hole, dead) = (Arc::clone(hole), Arc::clone(&dead));
        thread::spawn(move || copy(from, to, &hole, &dead))
    };
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = pump(client, server);
    let down = pump(s2, c2);
    let _ = up.join();
    let _ = down.join();
}

/// Copies until either side ends; once the hole opens, only reads.
fn copy(mut from: TcpStream, mut to: TcpStream, hole: &AtomicBool, dead: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hole.load(Ordering::SeqCst) {
            dead.store(true, Ordering::SeqCst);
        }
        if dead.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !dead.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Write);
    }
}

fn drain(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// Slowloris: `count` sockets that start a request head and add a byte every 200 ms.
/// Returns how long the server took to close them all, if it did within `bound`.
pub fn slowloris(port: u16, count: usize, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut socks: Vec<TcpStream> = (0..count)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    for s in &mut socks {
        let _ = s.write_all(b"GET /?name=slow HTTP/1.1\r\nHost: x\r\n");
        let _ = s.set_nonblocking(true);
    }
    let mut open = socks.len();
    let mut closed = vec![false; socks.len()];
    while start.elapsed() < bound {
        for (s, done) in socks.iter_mut().zip(closed.iter_mut()) {
            if *done {
                continue;
            }
            let mut b = [0u8; 512];
            *done = match s.read(&mut b) {
                Ok(0) => true,
                // A 408 or 400 answer comes before the close.
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
            if *done {
                open -= 1;
            } else {
                let _ = s.write_all(b"X");
            }
        }
        if open == 0 {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Sends one message of `len` bytes as client `name`; returns the close code the
/// server answered with, if it did within `bound`.
pub fn oversize(port: u16, name: &str, len: usize, bound: Duration) -> Option<u16> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(bound)).ok()?;
    let url = format!("ws://127.0.0.1:{port}/?name={name}");
    let (mut ws, _) = tungstenite::client(url.as_str(), stream).ok()?;
    ws.send(tungstenite::Message::binary(vec![0u8; len])).ok()?;
    let end = Instant::now() + bound;
    while Instant::now() < end {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Reads `child`'s stdout lines into a channel, each with the time it came.
pub fn lines(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip() {
        let c = parse_summary("summary 10 1 2 3 4 0").expect("a summary");
        assert_eq!((c.accepted, c.rejected, c.dropped), (10, 1, 2));
        assert_eq!((c.unconfirmed, c.opens, c.overlaps), (3, 4, 0));
        assert_eq!(parse_summary("summary 1 2"), None);
        assert_eq!(parse_summary("open 5"), None);
    }
}
