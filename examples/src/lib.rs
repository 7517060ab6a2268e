//! Shared parts of heartline's example programs: the echo server the demo, tests and
//! benchmarks talk to, the `client` example's argument parser, the JSON-line writer,
//! the `server` example's event handler (echo and relay across a cluster), and the JSON and human-readable renderings of a client's notices.
#![forbid(unsafe_code)]

pub mod args;
pub mod echo;
pub mod events;
pub mod jsonl;
pub mod relay;

/// Sends heartline's `tracing` events to stderr, filtered by `RUST_LOG`
/// (`RUST_LOG=heartline=debug`, `RUST_LOG=heartline::server=info`); nothing without it.
/// The examples' JSON lines stay alone on stdout.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
