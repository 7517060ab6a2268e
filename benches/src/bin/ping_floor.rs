//! The least work a server can do to ping its clients, for the load program to measure
//! as a floor: after the WebSocket handshake it writes a ready-made Ping frame to every
//! client once per interval (a tenth of them every tenth of the interval) and reads whatever arrives into one scratch buffer, without
//! parsing it, on one thread and one edge-triggered `mio` poll. No liveness tracking,
//! no eviction, no registry: it is not a server anyone should run, only the measure of
//! what the kernel charges per ping (one `sendto`, one `recvfrom`, their TCP work) that
//! every real server pays too.
//!
//! ```text
//! ping_floor [--listen 127.0.0.1:0] [--ping-interval-ms 1000]
//! ```
//!
//! Prints `{"event":"listening","addr":...}` like the `server` example; other flags the
//! load program passes (`--path`, `--runtime`) are accepted and ignored.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite;
use heartline_benches::load::{flag_pairs, number};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// An empty, unmasked Ping frame: what a server sends to ping.
const PING: [u8; 2] = [0x89, 0x00];
const LISTENER: Token = Token(usize::MAX);
/// Ping batches per interval.
const SLICES: usize = 10;
/// How long one client's handshake may take (handshakes run on the loop, before the
/// measured window).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping_floor: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut interval = Duration::from_secs(1);
    for (flag, value) in flag_pairs(std::env::args().skip(1))? {
        match flag.as_str() {
            "--listen" => listen = value,
            "--ping-interval-ms" => interval = Duration::from_millis(number(&flag, &value)?),
            "--path" | "--runtime" => {}
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let listener = TcpListener::bind(&listen).map_err(|e| format!("listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{{\"event\":\"listening\",\"t_ms\":0,\"addr\":\"{addr}\"}}");
    serve(listener, interval).map_err(|e| e.to_string())
}

fn serve(listener: TcpListener, interval: Duration) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut clients: Vec<Option<TcpStream>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = [0u8; 4096];
    // Pings go out in SLICES batches per interval, a slice of the clients each, as a
    // server with per-client deadlines batched by a slack does; all at once costs the
    // kernel more (measured: 3.9 s against 2.4 s per 30 s for 10,000 clients).
    let tick = interval / SLICES as u32;
    let mut slice = 0;
    let mut next_ping = Instant::now() + tick;
    loop {
        let now = Instant::now();
        if now >= next_ping {
            for slot in clients.iter_mut().skip(slice).step_by(SLICES) {
                if let Some(client) = slot {
                    if client.write(&PING).is_err() {
                        *slot = None;
                    }
                }
            }
            slice = (slice + 1) % SLICES;
            next_ping += tick;
            continue;
        }
        poll.poll(&mut events, Some(next_ping - now))?;
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut clients)?;
                continue;
            }
            let Some(slot) = clients.get_mut(event.token().0) else {
                continue;
            };
            let Some(client) = slot else { continue };
            // Edge-triggered: read until a short read says the socket is drained.
            loop {
                match client.read(&mut scratch) {
                    Ok(0) => {
                        *slot = None;
                        break;
                    }
                    Ok(n) if n < scratch.len() => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        *slot = None;
                        break;
                    }
                }
            }
        }
    }
}

/// Accepts every waiting client and runs its handshake to the end (blocking, bounded).
fn accept_all(
    listener: &mio::net::TcpListener,
    poll: &Poll,
    clients: &mut Vec<Option<TcpStream>>,
) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let stream = std::net::TcpStream::from(stream);
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let Ok(ws) = tungstenite::accept(stream) else {
            continue;
        };
        let stream = ws.into_inner();
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(clients.len()), Interest::READABLE)?;
        clients.push(Some(stream));
    }
}
