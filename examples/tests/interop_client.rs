//! The `client` example against WebSocket servers nobody in heartline wrote: Node's `ws`
//! and Python's `websockets`, each behaving the way the seed articles' servers do
//! (`interop/node/seed_server.js`, `interop/python/seed_server.py`).
//!
//! Each test: the client opens, a stdin line comes back as a `message`, heartbeats are
//! answered (`rtt` events) and their replies are not delivered as messages; the peer
//! process is killed and the client reports `closed` and `reconnect_scheduled`; the peer
//! restarts on the same port and the client is `open` again and still echoes.
//!
//! The peers are installed by `cd interop && npm ci` and
//! `python3 -m pip install -r interop/requirements.txt`.
//! Without them a test fails when `CI` is set and is skipped otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::{skip_or_fail, ClientProc, PATIENCE};

#[derive(Clone, Copy, Debug)]
enum Peer {
    Node,
    Python,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The server sends protocol Pings; the client uses protocol Pings too.
    Protocol,
    /// Seed 001: text "ping" / "pong"; other messages come back as "Echo: ...".
    TextPing,
    /// Seed 002: JSON `{"ModeCode":"heart_beat",...}` echoed back.
    JsonEcho,
}

const HEART_BEAT: &str = r#"{"ModeCode":"heart_beat","msg":"heartline"}"#;

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Protocol => "protocol",
            Mode::TextPing => "text-ping",
            Mode::JsonEcho => "json-echo",
        }
    }

    /// Heartbeat options for the client.
    fn client_args(self) -> Vec<&'static str> {
        match self {
            Mode::Protocol => vec![],
            Mode::TextPing => vec!["--app-ping", "ping", "--app-pong", "pong"],
            Mode::JsonEcho => vec!["--app-echo", HEART_BEAT],
        }
    }

    /// A line to send and the message the server answers it with.
    fn exchange(self, n: u32) -> (String, String) {
        match self {
            Mode::Protocol => (format!("hello {n}"), format!("hello {n}")),
            Mode::TextPing => (format!("hello {n}"), format!("Echo: hello {n}")),
            Mode::JsonEcho => {
                let m = format!(r#"{{"ModeCode":"message","msg":"hello {n}"}}"#);
                (m.clone(), m)
            }
        }
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

impl Peer {
    /// Whether the peer can run here; if not, reports (fails under CI) and says no.
    fn available(self) -> bool {
        let (ok, what, install) = match self {
            Peer::Node => (
                Command::new("node")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
                    && interop_dir().join("node_modules/ws/package.json").exists(),
                "Node.js with the ws package",
                "apt-get install -y nodejs npm && (cd interop && npm ci)",
            ),
            Peer::Python => (
                Command::new("python3")
                    .args(["-c", "import websockets.asyncio.server"])
                    .stderr(Stdio::null())
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "Python 3 with websockets >= 13",
                "python3 -m pip install -r interop/requirements.txt",
            ),
        };
        if !ok {
            skip_or_fail(what, install);
        }
        ok
    }

    /// Starts the peer on `port` (0: any) and returns it with the port it bound.
    fn start(self, mode: Mode, port: u16) -> (Running, u16) {
        let dir = interop_dir();
        let mut cmd = match self {
            Peer::Node => {
                let mut c = Command::new("node");
                c.arg(dir.join("node/seed_server.js"));
                c
            }
            Peer::Python => {
                let mut c = Command::new("python3");
                c.arg(dir.join("python/seed_server.py"));
                c
            }
        };
        let mut child = Running(
            cmd.arg(mode.name())
                .arg(port.to_string())
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("start the {self:?} peer: {e}")),
        );
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the peer never blocks on a full pipe.
            for _ in lines {}
        });
        // An interpreter starting on a loaded machine can take a while.
        let line = rx
            .recv_timeout(PATIENCE * 2)
            .unwrap_or_else(|_| panic!("the {self:?} peer did not start listening"));
        let bound = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the {self:?} peer: {line:?}"));
        (child, bound)
    }
}

/// A running peer process; killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills the peer at once (SIGKILL: no Close frame, like a crash).
fn kill(peer: Running) {
    drop(peer);
}

fn scenario(peer: Peer, mode: Mode, runtime: &str) {
    if !peer.available() {
        return;
    }
    let (server, port) = peer.start(mode, 0);
    let url = format!("ws://127.0.0.1:{port}/ws/?name=test");
    let mut args = vec![
        "--runtime",
        runtime,
        "--ping-interval-ms",
        "100",
        "--pong-timeout-ms",
        "2000",
        "--reconnect",
        "fixed:100",
        "--seed",
        "1",
    ];
    args.extend(mode.client_args());
    let mut client = ClientProc::spawn(&url, &args);
    client.wait_event("open");

    let (line, echo) = mode.exchange(1);
    client.send_line(&line);
    client.wait_text(&echo);

    // Several heartbeat round trips: long enough that a peer checking our Pongs (the
    // protocol mode's servers drop a client that misses one) would have dropped us.
    for _ in 0..5 {
        client.wait_event("rtt");
    }
    assert!(
        client.seen_named("closed").is_empty(),
        "the connection closed while idle with heartbeats: {:?}",
        client.seen
    );

    kill(server);
    let closed = client.wait_event("closed");
    assert_eq!(closed["by"], "transport", "{closed}");
    assert_eq!(closed["code"], 1006, "{closed}");
    let scheduled = client.wait_event("reconnect_scheduled");
    assert!(scheduled["attempt"].as_u64() >= Some(1), "{scheduled}");

    let (server, again) = peer.start(mode, port);
    assert_eq!(again, port);
    client.wait_event("open");
    let (line, echo) = mode.exchange(2);
    client.send_line(&line);
    client.wait_text(&echo);

    client.close_stdin();
    let status = client.wait_exit();
    assert!(status.success(), "client exited with {status}");
    let last_closed = client.seen_named("closed").pop().cloned();
    assert_eq!(
        last_closed.as_ref().map(|c| c["by"].clone()),
        Some("local".into()),
        "{:?}",
        client.seen
    );

    // Heartbeat replies are consumed: the only messages delivered are the echoes.
    let delivered: Vec<_> = client
        .seen_named("message")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(delivered, vec![mode.exchange(1).1, mode.exchange(2).1]);
    kill(server);
}

#[test]
fn node_ws_protocol_pings() {
    scenario(Peer::Node, Mode::Protocol, "smol");
}

#[test]
fn node_ws_text_ping_pong() {
    scenario(Peer::Node, Mode::TextPing, "blocking");
}

#[test]
fn node_ws_json_heart_beat() {
    scenario(Peer::Node, Mode::JsonEcho, "async-std");
}

#[test]
fn node_ws_protocol_pings_on_tokio() {
    scenario(Peer::Node, Mode::Protocol, "tokio");
}

#[test]
fn python_websockets_json_heart_beat_on_tokio() {
    scenario(Peer::Python, Mode::JsonEcho, "tokio");
}

#[test]
fn python_websockets_protocol_pings() {
    scenario(Peer::Python, Mode::Protocol, "blocking");
}

#[test]
fn python_websockets_text_ping_pong() {
    scenario(Peer::Python, Mode::TextPing, "async-std");
}

#[test]
fn python_websockets_json_heart_beat() {
    scenario(Peer::Python, Mode::JsonEcho, "smol");
}
