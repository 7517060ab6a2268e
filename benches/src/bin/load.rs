//! The load program: a server under N idle, Ping-answering clients; prints the
//! server's memory per connection and CPU seconds over a steady window.
//!
//! ```text
//! load [--server heartline|node|floor] [--runtime smol|tokio|async-std|blocking] [--clients 10000]
//!      [--ping-interval-ms 1000] [--window-s 30] [--settle-s 5] [--batch 250]
//!      [--server-bin PATH] [--clients-bin PATH] [--node-script PATH]
//! ```
//!
//! 1. Starts the server as its own process on 127.0.0.1 (port chosen by the kernel):
//!    heartline's `server` example (`--runtime`, `--ping-interval-ms`), or the Node
//!    `ws` server with the `isAlive` heartbeat (`interop/node/isalive_server.js`), and
//!    reads its `listening` line. Its RSS now is the baseline.
//! 2. Starts `load_clients` (another process) and waits until all N are connected.
//! 3. Waits `--settle-s`, then samples `/proc/PID` at the start and the end of a
//!    `--window-s` window: RSS per connection = (VmRSS at the end - baseline) / N, and
//!    CPU seconds = utime + stime used within the window (also printed apart: the
//!    kernel's share is mostly the TCP work every server does per ping).
//!
//! The window only counts if no client dropped and the server evicted nobody.
//! The binaries default to the ones next to this one, so build them together:
//! `cargo build --release -p heartline-examples --bin server -p heartline-benches --bins`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use heartline_benches::load::{count, flag_pairs, number, raise_fd_limit};
use heartline_benches::procs::{is_event, number_field, string_field, Process};

const USAGE: &str =
    "usage: load [--server heartline|node|floor] [--runtime smol|tokio|async-std|blocking] \
[--clients 10000] [--ping-interval-ms 1000] [--window-s 30] [--settle-s 5] [--batch 250] \
[--server-bin PATH] [--clients-bin PATH] [--node-script PATH]";

/// How long the server may take to print `listening`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long all clients together may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Heartline,
    Node,
    /// `ping_floor`: one write and one read per ping and nothing else.
    Floor,
}

struct Args {
    server: ServerKind,
    runtime: String,
    clients: usize,
    ping_interval_ms: u64,
    window: Duration,
    settle: Duration,
    batch: usize,
    server_bin: PathBuf,
    clients_bin: PathBuf,
    node_script: PathBuf,
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: ServerKind::Heartline,
        runtime: "smol".to_owned(),
        clients: 10_000,
        ping_interval_ms: 1000,
        window: Duration::from_secs(30),
        settle: Duration::from_secs(5),
        batch: 250,
        server_bin: sibling("server"),
        clients_bin: sibling("load_clients"),
        node_script: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../interop/node/isalive_server.js"),
    };
    for (flag, value) in flag_pairs(std::env::args().skip(1))? {
        match flag.as_str() {
            "--server" => {
                args.server = match value.as_str() {
                    "heartline" => ServerKind::Heartline,
                    "node" => ServerKind::Node,
                    "floor" => ServerKind::Floor,
                    _ => {
                        return Err(format!(
                            "--server is heartline, node or floor, not {value:?}"
                        ))
                    }
                }
            }
            "--runtime" => args.runtime = value,
            "--clients" => args.clients = count(&flag, &value)?,
            "--ping-interval-ms" => args.ping_interval_ms = number(&flag, &value)?,
            "--window-s" => args.window = Duration::from_secs(number(&flag, &value)?),
            "--settle-s" => args.settle = Duration::from_secs(number(&flag, &value)?),
            "--batch" => args.batch = count(&flag, &value)?,
            "--server-bin" => args.server_bin = PathBuf::from(&value),
            "--clients-bin" => args.clients_bin = PathBuf::from(&value),
            "--node-script" => args.node_script = PathBuf::from(&value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.clients == 0 || args.ping_interval_ms == 0 || args.window.is_zero() {
        return Err("--clients, --ping-interval-ms and --window-s must be positive".to_owned());
    }
    Ok(args)
}

/// The server's stdout: the address it listens on, then counts of what it printed.
struct ServerLog {
    evicted: Arc<AtomicUsize>,
    connected: Arc<AtomicUsize>,
}

fn start_server(args: &Args) -> Result<(Process, String, ServerLog), String> {
    let interval = args.ping_interval_ms.to_string();
    let mut server = match args.server {
        ServerKind::Heartline => Process::spawn(
            "heartline server",
            Command::new(&args.server_bin)
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--path",
                    "/ws/",
                    "--runtime",
                    &args.runtime,
                ])
                .args(["--ping-interval-ms", &interval]),
        )?,
        ServerKind::Floor => Process::spawn(
            "ping floor",
            Command::new(sibling("ping_floor"))
                .args(["--listen", "127.0.0.1:0"])
                .args(["--ping-interval-ms", &interval]),
        )?,
        ServerKind::Node => Process::spawn(
            "node server",
            Command::new("node")
                .arg(&args.node_script)
                .args(["--listen", "127.0.0.1:0", "--path", "/ws/"])
                .args(["--ping-interval-ms", &interval]),
        )?,
    };
    let lines = server.lines();
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).map_err(|_| {
            format!("the server printed no `listening` line within {START_TIMEOUT:?}")
        })?;
        if is_event(&line, "listening") {
            break string_field(&line, "addr")
                .ok_or_else(|| format!("`listening` without an address: {line}"))?
                .to_owned();
        }
    };
    let log = ServerLog {
        evicted: Arc::default(),
        connected: Arc::default(),
    };
    let (evicted, connected) = (Arc::clone(&log.evicted), Arc::clone(&log.connected));
    // Keep draining stdout: a server blocked on a full pipe would skew everything.
    thread::spawn(move || {
        for line in lines {
            if is_event(&line, "evicted") {
                evicted.fetch_add(1, Ordering::SeqCst);
            } else if is_event(&line, "connected") {
                connected.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Ok((server, addr, log))
}

fn run(args: &Args) -> Result<(), String> {
    let fd_limit = raise_fd_limit().map_err(|e| format!("cannot raise the fd limit: {e}"))?;
    let (mut server, addr, log) = start_server(args)?;
    let measured = measure(args, &server, &addr, &log, fd_limit);
    // A server that died explains most failures; say so.
    match (measured, server.try_wait()) {
        (Err(err), Ok(Some(status))) => Err(format!("{err} (the server exited: {status})")),
        (measured, _) => measured,
    }
}

fn measure(
    args: &Args,
    server: &Process,
    addr: &str,
    log: &ServerLog,
    fd_limit: u64,
) -> Result<(), String> {
    // Let start-up allocations finish before taking the baseline.
    thread::sleep(Duration::from_millis(500));
    let baseline = server.sample()?;
    let label = match args.server {
        ServerKind::Heartline => format!("heartline ({})", args.runtime),
        ServerKind::Node => "node ws (isAlive)".to_owned(),
        ServerKind::Floor => "ping floor (one write, one read)".to_owned(),
    };
    eprintln!(
        "load: {label} on {addr}, pid {}, fd limit {fd_limit}, baseline RSS {} KiB; connecting {} clients",
        server.pid(),
        baseline.rss_kib,
        args.clients
    );

    let mut clients = Process::spawn(
        "clients",
        Command::new(&args.clients_bin)
            .args(["--url", &format!("ws://{addr}/ws/")])
            .args(["--clients", &args.clients.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .args([
                "--max-run-s",
                &(args.settle + args.window + CONNECT_TIMEOUT)
                    .as_secs()
                    .to_string(),
            ]),
    )?;
    let client_lines = clients.lines();
    let connect_started = Instant::now();
    let connected_line = client_lines
        .recv_timeout(CONNECT_TIMEOUT)
        .map_err(|_| format!("the clients did not all connect within {CONNECT_TIMEOUT:?}"))?;
    let connected = number_field(&connected_line, "clients").unwrap_or(0);
    let failed = number_field(&connected_line, "failed").unwrap_or(0);
    if connected != args.clients as u64 {
        return Err(format!(
            "only {connected} of {} clients connected ({failed} failed)",
            args.clients
        ));
    }
    eprintln!(
        "load: {connected} clients connected in {:.1} s; settling {} s, then measuring {} s",
        connect_started.elapsed().as_secs_f64(),
        args.settle.as_secs(),
        args.window.as_secs()
    );

    thread::sleep(args.settle);
    let evicted_before = log.evicted.load(Ordering::SeqCst);
    let start = server.sample()?;
    let started = Instant::now();
    let mut peak_rss_kib = start.rss_kib;
    while started.elapsed() < args.window {
        thread::sleep(Duration::from_secs(1).min(args.window.saturating_sub(started.elapsed())));
        peak_rss_kib = peak_rss_kib.max(server.sample()?.rss_kib);
    }
    let end = server.sample()?;
    let elapsed = started.elapsed();
    let dropped: Vec<String> = client_lines
        .try_iter()
        .filter(|l| is_event(l, "status"))
        .collect();
    let evicted = log.evicted.load(Ordering::SeqCst) - evicted_before;

    let n = args.clients as f64;
    let per_conn_bytes = end.rss_kib.saturating_sub(baseline.rss_kib) as f64 * 1024.0 / n;
    let cpu = end.cpu_seconds_since(&start);
    let (user, system) = end.user_system_seconds_since(&start);
    let cpu_per_30s = cpu * 30.0 / elapsed.as_secs_f64();
    println!("server:              {label}");
    println!(
        "clients:             {} (server saw {} connected lines)",
        args.clients,
        log.connected.load(Ordering::SeqCst)
    );
    println!("ping interval:       {} ms", args.ping_interval_ms);
    println!("RSS baseline:        {} KiB", baseline.rss_kib);
    println!(
        "RSS window start/end/peak: {} / {} / {} KiB",
        start.rss_kib, end.rss_kib, peak_rss_kib
    );
    println!(
        "RSS per connection:  {:.0} bytes ({:.2} KB)",
        per_conn_bytes,
        per_conn_bytes / 1000.0
    );
    println!(
        "CPU in window:       {cpu:.2} s over {:.1} s ({cpu_per_30s:.2} s per 30 s; \
         user {user:.2} s, system {system:.2} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "{{\"event\":\"result\",\"server\":\"{label}\",\"clients\":{},\"ping_interval_ms\":{},\
         \"window_s\":{:.1},\"rss_per_conn_bytes\":{per_conn_bytes:.0},\"cpu_s\":{cpu:.3},\
         \"cpu_s_per_30s\":{cpu_per_30s:.3},\"user_s\":{user:.3},\"system_s\":{system:.3},\"evicted\":{evicted},\"client_status_changes\":{}}}",
        args.clients,
        args.ping_interval_ms,
        elapsed.as_secs_f64(),
        dropped.len()
    );
    if evicted > 0 || !dropped.is_empty() {
        return Err(format!(
            "the window was not steady: {evicted} evicted, client status changes: {dropped:?}"
        ));
    }
    drop(clients);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("load: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_event_lines() {
        let line = r#"{"event":"listening","t_ms":3,"addr":"127.0.0.1:4242"}"#;
        assert!(is_event(line, "listening"));
        assert!(!is_event(line, "connected"));
        assert_eq!(string_field(line, "addr"), Some("127.0.0.1:4242"));
        assert_eq!(number_field(line, "t_ms"), Some(3));
        assert_eq!(number_field(line, "clients"), None);
    }
}
