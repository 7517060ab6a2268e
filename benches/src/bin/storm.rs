//! The reconnect storm: N heartline clients connected to a server that is killed and
//! restarted. How evenly do they come back?
//!
//! ```text
//! storm [--clients 10000] [--jitter equal,full] [--downtime-ms 1000] [--max-wait-s 120]
//! ```
//!
//! For each jitter in turn: starts a heartline server (smol) as its own process, then
//! the N clients (heartline's smol client, default configuration but for the jitter)
//! in another, and waits until all are open. Then it kills the server (SIGKILL),
//! starts a new one on the same port after `--downtime-ms`, and reads the time of
//! every client's reconnection. It prints the reconnections per 100 ms window, the
//! peak window against the mean over the windows from the first reconnection to the
//! last, and the time from the kill until all were back; then one JSON line per
//! jitter and a final result line for the library's default jitter.
//!
//! The server and the clients are this same program (`storm serve`, `storm clients`),
//! so `cargo run --release -p heartline-benches --bin storm` needs nothing else built.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use heartline_async::ClientConfig;
use heartline_benches::load::raise_fd_limit;
use heartline_benches::storm::{self, StormRole, StormSetup, WINDOW_MS};

#[derive(Parser)]
#[command(
    version,
    about = "A reconnect storm: N clients, their server killed and restarted"
)]
struct Args {
    #[command(subcommand)]
    role: Option<StormRole>,
    /// Clients in all (at most about 19,000 per process with a 20,000 fd limit).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Jitters to measure, in turn: `equal`, `full`, `none`.
    #[arg(long, value_delimiter = ',', default_value = "equal,full")]
    jitter: Vec<String>,
    /// Processes the clients are spread over.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// How long the server stays down before its restart.
    #[arg(long, default_value_t = 1000)]
    downtime_ms: u64,
    /// How long all clients may take to connect, and to come back.
    #[arg(long, default_value_t = 120)]
    max_wait_s: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.role {
        Some(role) => role.run(),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let limit = raise_fd_limit().map_err(|e| format!("cannot raise the fd limit: {e}"))?;
    if limit < args.clients as u64 + 64 {
        return Err(format!(
            "the fd limit {limit} is too low for {} clients",
            args.clients
        ));
    }
    for name in &args.jitter {
        storm::jitter(name)?;
    }
    let setup = StormSetup {
        clients: args.clients,
        processes: args.processes,
        downtime: Duration::from_millis(args.downtime_ms),
        max_wait: Duration::from_secs(args.max_wait_s),
    };
    let default = ClientConfig::default().reconnect.jitter;
    let mut result = None;
    for name in &args.jitter {
        let s = storm::storm(&setup, name)?;
        println!(
            "{name} jitter: {} clients back {:.2} s after the kill ({} ms down); \
             peak/mean per {WINDOW_MS} ms = {:.2}",
            args.clients, s.all_back_s, args.downtime_ms, s.peak_to_mean
        );
        println!("  reconnections per window: {:?}", s.windows);
        println!(
            "{{\"event\":\"storm\",\"clients\":{},\"jitter\":\"{name}\",\"downtime_ms\":{},\
             \"peak_to_mean\":{:.3},\"all_back_s\":{:.3},\"windows\":{:?}}}",
            args.clients, args.downtime_ms, s.peak_to_mean, s.all_back_s, s.windows
        );
        if storm::jitter(name)? == default || result.is_none() {
            result = Some((name.clone(), s));
        }
    }
    match storm::panics() {
        0 => {
            let _ = std::fs::remove_dir_all(storm::stderr_dir());
        }
        n => eprintln!("storm: {n} panics; see {}", storm::stderr_dir().display()),
    }
    if let Some((name, s)) = result {
        println!(
            "{{\"event\":\"result\",\"clients\":{},\"jitter\":\"{name}\",\
             \"peak_to_mean\":{:.3},\"all_back_s\":{:.3}}}",
            args.clients, s.peak_to_mean, s.all_back_s
        );
    }
    Ok(())
}
