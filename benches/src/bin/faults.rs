//! The fault matrix: a heartline client sending numbered messages to a heartline
//! server, each in its own process, through one fault at a time; then a 10,000-client
//! reconnect storm. Prints one table and a JSON result line.
//!
//! ```text
//! faults [--storm-clients 10000] [--messages 400]
//! ```
//!
//! | scenario | the fault | found by | bound |
//! | --- | --- | --- | --- |
//! | server killed | SIGKILL, a new server 0.5 s later | the client: the socket ends | 1 s |
//! | server frozen | SIGSTOP for 2.5 s | the client's heartbeat | 2 x 250 ms + 0.5 s |
//! | client frozen | SIGSTOP of the client for 2.5 s | the server's idle eviction | 750 ms + 0.5 s |
//! | black hole | a proxy in between swallows everything for 2.5 s | both heartbeats | as above |
//! | slowloris | 200 sockets with a request head that never ends | the handshake timeout | 1 s + 0.5 s |
//! | oversize | one 128 KiB message to a 64 KiB limit | Close 1009 | 1 s |
//! | storm | 10,000 clients, server killed and back after 1 s | all back | 10 s |
//!
//! Messages: the client sends one every 10 ms before, during and after the fault.
//! Delivered counts the distinct ones the servers received; lost is what was accepted
//! and neither delivered nor reported (`Dropped`, or `Unconfirmed`: written after the
//! last heartbeat the server answered on a connection that died); duplicated, those
//! received twice. Duplicate connections: the client open twice at once, or a server
//! holding two connections of one name that did not replace each other, or a storm
//! client back twice. Panics: "panicked at" in any child's stderr.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use heartline_benches::faults::{self, ClientCounts, Proxy, CLIENT_PING, SERVER_IDLE};
use heartline_benches::load::raise_fd_limit;
use heartline_benches::storm::{self, Proc, StormRole, StormSetup};
use rustix::process::{kill_process, Pid, Signal};

#[derive(Parser)]
#[command(
    version,
    about = "heartline under faults: one table, one JSON result line"
)]
struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    /// Clients in the reconnect storm (0 leaves the storm out).
    #[arg(long, default_value_t = 10_000)]
    storm_clients: usize,
    /// Messages the client sends in each scenario, one every 10 ms.
    #[arg(long, default_value_t = 400)]
    messages: usize,
}

/// The child processes.
#[derive(Subcommand)]
enum Role {
    #[command(hide = true)]
    FaultServer {
        #[arg(long)]
        port: u16,
    },
    #[command(hide = true)]
    FaultClient {
        #[arg(long)]
        url: String,
        #[arg(long)]
        messages: usize,
    },
    #[command(flatten)]
    Storm(StormRole),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ServerKilled,
    ServerFrozen,
    ClientFrozen,
    BlackHole,
    Slowloris,
    Oversize,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::ServerKilled,
        Fault::ServerFrozen,
        Fault::ClientFrozen,
        Fault::BlackHole,
        Fault::Slowloris,
        Fault::Oversize,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::ServerKilled => "server killed",
            Fault::ServerFrozen => "server frozen",
            Fault::ClientFrozen => "client frozen",
            Fault::BlackHole => "black hole",
            Fault::Slowloris => "slowloris",
            Fault::Oversize => "oversize",
        }
    }

    fn bound(self) -> Duration {
        let slack = Duration::from_millis(500);
        match self {
            Fault::ServerKilled | Fault::Oversize => Duration::from_secs(1),
            Fault::ServerFrozen | Fault::BlackHole => CLIENT_PING * 2 + slack,
            Fault::ClientFrozen => SERVER_IDLE + slack,
            Fault::Slowloris => faults::HANDSHAKE_TIMEOUT + slack,
        }
    }
}

/// One row of the table.
#[derive(Debug, Default)]
struct Row {
    name: &'static str,
    bound: Duration,
    detected: Option<Duration>,
    client: Option<ClientCounts>,
    delivered: usize,
    duplicated: usize,
    duplicate_connections: usize,
}

impl Row {
    fn lost(&self) -> usize {
        self.client.map_or(0, |c| {
            c.accepted
                .saturating_sub(self.delivered + c.dropped + c.unconfirmed)
        })
    }
}

/// Lines of a child, with the time each arrived.
type Log = Arc<Mutex<Vec<(Instant, String)>>>;

fn record(rx: Receiver<String>) -> Log {
    let log: Log = Arc::default();
    let into = Arc::clone(&log);
    thread::spawn(move || {
        for line in rx {
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((Instant::now(), line));
        }
    });
    log
}

fn lines_of(log: &Log) -> Vec<(Instant, String)> {
    log.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The first line starting with `prefix` that arrived after `after`: how long after.
fn first_after(log: &Log, prefix: &str, after: Instant) -> Option<Duration> {
    lines_of(log)
        .iter()
        .find(|(at, l)| *at >= after && l.starts_with(prefix))
        .map(|(at, _)| *at - after)
}

fn wait_for(log: &Log, prefix: &str, within: Duration) -> Result<(), String> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if lines_of(log).iter().any(|(_, l)| l.starts_with(prefix)) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("no {prefix:?} within {within:?}"))
}

fn server(port: u16) -> Result<(Proc, Log), String> {
    let (proc, stdout) = storm::spawn(&["fault-server", "--port", &port.to_string()])?;
    let log = record(faults::lines(stdout));
    wait_for(&log, "listening", Duration::from_secs(10))?;
    Ok((proc, log))
}

fn signal(proc: &Proc, sig: Signal) {
    let _ = kill_process(Pid::from_child(&proc.0), sig);
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Connections of client `c` a server held at once that did not replace each other.
fn server_duplicates(log: &Log) -> usize {
    let mut open = HashSet::new();
    let mut duplicates = 0;
    for (_, line) in lines_of(log) {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["open", "c", conn] => {
                open.insert(conn.to_owned());
                duplicates += usize::from(open.len() > 1);
            }
            ["replaced", "c", old, _] | ["closed", "c", old, ..] => {
                open.remove(old);
            }
            _ => {}
        }
    }
    duplicates
}

fn scenario(fault: Fault, messages: usize) -> Result<Row, String> {
    let port = free_port()?;
    let (first, first_log) = server(port)?;
    let mut servers = vec![(Some(first), first_log)];
    let proxy = (fault == Fault::BlackHole)
        .then(|| Proxy::start(port).map_err(|e| format!("proxy: {e}")))
        .transpose()?;
    let target = proxy.as_ref().map_or(port, |p| p.port);
    let url = format!("ws://127.0.0.1:{target}/?name=c");
    let count = messages.to_string();
    let (client, stdout) = storm::spawn(&["fault-client", "--url", &url, "--messages", &count])?;
    let client_log = record(faults::lines(stdout));
    wait_for(&client_log, "open", Duration::from_secs(10))?;
    thread::sleep(Duration::from_secs(1));
    let at = Instant::now();
    let outage = Duration::from_millis(2500);
    let mut detected = None;
    match fault {
        Fault::ServerKilled => {
            drop(servers[0].0.take());
            thread::sleep(Duration::from_millis(500));
            let (again, log) = server(port)?;
            servers.push((Some(again), log));
            detected = first_after(&client_log, "closed", at);
        }
        Fault::ServerFrozen | Fault::ClientFrozen => {
            let (stopped, log) = if fault == Fault::ServerFrozen {
                (servers[0].0.as_ref().ok_or("no server")?, &client_log)
            } else {
                (&client, &servers[0].1)
            };
            signal(stopped, Signal::STOP);
            thread::sleep(outage);
            signal(stopped, Signal::CONT);
            let prefix = if fault == Fault::ServerFrozen {
                "closed"
            } else {
                "closed c "
            };
            detected = first_after(log, prefix, at);
        }
        Fault::BlackHole => {
            let hole = &proxy.as_ref().ok_or("no proxy")?.hole;
            hole.store(true, std::sync::atomic::Ordering::SeqCst);
            thread::sleep(outage);
            hole.store(false, std::sync::atomic::Ordering::SeqCst);
            let by_client = first_after(&client_log, "closed", at);
            let by_server = first_after(&servers[0].1, "closed c ", at);
            // Both sides must find it; the later one counts.
            detected = by_client.zip(by_server).map(|(a, b)| a.max(b));
        }
        Fault::Slowloris => detected = faults::slowloris(port, 200, fault.bound() * 2),
        Fault::Oversize => {
            let started = Instant::now();
            if faults::oversize(port, "big", 128 * 1024, fault.bound() * 2) == Some(1009) {
                detected = Some(started.elapsed());
            }
        }
    }
    wait_for(&client_log, "summary", Duration::from_secs(30))?;
    let summary = lines_of(&client_log)
        .iter()
        .find_map(|(_, l)| faults::parse_summary(l));
    drop(client);
    // Let the servers log the client's close, then stop them.
    thread::sleep(Duration::from_millis(300));
    let mut got: HashMap<String, usize> = HashMap::new();
    let mut duplicate_connections = summary.map_or(0, |c| c.overlaps);
    for (proc, log) in &mut servers {
        drop(proc.take());
        for (_, line) in lines_of(log) {
            if let Some(id) = line.strip_prefix("got c ") {
                *got.entry(id.to_owned()).or_default() += 1;
            }
        }
        duplicate_connections += server_duplicates(log);
    }
    Ok(Row {
        name: fault.name(),
        bound: fault.bound(),
        detected,
        client: summary,
        delivered: got.len(),
        duplicated: got.values().map(|n| n - 1).sum(),
        duplicate_connections,
    })
}

fn storm_row(clients: usize) -> Result<Row, String> {
    let setup = StormSetup {
        clients,
        processes: 1,
        downtime: Duration::from_secs(1),
        max_wait: Duration::from_secs(60),
    };
    let s = storm::storm(&setup, "equal")?;
    let back = Duration::from_secs_f64(s.all_back_s);
    let bound = Duration::from_secs(10);
    Ok(Row {
        name: "storm",
        bound,
        detected: (back <= bound).then_some(back),
        duplicate_connections: s.extra_opens,
        ..Row::default()
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.role {
        Some(Role::FaultServer { port }) => faults::server(*port),
        Some(Role::FaultClient { url, messages }) => faults::client(
            url,
            *messages,
            Duration::from_millis(10),
            Duration::from_secs(15),
        ),
        Some(Role::Storm(role)) => role.run(),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faults: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    raise_fd_limit().map_err(|e| format!("cannot raise the fd limit: {e}"))?;
    let mut rows = Vec::new();
    for fault in Fault::ALL {
        rows.push(scenario(fault, args.messages)?);
    }
    if args.storm_clients > 0 {
        rows.push(storm_row(args.storm_clients)?);
    }
    let panics = storm::panics();
    println!(
        "| scenario | detected | bound | queued | delivered | unconfirmed | dropped | lost | duplicated | duplicate connections |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let detected = r
            .detected
            .map_or("NO".to_owned(), |d| format!("{} ms", d.as_millis()));
        let counts = r.client.map_or("- | - | - | - | - | -".to_owned(), |c| {
            format!(
                "{} | {} | {} | {} | {} | {}",
                c.accepted,
                r.delivered,
                c.unconfirmed,
                c.dropped,
                r.lost(),
                r.duplicated
            )
        });
        println!(
            "| {} | {detected} | {} ms | {counts} | {} |",
            r.name,
            r.bound.as_millis(),
            r.duplicate_connections
        );
    }
    if panics == 0 {
        let _ = std::fs::remove_dir_all(storm::stderr_dir());
    } else {
        println!("children's stderr: {}", storm::stderr_dir().display());
    }
    println!("panics in any process: {panics}");
    let sum = |f: fn(&Row) -> usize| rows.iter().map(f).sum::<usize>();
    println!(
        "{{\"event\":\"result\",\"scenarios\":{},\"lost\":{},\"duplicated\":{},\
         \"duplicate_connections\":{},\"panics\":{panics},\"undetected\":{}}}",
        rows.len(),
        sum(Row::lost),
        sum(|r| r.duplicated),
        sum(|r| r.duplicate_connections),
        rows.iter()
            .filter(|r| r.detected.is_none_or(|d| d > r.bound))
            .count()
    );
    Ok(())
}
