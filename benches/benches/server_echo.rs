//! Server echo throughput: the event-loop server (`heartline-blocking`) echoing small
//! messages, answered two ways in the same run: from the application's thread through
//! a `ServerHandle` (each send a round trip to the server's thread), and from an event
//! handler on the server's own thread through its `Responder`.
//!
//! ```text
//! cargo bench -p heartline-benches --bench server_echo
//! ```
//!
//! Each client is a thread with a plain tungstenite socket that keeps `WINDOW` messages
//! of `SIZE` bytes in flight. The bench prints the echoes per second of each way, for
//! each client count, the median of `ROUNDS` alternating runs.
//!
//! Environment: `ECHO_SECONDS` (measured time per run, default 0.5), `ECHO_ROUNDS`
//! (default 21), `ECHO_WINDOW` (default 16), `ECHO_SIZE` (bytes, default 32),
//! `ECHO_CONNS` (client counts, default `1,20`).

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{self, Message};
use heartline_benches::echo::{conns_from_env, median, Settings};
use heartline_blocking::hub::ServerEvent;
use heartline_blocking::server::{Server, ServerConfig};

/// The defaults: a ping only after 30 s of quiet, so nothing but echoes in the window.
fn config() -> ServerConfig {
    ServerConfig::default()
}

/// Echoes through a handle, from a thread of the application's.
fn through_handle() -> SocketAddr {
    let server = Server::bind("127.0.0.1:0", config()).expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    thread::spawn(move || {
        for event in server.events() {
            if let ServerEvent::Message { conn, message, .. } = event {
                let _ = handle.send_to(conn, message);
            }
        }
    });
    addr
}

/// Echoes from an event handler on the server's thread.
fn through_handler() -> SocketAddr {
    let server = Server::bind_with_handler("127.0.0.1:0", config(), |event, responder| {
        if let ServerEvent::Message { conn, message, .. } = event {
            let _ = responder.send_to(conn, message);
        }
    })
    .expect("bind");
    // The server keeps running on its own thread once this is dropped.
    server.local_addr()
}

/// One client: keeps `window` messages in flight and counts the echoes that arrive
/// between `from` and `until`.
fn client(addr: SocketAddr, s: Settings, n: usize, from: Instant, until: Instant) -> u64 {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let url = format!("ws://{addr}/ws/?name=c{n}");
    let (mut ws, _) = tungstenite::client(url, stream).expect("handshake");
    let payload = vec![7u8; s.size];
    for _ in 0..s.window {
        ws.write(Message::Binary(payload.clone().into()))
            .expect("send");
    }
    let mut echoes = 0;
    let mut in_flight = s.window;
    while in_flight > 0 {
        ws.flush().expect("flush");
        if let Message::Binary(_) = ws.read().expect("read") {
            in_flight -= 1;
            let now = Instant::now();
            if now >= from && now < until {
                echoes += 1;
            }
            if now < until {
                ws.write(Message::Binary(payload.clone().into()))
                    .expect("send");
                in_flight += 1;
            }
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    echoes
}

fn run(addr: SocketAddr, conns: usize, s: Settings) -> f64 {
    let from = Instant::now() + s.warmup;
    let until = from + s.measure;
    let clients: Vec<_> = (0..conns)
        .map(|n| thread::spawn(move || client(addr, s, n, from, until)))
        .collect();
    let echoes: u64 = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .sum();
    echoes as f64 / s.measure.as_secs_f64()
}

fn main() {
    let s = Settings::from_env();
    let conns_list = conns_from_env("1,20");
    let handle_addr = through_handle();
    let handler_addr = through_handler();
    println!(
        "server echo: {}-byte binary messages, {} in flight per client, {:.1} s measured \
         per run, median of {} rounds",
        s.size,
        s.window,
        s.measure.as_secs_f64(),
        s.rounds
    );
    for conns in conns_list {
        let (mut handle, mut handler) = (Vec::new(), Vec::new());
        for _ in 0..s.rounds {
            handle.push(run(handle_addr, conns, s));
            handler.push(run(handler_addr, conns, s));
        }
        let (handle, handler) = (median(handle), median(handler));
        println!("{conns} client(s):");
        println!("  through a ServerHandle        {handle:>10.0} msg/s");
        println!("  from an event handler         {handler:>10.0} msg/s");
        println!("  handler / handle              {:>10.2}", handler / handle);
    }
}
