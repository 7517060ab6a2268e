//! The `embed` example (heartline-core in a loop of its own, no adapter crate) against
//! the `server` example: 100 clients open; the server is killed and started again on
//! the same address; every client comes back exactly once, and the new server's
//! registry holds the 100 names with nothing replaced.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{server, Proc};
use serde_json::Value;

const CLIENTS: usize = 100;
/// How long anything that must happen may take: far beyond what it needs (the
/// reconnects come within the first backoff, about a second).
const PATIENCE: Duration = Duration::from_secs(30);

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
        let event = server.next("connected clients", PATIENCE);
        if event["event"] == "connected" {
            names.insert(event["name"].as_str().unwrap_or_default().to_owned());
        }
        seen.push(event);
    }
    seen
}

#[test]
fn every_client_reopens_once_after_a_server_restart() {
    let (mut first, addr) = server(&["--listen", "127.0.0.1:0", "--runtime", "blocking"]);
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
        let event = embed.next("the first opens", PATIENCE);
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
    let (second, again) = server(&["--listen", &addr, "--runtime", "blocking"]);
    assert_eq!(again, addr);
    let registered = until_all_connected(&second);

    // Every client reopens exactly once.
    while opens.values().any(|&n| n < 2) {
        let event = embed.next("the reopens", PATIENCE);
        if event["event"] == "open" {
            *opens
                .entry(event["client"].as_u64().expect("a client"))
                .or_default() += 1;
        }
        events.push(event);
    }
    embed.stdin = None; // EOF: every client closes and the result line follows.
    let result = loop {
        let event = embed.next("the result", PATIENCE);
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

#[test]
fn a_server_that_sends_bad_utf8_gets_a_1007_close_and_the_client_reconnects() {
    use std::io::Write;
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::Message;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut command = Command::new(env!("CARGO_BIN_EXE_embed"));
    command.args([&format!("ws://{addr}/ws/"), "--clients", "1", "--until-eof"]);
    let _embed = Proc::spawn(command);

    let (stream, _) = listener.accept().expect("the client connects");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut ws = tungstenite::accept(stream).expect("upgrade");
    // A text frame whose payload is not UTF-8, written past tungstenite's checks.
    ws.get_mut()
        .write_all(&[0x81, 0x02, 0xff, 0xfe])
        .expect("write the frame");
    let close = loop {
        match ws.read().expect("the client answers before it goes") {
            Message::Close(close) => break close,
            _ => continue,
        }
    };
    let close = close.expect("a Close frame with a code");
    assert_eq!(close.code, CloseCode::Invalid, "1007: invalid payload");
    // The connection ends there, and the client comes back.
    let (_again, _) = listener.accept().expect("the client reconnects");
}
