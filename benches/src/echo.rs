//! What the echo benches share: their settings from the environment, and the median.

use std::time::Duration;

/// An echo bench's settings, from `ECHO_SECONDS` (measured time per run, default 1.5),
/// `ECHO_ROUNDS` (default 5), `ECHO_WINDOW` (messages in flight per connection,
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
            measure: Duration::from_secs_f64(env_or("ECHO_SECONDS", 1.5)),
            warmup: Duration::from_millis(300),
            rounds: env_or("ECHO_ROUNDS", 5usize).max(1),
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
