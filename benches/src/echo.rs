//! What the echo benches share: their settings from the environment, the median, and
//! keeping client and server threads on CPUs of their own.

use std::time::Duration;

/// An echo bench's settings, from `ECHO_SECONDS` (measured time per run, default 0.5),
/// `ECHO_ROUNDS` (default 21), `ECHO_WINDOW` (messages in flight per connection,
/// default 16), `ECHO_SIZE` (bytes, default 32) and `ECHO_CONNS` (connection counts).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Measured time per run.
    pub measure: Duration,
    /// Time before the measured window, for connections to get going.
    pub warmup: Duration,
    /// Runs per client kind, alternating.
    pub rounds: usize,
    /// Messages each connection keeps in flight.
    pub window: usize,
    /// Bytes per message.
    pub size: usize,
}

impl Settings {
    /// The settings the environment asks for.
    pub fn from_env() -> Settings {
        Settings {
            // Many short runs rather than a few long ones: a virtual machine's speed
            // drifts over seconds, so runs made next to each other compare better the
            // shorter they are, and the median of many rounds' ratios steadies.
            measure: Duration::from_secs_f64(env_or("ECHO_SECONDS", 0.5)),
            warmup: Duration::from_millis(300),
            rounds: env_or("ECHO_ROUNDS", 21usize).max(1),
            window: env_or("ECHO_WINDOW", 16usize).max(1),
            size: env_or("ECHO_SIZE", 32usize),
        }
    }
}

/// The connection counts `ECHO_CONNS` lists (comma-separated), or `default`'s.
pub fn conns_from_env(default: &str) -> Vec<usize> {
    std::env::var("ECHO_CONNS")
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (the upper one of an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The CPUs this thread may run on, lowest first (empty if they cannot be read).
fn cpus() -> Vec<usize> {
    use rustix::thread::{sched_getaffinity, CpuSet};
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Keeps the calling thread (and the threads it starts from now on) on `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

/// Runs `start_server` with the calling thread pinned to one CPU, so the threads it
/// starts stay there, then pins the calling thread (the clients) to another: client
/// and server never share a CPU or wander between them, which on a small machine is
/// most of a run's noise. With `ECHO_PIN=0`, or fewer than two CPUs, nothing is
/// pinned. Says on stderr what it did.
pub fn pinned_apart<T>(start_server: impl FnOnce() -> T) -> T {
    let cpus = cpus();
    let pin = std::env::var("ECHO_PIN").map_or(true, |v| v != "0");
    let (Some(&client), Some(&server), true) = (cpus.first(), cpus.get(1), pin) else {
        eprintln!("echo bench: threads not pinned");
        return start_server();
    };
    let pinned = pin_to(server);
    let started = start_server();
    match pinned.and_then(|()| pin_to(client)) {
        Ok(()) => eprintln!("echo bench: server on CPU {server}, clients on CPU {client}"),
        Err(e) => eprintln!("echo bench: threads not pinned: {e}"),
    }
    started
}
