//! N quiet WebSocket clients in one process: the client side of the load program.
//!
//! ```text
//! load_clients --url ws://127.0.0.1:PORT/ws/ [--clients 10000] [--batch 250] [--max-run-s 900]
//!              [--name-prefix load-]
//! ```
//!
//! Client `i` connects to `URL?name=<prefix>i` (distinct names, so a server's registry
//! keeps them all), then only reads: tungstenite answers the server's Pings while
//! reading, and the client sends nothing else. Text messages are counted: when the
//! count changes (checked every second) a line
//! `{"event":"texts","count":N,"last_unix_us":T}` says how many arrived in all and when
//! the latest did (wall clock, to compare with another process's send time). Connections are opened in batches
//! (each batch finishes before the next starts) so a server's accept backlog never
//! overflows. The soft `RLIMIT_NOFILE` is raised to the hard limit first.
//!
//! JSON lines on stdout: `{"event":"connected","clients":N,"failed":F}` once every
//! client has connected or failed, then `{"event":"status","live":L,"dropped":D}`
//! whenever those numbers change (checked every second). It exits by itself after
//! `--max-run-s` seconds, or when killed.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::WebSocketStream;
use futures_lite::{FutureExt, StreamExt};
use heartline_benches::load::{count, flag_pairs, number, raise_fd_limit};
use smol::net::TcpStream;
use smol::{LocalExecutor, Timer};

/// Small buffers: 10,000 idle clients with tungstenite's default 128 KiB read buffer
/// would need over a gigabyte; these only ever read Pings.
const READ_BUFFER: usize = 4 * 1024;
/// How long one connection attempt (TCP plus handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per client before it counts as failed.
const ATTEMPTS: u32 = 3;

struct Args {
    url: String,
    clients: usize,
    batch: usize,
    max_run: Duration,
    prefix: String,
}

const USAGE: &str =
    "usage: load_clients --url ws://127.0.0.1:PORT/PATH [--clients 10000] [--batch 250] [--max-run-s 900] [--name-prefix load-]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        clients: 10_000,
        batch: 250,
        max_run: Duration::from_secs(900),
        prefix: "load-".to_owned(),
    };
    for (flag, value) in flag_pairs(std::env::args().skip(1))? {
        match flag.as_str() {
            "--url" => args.url = value,
            "--clients" => args.clients = count(&flag, &value)?,
            "--batch" => args.batch = count(&flag, &value)?,
            "--max-run-s" => args.max_run = Duration::from_secs(number(&flag, &value)?),
            "--name-prefix" => args.prefix = value,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if !args.url.starts_with("ws://") {
        return Err("--url must be a ws:// URL".to_owned());
    }
    if args.clients == 0 || args.batch == 0 {
        return Err("--clients and --batch must be positive".to_owned());
    }
    Ok(args)
}

/// `host:port` of a `ws://host:port/...` URL.
fn authority(url: &str) -> &str {
    let rest = url.trim_start_matches("ws://");
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[derive(Default)]
struct Counts {
    live: Cell<usize>,
    dropped: Cell<usize>,
    texts: Cell<usize>,
    last_text_us: Cell<u128>,
}

async fn connect(url: String) -> Result<WebSocketStream<TcpStream>, String> {
    let attempt = async {
        let stream = TcpStream::connect(authority(&url))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (ws, _response) =
            async_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    };
    attempt
        .or(async {
            Timer::after(CONNECT_TIMEOUT).await;
            Err(format!("no connection within {CONNECT_TIMEOUT:?}"))
        })
        .await
}

async fn connect_with_retries(url: String) -> Result<WebSocketStream<TcpStream>, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match connect(url.clone()).await {
            Ok(ws) => return Ok(ws),
            Err(err) => last = err,
        }
        if attempt < ATTEMPTS {
            Timer::after(Duration::from_millis(100)).await;
        }
    }
    Err(last)
}

/// Reads until the connection ends; tungstenite queues and flushes the Pongs.
async fn stay_connected(mut ws: WebSocketStream<TcpStream>, counts: Rc<Counts>) {
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() {
            counts.texts.set(counts.texts.get() + 1);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            counts.last_text_us.set(now.map_or(0, |d| d.as_micros()));
        }
    }
    counts.live.set(counts.live.get() - 1);
    counts.dropped.set(counts.dropped.get() + 1);
}

async fn run(ex: &LocalExecutor<'_>, args: Args) {
    let started = Instant::now();
    let counts = Rc::new(Counts::default());
    let separator = if args.url.contains('?') { '&' } else { '?' };
    let mut failed = 0usize;
    let mut first_error = None;
    let mut next = 0;
    while next < args.clients {
        let end = args.clients.min(next + args.batch);
        let batch: Vec<_> = (next..end)
            .map(|i| {
                ex.spawn(connect_with_retries(format!(
                    "{}{separator}name={}{i}",
                    args.url, args.prefix
                )))
            })
            .collect();
        for task in batch {
            match task.await {
                Ok(ws) => {
                    counts.live.set(counts.live.get() + 1);
                    ex.spawn(stay_connected(ws, Rc::clone(&counts))).detach();
                }
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(err);
                }
            }
        }
        next = end;
    }
    if let Some(err) = first_error {
        eprintln!("load_clients: {failed} clients failed to connect; the first: {err}");
    }
    println!(
        "{{\"event\":\"connected\",\"clients\":{},\"failed\":{failed},\"t_ms\":{}}}",
        counts.live.get(),
        started.elapsed().as_millis()
    );
    let mut reported = (counts.live.get(), counts.dropped.get());
    let mut texts = 0;
    while started.elapsed() < args.max_run {
        Timer::after(Duration::from_secs(1)).await;
        if counts.texts.get() != texts {
            texts = counts.texts.get();
            let last = counts.last_text_us.get();
            println!("{{\"event\":\"texts\",\"count\":{texts},\"last_unix_us\":{last}}}");
        }
        let now = (counts.live.get(), counts.dropped.get());
        if now != reported {
            reported = now;
            println!(
                "{{\"event\":\"status\",\"live\":{},\"dropped\":{}}}",
                now.0, now.1
            );
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("load_clients: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match raise_fd_limit() {
        Ok(limit) if limit < args.clients as u64 + 64 => {
            eprintln!(
                "load_clients: the fd limit {limit} is too low for {} clients",
                args.clients
            );
            return ExitCode::FAILURE;
        }
        Ok(_) => {}
        Err(err) => eprintln!("load_clients: cannot raise the fd limit: {err}"),
    }
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(run(&ex, args)));
    ExitCode::SUCCESS
}
