//! The reconnect storm and the child processes it runs: a heartline server, and N
//! heartline clients that print the time of every open. Used by the `storm` program
//! and by the fault matrix (`faults`), which runs the storm as one of its scenarios.
//!
//! Both roles are subcommands of the program that runs the storm (`PROGRAM serve`,
//! `PROGRAM clients`), so a storm needs no other binary built.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use heartline_async::{ClientBuilder, ClientConfig, ClientEvent, Notice};
use heartline_core::{Jitter, NameSource, PathRule};

/// Width of the windows reconnections are counted in, in ms.
pub const WINDOW_MS: u64 = 100;

/// The child processes of a storm, as subcommands of the program that runs it.
#[derive(Debug, clap::Subcommand)]
pub enum StormRole {
    /// The server ([`serve`]).
    #[command(hide = true)]
    Serve {
        /// Its port on 127.0.0.1.
        #[arg(long)]
        port: u16,
    },
    /// The clients ([`clients`]).
    #[command(hide = true)]
    Clients {
        /// The server's URL.
        #[arg(long)]
        url: String,
        /// How many.
        #[arg(long)]
        count: usize,
        /// Their jitter ([`jitter`]).
        #[arg(long)]
        jitter: String,
    },
}

impl StormRole {
    /// Runs this role until it ends (the server and the clients run until killed).
    pub fn run(&self) -> Result<(), String> {
        match self {
            StormRole::Serve { port } => serve(*port),
            StormRole::Clients {
                url,
                count,
                jitter: j,
            } => {
                let _ = crate::load::raise_fd_limit();
                jitter(j).and_then(|j| clients(url, *count, j))
            }
        }
    }
}

/// The jitter called `name`: `equal`, `full` or `none`.
pub fn jitter(name: &str) -> Result<Jitter, String> {
    match name {
        "equal" => Ok(Jitter::Equal),
        "full" => Ok(Jitter::Full),
        "none" => Ok(Jitter::None),
        other => Err(format!("unknown jitter {other:?} (equal, full, none)")),
    }
}

/// Milliseconds since the Unix epoch: a clock every process of a run shares.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The server role: anonymous clients on any path of 127.0.0.1:`port`; prints
/// `listening` once it is.
pub fn serve(port: u16) -> Result<(), String> {
    let mut config = heartline_async::server::ServerConfig::default();
    let up = &mut config.core.upgrade;
    up.path = PathRule::Any;
    up.name = NameSource::None;
    up.name_required = false;
    smol::block_on(async {
        let (server, _) = heartline_async::server::smol::listen(("127.0.0.1", port), config)
            .await
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
        println!("listening");
        // Events queue until read: read them all.
        while server.next_event().await.is_some() {}
        Ok(())
    })
}

/// The clients role: `count` heartline clients of `url` (default configuration but
/// for `jitter`); prints `open MS` at every open. Runs until killed.
pub fn clients(url: &str, count: usize, jitter: Jitter) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<u64>();
    let printer = thread::spawn(move || {
        let mut out = BufWriter::new(std::io::stdout().lock());
        while let Ok(ms) = rx.recv() {
            let _ = writeln!(out, "open {ms}");
            for ms in rx.try_iter() {
                let _ = writeln!(out, "open {ms}");
            }
            if out.flush().is_err() {
                return;
            }
        }
    });
    let mut config = ClientConfig::default();
    config.reconnect.jitter = jitter;
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let builder = ClientBuilder::new(url)
            .config(config.clone())
            .seed(i as u64 + 1)
            .read_buffer_size(4096);
        let (handle, mut events) =
            heartline_async::smol::connect(builder).map_err(|e| format!("client {i}: {e}"))?;
        handles.push(handle);
        let tx = tx.clone();
        smol::spawn(async move {
            while let Some(event) = events.next().await {
                if let ClientEvent::Notice(Notice::Open { .. }) = event {
                    let _ = tx.send(unix_ms());
                }
            }
        })
        .detach();
    }
    drop(tx);
    // Runs until killed; the handles keep the clients alive.
    smol::block_on(smol::Timer::after(Duration::from_secs(24 * 3600)));
    drop(handles);
    let _ = printer.join();
    Ok(())
}

/// A child process of this program, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the child processes of this process write their stderr: a file each, read
/// back for panics ([`panics`]).
pub fn stderr_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("heartline-children-{}", std::process::id()))
}

/// Starts this program with `args`, its stdout piped, its stderr to a new file in
/// [`stderr_dir`].
pub fn spawn(args: &[&str]) -> Result<(Proc, ChildStdout), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CHILDREN: AtomicUsize = AtomicUsize::new(0);
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let dir = stderr_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = CHILDREN.fetch_add(1, Ordering::Relaxed);
    let log = dir.join(format!(
        "{n}-{}.log",
        args.first().copied().unwrap_or("child")
    ));
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {args:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    Ok((Proc(child), stdout))
}

/// Panics the children of this process reported on their stderr so far.
pub fn panics() -> usize {
    let Ok(entries) = std::fs::read_dir(stderr_dir()) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| text.matches("panicked at").count())
        .sum()
}

/// Starts the server role on `port` and waits until it listens.
pub fn start_server(port: u16) -> Result<Proc, String> {
    let (proc, stdout) = spawn(&["serve", "--port", &port.to_string()])?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("server: {e}"))?;
    if line.trim() != "listening" {
        return Err(format!("server said {line:?}"));
    }
    Ok(proc)
}

/// Lines `open MS` from the clients, as they come.
pub fn opens(stdout: ChildStdout) -> Receiver<u64> {
    let (tx, rx) = mpsc::channel();
    opens_into(stdout, tx);
    rx
}

/// Lines `open MS` from one clients process, into `tx`.
fn opens_into(stdout: ChildStdout, tx: mpsc::Sender<u64>) {
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(ms) = line.strip_prefix("open ").and_then(|m| m.parse().ok()) {
                if tx.send(ms).is_err() {
                    return;
                }
            }
        }
    });
}

/// Waits for `n` opens; their times.
pub fn collect(rx: &Receiver<u64>, n: usize, within: Duration) -> Result<Vec<u64>, String> {
    let end = Instant::now() + within;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ms) => got.push(ms),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("only {} of {n} open after {within:?}", got.len()))
            }
            Err(RecvTimeoutError::Disconnected) => return Err("the clients died".to_owned()),
        }
    }
    Ok(got)
}

/// What one storm showed.
pub struct Storm {
    /// Reconnections per window, from the first window with one to the last.
    pub windows: Vec<usize>,
    /// The fullest window against the mean over `windows`.
    pub peak_to_mean: f64,
    /// From the kill until the last client was back.
    pub all_back_s: f64,
    /// Opens beyond one per client in the second after all were back.
    pub extra_opens: usize,
}

/// Buckets reconnection times (ms since the kill) into windows from the first to the
/// last; peak over mean of those windows.
pub fn analyse(since_kill: &[u64]) -> Storm {
    let first = since_kill.iter().min().copied().unwrap_or(0) / WINDOW_MS;
    let last = since_kill.iter().max().copied().unwrap_or(0) / WINDOW_MS;
    let mut windows = vec![0usize; (last - first + 1) as usize];
    for t in since_kill {
        windows[(t / WINDOW_MS - first) as usize] += 1;
    }
    let peak = windows.iter().max().copied().unwrap_or(0) as f64;
    let mean = since_kill.len() as f64 / windows.len() as f64;
    Storm {
        windows,
        peak_to_mean: if mean > 0.0 { peak / mean } else { 0.0 },
        all_back_s: since_kill.iter().max().copied().unwrap_or(0) as f64 / 1000.0,
        extra_opens: 0,
    }
}

/// How a storm runs.
#[derive(Debug, Clone)]
pub struct StormSetup {
    /// Clients in all.
    pub clients: usize,
    /// Processes the clients are spread over (each notices the server's death on
    /// its own; one process alone serialises that detection).
    pub processes: usize,
    /// Server downtime between the kill and the restart.
    pub downtime: Duration,
    /// How long the clients may take to connect, and to come back.
    pub max_wait: Duration,
}

/// One storm with `jitter_name` (`equal`, `full`, `none`).
pub fn storm(args: &StormSetup, jitter_name: &str) -> Result<Storm, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let wait = args.max_wait;
    let server = start_server(port)?;
    let url = format!("ws://127.0.0.1:{port}/");
    let processes = args.processes.clamp(1, args.clients.max(1));
    let (tx, rx) = mpsc::channel();
    let mut procs = Vec::with_capacity(processes);
    for k in 0..processes {
        // The first ones take the remainder.
        let count = args.clients / processes + usize::from(k < args.clients % processes);
        let count = count.to_string();
        let (proc, stdout) = spawn(&[
            "clients",
            "--url",
            &url,
            "--count",
            &count,
            "--jitter",
            jitter_name,
        ])?;
        opens_into(stdout, tx.clone());
        procs.push(proc);
    }
    drop(tx);
    collect(&rx, args.clients, wait)?;
    thread::sleep(Duration::from_secs(1));
    let killed = unix_ms();
    drop(server);
    thread::sleep(args.downtime);
    let _server = start_server(port)?;
    let back = collect(&rx, args.clients, wait)?;
    let since_kill: Vec<u64> = back.iter().map(|t| t.saturating_sub(killed)).collect();
    thread::sleep(Duration::from_secs(1));
    let mut storm = analyse(&since_kill);
    storm.extra_opens = rx.try_iter().count();
    Ok(storm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_span_first_to_last_and_compare_the_peak_to_their_mean() {
        // 4 reconnections in window 5, 1 in 6, none in 7, 1 in 8: 6 over 4 windows.
        let s = analyse(&[500, 510, 550, 599, 650, 870]);
        assert_eq!(s.windows, vec![4, 1, 0, 1]);
        assert!((s.peak_to_mean - 4.0 / 1.5).abs() < 1e-9);
        assert!((s.all_back_s - 0.87).abs() < 1e-9);
    }
}
