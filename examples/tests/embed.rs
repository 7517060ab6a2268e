//! The `embed` example (heartline-core in a loop of its own, no adapter crate) against
//! the `server` example: 100 clients open; the server is killed and started again on
//! the same address; every client comes back exactly once, and the new server's
//! registry holds the 100 names with nothing replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENTS: usize = 100;
/// How long anything that must happen may take: far beyond what it needs (the
/// reconnects come within the first backoff, about a second).
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process whose stdout is read line by line as JSON.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Proc {
    fn spawn(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
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

    /// The next line, or a panic naming `what` if none comes in time.
    fn next(&self, what: &str) -> Value {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no line ({e}) while waiting for {what}"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server(listen: &str) -> (Proc, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(["--listen", listen, "--runtime", "blocking"]);
    let proc = Proc::spawn(command);
    let first = proc.next("listening");
    assert_eq!(first["event"], "listening", "{first}");
    let addr = first["addr"].as_str().expect("an address").to_owned();
    (proc, addr)
}

/// Reads the server's events until `CLIENTS` distinct names are connected; returns
/// every event seen.
fn until_all_connected(server: &Proc) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut names = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while names.len() < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "only {} names connected",
            names.len()
        );
        let event = server.next("connected clients");
        if event["event"] == "connected" {
            names.insert(event["name"].as_str().unwrap_or_default().to_owned());
        }
        seen.push(event);
    }
    seen
}

#[test]
fn every_client_reopens_once_after_a_server_restart() {
    let (mut first, addr) = server("127.0.0.1:0");
    let mut command = Command::new(env!("CARGO_BIN_EXE_embed"));
    command.args([
        &format!("ws://{addr}/ws/"),
        "--clients",
        &CLIENTS.to_string(),
        "--until-eof",
    ]);
    let mut embed = Proc::spawn(command);

    // Every client opens once.
    let mut opens: BTreeMap<u64, usize> = BTreeMap::new();
    let mut events = Vec::new();
    while opens.len() < CLIENTS {
        let event = embed.next("the first opens");
        if event["event"] == "open" {
            *opens
                .entry(event["client"].as_u64().expect("a client"))
                .or_default() += 1;
        }
        events.push(event);
    }
    until_all_connected(&first);

    // The server dies without a goodbye and comes back on the same address.
    first.kill();
    let (second, again) = server(&addr);
    assert_eq!(again, addr);
    let registered = until_all_connected(&second);

    // Every client reopens exactly once.
    while opens.values().any(|&n| n < 2) {
        let event = embed.next("the reopens");
        if event["event"] == "open" {
            *opens
                .entry(event["client"].as_u64().expect("a client"))
                .or_default() += 1;
        }
        events.push(event);
    }
    embed.stdin = None; // EOF: every client closes and the result line follows.
    let result = loop {
        let event = embed.next("the result");
        if event["event"] == "open" {
            *opens
                .entry(event["client"].as_u64().expect("a client"))
                .or_default() += 1;
        }
        if event["event"] == "result" {
            break event;
        }
        events.push(event);
    };
    assert!(
        opens.values().all(|&n| n == 2),
        "a client opened more than twice: {opens:?}"
    );
    assert_eq!(result["clients"], CLIENTS, "{result}");
    assert_eq!(result["opened"], CLIENTS, "{result}");
    assert_eq!(result["reopened"], CLIENTS, "{result}");
    assert_eq!(result["gave_up"], 0, "{result}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "closed" && e["by"] == "transport"),
        "the restart was not seen as a lost connection"
    );

    // No duplicate connection: the restarted server saw each name connect once and
    // replaced nobody before the clients closed.
    let connected: Vec<_> = registered
        .iter()
        .filter(|e| e["event"] == "connected")
        .collect();
    assert_eq!(connected.len(), CLIENTS, "{registered:?}");
    assert!(
        registered.iter().all(|e| e["event"] != "replaced"),
        "{registered:?}"
    );
}
