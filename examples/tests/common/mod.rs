//! Helpers shared by the tests that run the `client` example as a process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long to wait for an event that should come within milliseconds. Generous, so a
/// loaded machine does not fail a test; a working client never gets near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `client` example running as a child process, its stdout parsed line by line.
pub struct ClientProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every event read so far, in order.
    pub seen: Vec<Value>,
}

impl ClientProc {
    /// Starts `client URL ARGS...`.
    pub fn spawn(url: &str, args: &[&str]) -> ClientProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
            .arg(url)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the client example");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ClientProc {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Sends one line on the client's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the client's stdin");
        stdin.flush().expect("flush the client's stdin");
    }

    /// Closes the client's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads events until one satisfies `pred` and returns it; panics with everything
    /// seen if none does within [`PATIENCE`] or the client exits first.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
                    assert!(v["event"].is_string(), "no \"event\" in {line}");
                    assert!(v["t_ms"].is_u64(), "no \"t_ms\" in {line}");
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {PATIENCE:?}; saw:\n{}", self.dump())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("client exited before {what}; saw:\n{}", self.dump())
                }
            }
        }
    }

    /// Waits for an event named `event`.
    pub fn wait_event(&mut self, event: &str) -> Value {
        self.wait_for(event, |v| v["event"] == event)
    }

    /// Waits for a `message` event whose text is `text`.
    pub fn wait_text(&mut self, text: &str) -> Value {
        self.wait_for(&format!("message {text:?}"), |v| {
            v["event"] == "message" && v["text"] == text
        })
    }

    /// Waits for the process to exit, reading the rest of its events.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        self.seen.push(v);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("client did not exit; saw:\n{}", self.dump())
                }
            }
        }
        // stdout is closed; the process is exiting or gone.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the client") {
                return status;
            }
            assert!(Instant::now() < deadline, "client did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The events seen so far with this name.
    pub fn seen_named(&self, event: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == event).collect()
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `client ARGS...` with no stdin and returns (status, stdout, stderr).
pub fn run_client(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the client example");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether a peer that needs installing is missing: with `CI` set that is a failure,
/// otherwise the test prints why it skips and the caller returns.
pub fn skip_or_fail(peer: &str, install: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{peer} is not installed (CI is set, so this fails): {install}");
    }
    eprintln!("skipped: {peer} is not installed; install with: {install}");
}

/// A child process whose stdout is read line by line as JSON (any example program).
pub struct Proc {
    child: Child,
    /// Its stdin; set to `None` to close it (EOF).
    pub stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Proc {
    /// Starts `command` with piped stdin and stdout.
    pub fn spawn(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines,
        }
    }

    /// The next line, or a panic naming `what` if none comes within `patience`.
    pub fn next(&self, what: &str, patience: Duration) -> Value {
        self.lines
            .recv_timeout(patience)
            .unwrap_or_else(|e| panic!("no line ({e}) while waiting for {what}"))
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the `server` example with `args` and waits for its `listening` line: the
/// process and the address it listens on.
pub fn server(args: &[&str]) -> (Proc, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(args);
    let proc = Proc::spawn(command);
    let first = proc.next("listening", PATIENCE);
    assert_eq!(first["event"], "listening", "{first}");
    let addr = first["addr"].as_str().expect("an address").to_owned();
    (proc, addr)
}
