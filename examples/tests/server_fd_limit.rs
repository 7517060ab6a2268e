//! A server that runs out of file descriptors keeps running: it stops accepting for a
//! moment instead of failing or spinning, keeps serving the clients it has, and takes
//! new clients again once others leave. The `server` example runs under `ulimit -n`
//! in its own process, for each runtime; the clients run here.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{self, Message, WebSocket};

/// The server's descriptor limit: room for a few dozen clients.
const LIMIT: usize = 48;
/// How long a handshake may take before the server counts as not accepting.
const REFUSED_AFTER: Duration = Duration::from_secs(2);
/// How long anything that must happen may take.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(runtime: &str) -> Server {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {LIMIT} && exec \"$0\" --listen 127.0.0.1:0 --runtime {runtime}"
        ))
        .arg(env!("CARGO_BIN_EXE_server"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server under sh");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .and_then(Result::ok)
        .expect("the server prints a line");
    let listening: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    let addr = listening["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first}"));
    // Keep reading so the server never blocks on a full pipe.
    thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, addr }
}

/// A WebSocket client, or `None` if the handshake does not finish within `timeout`.
fn connect(addr: SocketAddr, name: &str, timeout: Duration) -> Option<WebSocket<TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let url = format!("ws://{addr}/ws/?name={name}");
    tungstenite::client(url, stream).ok().map(|(ws, _)| ws)
}

/// Sends `text` and waits (bounded) for its echo.
fn echoes(ws: &mut WebSocket<TcpStream>, text: &str) -> bool {
    if ws.get_ref().set_read_timeout(Some(PATIENCE)).is_err()
        || ws.send(Message::text(text)).is_err()
    {
        return false;
    }
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == text => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn survives_running_out_of_descriptors(runtime: &str) {
    let server = start(runtime);
    let mut clients = Vec::new();
    // Fill the server's descriptor table, until a handshake goes unanswered.
    while let Some(ws) = connect(server.addr, &format!("c{}", clients.len()), REFUSED_AFTER) {
        clients.push(ws);
        assert!(
            clients.len() < LIMIT,
            "{runtime}: more clients than the server has descriptors"
        );
    }
    assert!(
        clients.len() >= 4,
        "{runtime}: only {} clients before the limit",
        clients.len()
    );
    eprintln!("{runtime}: {} clients before the limit", clients.len());
    // Those it has are still served.
    assert!(
        echoes(&mut clients[0], "still here"),
        "{runtime}: a client lost its echo while the server was out of descriptors"
    );
    // Some leave; then the server accepts again.
    for mut ws in clients.drain(1..5) {
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    let mut fresh = connect(server.addr, "fresh", PATIENCE)
        .unwrap_or_else(|| panic!("{runtime}: no new client accepted after others left"));
    assert!(echoes(&mut fresh, "hello again"), "{runtime}: no echo");
    assert!(
        echoes(&mut clients[0], "and still here"),
        "{runtime}: no echo"
    );
}

#[test]
fn blocking_server_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("blocking");
}

#[test]
fn smol_server_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("smol");
}

#[test]
fn tokio_server_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("tokio");
}

#[test]
fn async_std_server_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("async-std");
}
