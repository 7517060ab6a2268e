//! The cluster load program: K `server` processes in a cluster on one redis-server,
//! each under N heartbeated clients (in `load_clients` processes of their own), with a
//! steady send-to-name rate across nodes; prints connections held, CPU and memory per
//! connection per node against one server alone under the same N, send-to-name
//! latency across nodes, and the time a broadcast takes to reach every client.
//!
//! ```text
//! cluster_load [--nodes 6] [--clients 16000] [--ping-interval-ms 1000] [--window-s 20]
//!              [--settle-s 5] [--rate 100] [--batch 250] [--skip-single]
//! ```
//!
//! `--clients` is per node. Sends go from a probe client on node 0 to one on node 1,
//! `--rate` per second, each `{"to": "probe-r", "data": i}`: the latency is from the
//! write to the receiver's read (one way, across node 0, Redis and node 1) and from
//! the write to the sender's `delivered` answer (the round trip). Then one broadcast
//! from the probe: the fan-out time runs from its write until the last of the K x N
//! clients has it (the clients stamp it with the wall clock). Build first:
//! `cargo build --release -p heartline-examples --bin server -p heartline-benches --bins`.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_tungstenite::tungstenite::{self, Message, WebSocket};
use heartline_benches::load::{count, flag_pairs, number, raise_fd_limit, ProcSample};
use heartline_benches::procs::{is_event, number_field, string_field, Process};

const USAGE: &str = "usage: cluster_load [--nodes 6] [--clients 16000] [--ping-interval-ms 1000] \
[--window-s 20] [--settle-s 5] [--rate 100] [--batch 250] [--skip-single]";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(900);

struct Args {
    nodes: usize,
    clients: usize,
    ping_interval_ms: u64,
    window: Duration,
    settle: Duration,
    rate: u64,
    batch: usize,
    single: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: 6,
        clients: 16_000,
        ping_interval_ms: 1000,
        window: Duration::from_secs(20),
        settle: Duration::from_secs(5),
        rate: 100,
        batch: 250,
        single: true,
    };
    let mut rest: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = rest.iter().position(|a| a == "--skip-single") {
        rest.remove(i);
        args.single = false;
    }
    for (flag, value) in flag_pairs(rest)? {
        match flag.as_str() {
            "--nodes" => args.nodes = count(&flag, &value)?,
            "--clients" => args.clients = count(&flag, &value)?,
            "--ping-interval-ms" => args.ping_interval_ms = number(&flag, &value)?,
            "--window-s" => args.window = Duration::from_secs(number(&flag, &value)?),
            "--settle-s" => args.settle = Duration::from_secs(number(&flag, &value)?),
            "--rate" => args.rate = number(&flag, &value)?,
            "--batch" => args.batch = count(&flag, &value)?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.nodes < 2 || args.clients == 0 || args.rate == 0 || args.window.is_zero() {
        return Err("--nodes must be 2 or more; --clients, --rate, --window-s positive".into());
    }
    Ok(args)
}

fn sibling(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map_or_else(|| name.into(), |dir| dir.join(name))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A server process, its address, and how many clients it evicted.
struct Node {
    process: Process,
    addr: String,
    evicted: Arc<AtomicUsize>,
}

fn start_node(args: &Args, cluster: Option<(&str, usize)>) -> Result<Node, String> {
    let mut cmd = Command::new(sibling("server"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--path",
        "/ws/",
        "--runtime",
        "smol",
    ])
    .args(["--ping-interval-ms", &args.ping_interval_ms.to_string()]);
    if let Some((url, i)) = cluster {
        cmd.args(["--cluster", url, "--node-id", &format!("n{i}")]);
    }
    let mut process = Process::spawn("server", &mut cmd)?;
    let lines = process.lines();
    let line = loop {
        let line = lines
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| "a server printed no `listening` line".to_owned())?;
        if is_event(&line, "listening") {
            break line;
        }
    };
    let addr = string_field(&line, "addr").ok_or("no address")?.to_owned();
    let evicted = Arc::new(AtomicUsize::new(0));
    let counter = evicted.clone();
    thread::spawn(move || {
        for line in lines {
            if is_event(&line, "evicted") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(Node {
        process,
        addr,
        evicted,
    })
}

/// A `load_clients` process and what it reported.
struct Clients {
    _process: Process,
    dropped: Arc<AtomicUsize>,
    /// Text messages received in all, and the wall-clock µs of the latest.
    texts: Arc<Mutex<(u64, u64)>>,
}

fn start_clients(args: &Args, addr: &str, prefix: &str) -> Result<Clients, String> {
    let run_s = (CONNECT_TIMEOUT + args.settle + args.window * 4).as_secs();
    let mut process = Process::spawn(
        "clients",
        Command::new(sibling("load_clients"))
            .args(["--url", &format!("ws://{addr}/ws/")])
            .args(["--clients", &args.clients.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .args(["--name-prefix", prefix, "--max-run-s", &run_s.to_string()]),
    )?;
    let lines = process.lines();
    let line = lines
        .recv_timeout(CONNECT_TIMEOUT)
        .map_err(|_| "the clients did not connect in time".to_owned())?;
    let connected = number_field(&line, "clients").unwrap_or(0);
    if connected != args.clients as u64 {
        return Err(format!(
            "only {connected} of {} connected: {line}",
            args.clients
        ));
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let texts = Arc::new(Mutex::new((0, 0)));
    let (d, t) = (dropped.clone(), texts.clone());
    thread::spawn(move || {
        for line in lines {
            if is_event(&line, "status") {
                let n = number_field(&line, "dropped").unwrap_or(0);
                d.store(usize::try_from(n).unwrap_or(usize::MAX), Ordering::Relaxed);
            } else if is_event(&line, "texts") {
                let count = number_field(&line, "count").unwrap_or(0);
                let last = number_field(&line, "last_unix_us").unwrap_or(0);
                *lock(&t) = (count, last);
            }
        }
    });
    Ok(Clients {
        _process: process,
        dropped,
        texts,
    })
}

/// CPU seconds per 30 s and RSS bytes per connection of `node` over `window`.
struct Usage {
    cpu_per_30s: f64,
    rss_per_conn: f64,
}

fn usage(start: &ProcSample, end: &ProcSample, base: &ProcSample, n: usize, s: f64) -> Usage {
    Usage {
        cpu_per_30s: end.cpu_seconds_since(start) * 30.0 / s,
        rss_per_conn: end.rss_kib.saturating_sub(base.rss_kib) as f64 * 1024.0 / n as f64,
    }
}

/// One server alone under N clients: the figures the nodes are compared with.
fn single(args: &Args) -> Result<Usage, String> {
    let node = start_node(args, None)?;
    thread::sleep(Duration::from_millis(500));
    let base = node.process.sample()?;
    let _clients = start_clients(args, &node.addr, "single-")?;
    thread::sleep(args.settle);
    let start = node.process.sample()?;
    let began = Instant::now();
    thread::sleep(args.window);
    let end = node.process.sample()?;
    let s = began.elapsed().as_secs_f64();
    Ok(usage(&start, &end, &base, args.clients, s))
}

type Ws = WebSocket<TcpStream>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn probe(addr: &str, name: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("probe: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let url = format!("ws://{addr}/ws/?name={name}");
    let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| format!("probe: {e}"))?;
    Ok(ws)
}

fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.read().map_err(|e| format!("probe read: {e}"))? {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(_) => return Err("probe closed".into()),
            _ => {}
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn unix_us() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
}

fn run(args: &Args) -> Result<(), String> {
    raise_fd_limit().map_err(|e| format!("cannot raise the fd limit: {e}"))?;
    let alone = if args.single {
        eprintln!(
            "cluster_load: one server alone under {} clients",
            args.clients
        );
        Some(single(args)?)
    } else {
        None
    };
    let port = free_port()?;
    let _redis = Process::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]),
    )?;
    let url = format!("redis://127.0.0.1:{port}");
    let began = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if began.elapsed() > START_TIMEOUT {
            return Err("redis-server did not listen".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let nodes: Vec<Node> = (0..args.nodes)
        .map(|i| start_node(args, Some((&url, i))))
        .collect::<Result<_, _>>()?;
    thread::sleep(Duration::from_millis(500));
    let bases: Vec<ProcSample> = nodes
        .iter()
        .map(|n| n.process.sample())
        .collect::<Result<_, _>>()?;
    let connecting = Instant::now();
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        clients.push(start_clients(args, &node.addr, &format!("n{i}-"))?);
        eprintln!("cluster_load: node n{i} holds {} clients", args.clients);
    }
    let total = args.nodes * args.clients;
    eprintln!(
        "cluster_load: {total} connected in {:.1} s",
        connecting.elapsed().as_secs_f64()
    );

    // Settled before the probes connect: they answer pings only while they read.
    thread::sleep(args.settle);
    let mut sender = probe(&nodes[0].addr, "probe-s")?;
    let mut receiver = probe(&nodes[1].addr, "probe-r")?;
    // Until node 0 knows where probe-r is.
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        sender
            .send(Message::text(r#"{"to":"probe-r","data":-1}"#))
            .map_err(|e| e.to_string())?;
        if next_text(&mut sender)?.contains("\"delivered\":true") {
            next_text(&mut receiver)?;
            break;
        }
        if Instant::now() > deadline {
            return Err("node 0 never learned of probe-r".into());
        }
        thread::sleep(Duration::from_millis(100));
    }
    let evicted_before: usize = nodes
        .iter()
        .map(|n| n.evicted.load(Ordering::Relaxed))
        .sum();
    let starts: Vec<ProcSample> = nodes
        .iter()
        .map(|n| n.process.sample())
        .collect::<Result<_, _>>()?;

    // The steady sends, while the window runs.
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let (arrived_tx, arrived) = mpsc::channel();
    let sent_map = sent_at.clone();
    let reading = thread::spawn(move || {
        while let Ok(text) = next_text(&mut receiver) {
            let now = Instant::now();
            if text.contains("\"fanout\"") {
                break;
            }
            let Some(i) = number_field(&text, "data") else {
                continue;
            };
            if let Some(at) = lock(&sent_map).get(&i) {
                let _ = arrived_tx.send(now - *at);
            }
        }
        receiver
    });
    let window_start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut round_trips = Vec::new();
    let mut undelivered = 0;
    let mut i = 0u64;
    while window_start.elapsed() < args.window {
        let at = Instant::now();
        lock(&sent_at).insert(i, at);
        let text = format!(r#"{{"to":"probe-r","data":{i}}}"#);
        sender
            .send(Message::text(text))
            .map_err(|e| e.to_string())?;
        let answer = next_text(&mut sender)?;
        if answer.contains("\"delivered\":true") {
            round_trips.push(at.elapsed());
        } else {
            undelivered += 1;
        }
        i += 1;
        let next = at + gap;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let ends: Vec<ProcSample> = nodes
        .iter()
        .map(|n| n.process.sample())
        .collect::<Result<_, _>>()?;
    let evicted_in_window = nodes
        .iter()
        .map(|n| n.evicted.load(Ordering::Relaxed))
        .sum::<usize>()
        - evicted_before;
    let window_s = window_start.elapsed().as_secs_f64();

    // One broadcast, to every client of every node.
    let t0 = unix_us();
    sender
        .send(Message::text(r#"{"to":"*","data":"fanout"}"#))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let fanout_ms = loop {
        let got: Vec<(u64, u64)> = clients.iter().map(|c| *lock(&c.texts)).collect();
        if got.iter().all(|(n, _)| *n >= args.clients as u64) {
            let last = got.iter().map(|(_, t)| *t).max().unwrap_or(t0);
            break last.saturating_sub(t0) as f64 / 1000.0;
        }
        if Instant::now() > deadline {
            let reached: u64 = got.iter().map(|(n, _)| *n).sum();
            return Err(format!(
                "the broadcast reached {reached} of {total} clients"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let _ = reading.join();
    let mut one_way: Vec<Duration> = arrived.try_iter().collect();
    one_way.sort();
    round_trips.sort();

    let evicted = nodes
        .iter()
        .map(|n| n.evicted.load(Ordering::Relaxed))
        .sum::<usize>()
        - evicted_before;
    let dropped: usize = clients
        .iter()
        .map(|c| c.dropped.load(Ordering::Relaxed))
        .sum();
    println!(
        "nodes x clients:     {} x {} = {total} connections held",
        args.nodes, args.clients
    );
    println!("ping interval:       {} ms", args.ping_interval_ms);
    let mut cpu_sum = 0.0;
    let mut rss_sum = 0.0;
    for (k, node) in nodes.iter().enumerate() {
        let u = usage(&starts[k], &ends[k], &bases[k], args.clients, window_s);
        cpu_sum += u.cpu_per_30s;
        rss_sum += u.rss_per_conn;
        println!(
            "node n{k} ({}):     CPU {:.2} s per 30 s, {:.0} bytes per connection",
            node.addr, u.cpu_per_30s, u.rss_per_conn
        );
    }
    let (cpu, rss) = (cpu_sum / args.nodes as f64, rss_sum / args.nodes as f64);
    if let Some(a) = &alone {
        println!(
            "one server alone:    CPU {:.2} s per 30 s, {:.0} bytes per connection; node/alone CPU {:.2}x, memory {:.2}x",
            a.cpu_per_30s, a.rss_per_conn, cpu / a.cpu_per_30s, rss / a.rss_per_conn
        );
    }
    let (p50, p99) = (percentile(&one_way, 0.5), percentile(&one_way, 0.99));
    let (r50, r99) = (
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99),
    );
    println!("send-to-name n0->n1: {} sent, one way p50 {p50:.2} ms p99 {p99:.2} ms; with the answer p50 {r50:.2} ms p99 {r99:.2} ms; {undelivered} undelivered", i);
    println!("broadcast fan-out:   {fanout_ms:.0} ms to all {total}");
    println!(
        "evicted {evicted_in_window} in the window, {evicted} in all (with the broadcast); client drops {dropped}"
    );
    let alone_json = alone.as_ref().map_or("null".to_owned(), |a| {
        format!(
            r#"{{"cpu_s_per_30s":{:.3},"rss_per_conn_bytes":{:.0}}}"#,
            a.cpu_per_30s, a.rss_per_conn
        )
    });
    println!(
        r#"{{"event":"result","nodes":{},"clients_per_node":{},"connections":{total},"node_cpu_s_per_30s":{cpu:.3},"node_rss_per_conn_bytes":{rss:.0},"alone":{alone_json},"sends":{i},"undelivered":{undelivered},"send_p50_ms":{p50:.3},"send_p99_ms":{p99:.3},"answer_p50_ms":{r50:.3},"answer_p99_ms":{r99:.3},"broadcast_fanout_ms":{fanout_ms:.1},"evicted_in_window":{evicted_in_window},"evicted":{evicted},"dropped":{dropped}}}"#,
        args.nodes, args.clients
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("cluster_load: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cluster_load: {err}");
            ExitCode::FAILURE
        }
    }
}
