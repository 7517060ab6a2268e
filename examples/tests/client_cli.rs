//! The `client` example as a user runs it: argument errors, and stdin lines queued
//! while the server is down, delivered in order once it is up, on every runtime.

mod common;

use std::net::SocketAddr;

use common::{run_client, ClientProc};
use heartline_examples::echo::EchoServer;

#[test]
fn argument_errors_exit_with_status_2_and_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "<URL>"),
        (&["http://127.0.0.1:1/"], "ws://"),
        (&["ws://127.0.0.1:1/", "--runtime", "glommio"], "--runtime"),
        (
            &["ws://127.0.0.1:1/", "--ping-interval-ms", "soon"],
            "whole number",
        ),
        (
            &["ws://127.0.0.1:1/", "--pong-timeout-ms", "0"],
            "greater than 0",
        ),
        (
            &["ws://127.0.0.1:1/", "--reconnect", "linear:5"],
            "--reconnect",
        ),
        (&["ws://127.0.0.1:1/", "--app-ping", "ping"], "--app-pong"),
        (
            &["ws://127.0.0.1:1/", "--header", "no colon"],
            "Name: value",
        ),
        (
            &["ws://127.0.0.1:1/", "--max-attempts"],
            "a value is required",
        ),
        (&["ws://127.0.0.1:1/", "--bogus"], "unexpected argument"),
        (
            &["ws://127.0.0.1:1/", "--ping-interval", "5"],
            "5s or 250ms",
        ),
    ];
    for (args, want) in cases {
        let (status, stdout, stderr) = run_client(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: stderr lacks {want:?}: {stderr}"
        );
        assert!(
            stderr.contains("--help"),
            "{args:?}: points to --help: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: printed {stdout:?}");
    }
}

#[test]
fn non_utf8_arguments_are_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStringExt;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("ws://127.0.0.1:1/")
        .arg("--header")
        .arg(std::ffi::OsString::from_vec(b"X-Bad: \xff".to_vec()))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the client example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("UTF-8"), "{stderr}");
}

#[test]
fn help_prints_usage_and_succeeds() {
    let (status, stdout, _) = run_client(&["--help"]);
    assert!(status.success());
    assert!(stdout.contains("Usage: client"), "{stdout}");
}

/// A free address on 127.0.0.1 where nothing listens (yet).
fn vacant_addr() -> SocketAddr {
    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    let addr = server.addr();
    server.kill();
    addr
}

fn queued_lines_arrive_in_order_once_the_server_is_up(runtime: &str) {
    let addr = vacant_addr();
    let url = format!("ws://{addr}/");
    let mut client = ClientProc::spawn(
        &url,
        &[
            "--runtime",
            runtime,
            "--reconnect",
            "fixed:50",
            "--ping-interval-ms",
            "200",
            "--pong-timeout-ms",
            "2000",
        ],
    );
    client.wait_event("connect_failed");
    client.wait_event("reconnect_scheduled");
    let lines = ["one", "two \"quoted\"", "three\ttabbed", "четыре"];
    for line in lines {
        client.send_line(line);
    }
    // One more failed attempt, so the lines are read while the server is still down.
    client.wait_event("connect_failed");
    let server = EchoServer::start(addr).expect("bind the same address again");
    client.wait_event("open");
    for line in lines {
        client.wait_text(line);
    }
    client.close_stdin();
    let status = client.wait_exit();
    assert!(status.success(), "exit status {status}");
    let texts: Vec<_> = client
        .seen_named("message")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts, lines, "each line delivered once, in order");
    let closed = client.seen_named("closed");
    assert_eq!(closed.len(), 1, "{:?}", client.seen);
    assert_eq!(closed[0]["by"], "local");
    assert_eq!(closed[0]["code"], 1000);
    assert!(client.seen_named("gave_up").is_empty());
    server.kill();
}

#[test]
fn smol_queues_while_down() {
    queued_lines_arrive_in_order_once_the_server_is_up("smol");
}

#[test]
fn tokio_queues_while_down() {
    queued_lines_arrive_in_order_once_the_server_is_up("tokio");
}

#[test]
fn async_std_queues_while_down() {
    queued_lines_arrive_in_order_once_the_server_is_up("async-std");
}

#[test]
fn blocking_queues_while_down() {
    queued_lines_arrive_in_order_once_the_server_is_up("blocking");
}

#[test]
fn gives_up_after_max_attempts_and_exits_non_zero() {
    let addr = vacant_addr();
    let mut client = ClientProc::spawn(
        &format!("ws://{addr}/"),
        &["--reconnect", "fixed:20", "--max-attempts", "2"],
    );
    let gave_up = client.wait_event("gave_up");
    assert_eq!(gave_up["attempts"], 2, "{gave_up}");
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(1), "{:?}", client.seen);
    assert_eq!(client.seen_named("connect_failed").len(), 3);
}

#[test]
fn sends_headers_and_gives_up_on_401() {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        String::from_utf8_lossy(&request).into_owned()
    });
    let mut client = ClientProc::spawn(
        &format!("ws://{addr}/private"),
        &[
            "--runtime",
            "blocking",
            "--header",
            "Authorization: Bearer token:1",
            "--header",
            "X-Client: heartline",
        ],
    );
    let failed = client.wait_event("connect_failed");
    assert_eq!(failed["status"], 401, "{failed}");
    let gave_up = client.wait_event("gave_up");
    assert_eq!(gave_up["status"], 401, "{gave_up}");
    assert!(
        gave_up["reason"].as_str().unwrap_or("").contains("401"),
        "{gave_up}"
    );
    assert_eq!(client.wait_exit().code(), Some(1));
    let request = server.join().expect("server thread").to_ascii_lowercase();
    assert!(request.starts_with("get /private "), "{request}");
    assert!(
        request.contains("\r\nauthorization: bearer token:1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\nx-client: heartline\r\n"), "{request}");
}

fn reports_a_frozen_server(runtime: &str) {
    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    let mut client = ClientProc::spawn(
        &format!("ws://{}/", server.addr()),
        &[
            "--runtime",
            runtime,
            "--ping-interval-ms",
            "50",
            "--pong-timeout-ms",
            "300",
            "--reconnect",
            "fixed:50",
        ],
    );
    client.wait_event("open");
    client.wait_event("rtt");
    server.freeze();
    client.wait_event("heartbeat_missed");
    let closed = client.wait_event("closed");
    assert_eq!(closed["by"], "local", "{closed}");
    assert_eq!(closed["code"], 1006, "{closed}");
    client.wait_event("reconnect_scheduled");
    client.close_stdin();
    assert!(client.wait_exit().success(), "{:?}", client.seen);
    server.kill();
}

#[test]
fn smol_reports_a_frozen_server() {
    reports_a_frozen_server("smol");
}

#[test]
fn tokio_reports_a_frozen_server() {
    reports_a_frozen_server("tokio");
}

#[test]
fn async_std_reports_a_frozen_server() {
    reports_a_frozen_server("async-std");
}

#[test]
fn blocking_reports_a_frozen_server() {
    reports_a_frozen_server("blocking");
}

#[test]
fn piped_input_is_delivered_before_the_close_on_every_runtime() {
    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    for runtime in ["smol", "tokio", "async-std", "blocking"] {
        // Like `printf 'one\ntwo\n' | client URL`: input ends before the connection opens.
        let mut client =
            ClientProc::spawn(&format!("ws://{}/", server.addr()), &["--runtime", runtime]);
        client.send_line("one");
        client.send_line("two");
        client.close_stdin();
        let status = client.wait_exit();
        assert!(status.success(), "{runtime}: {status}: {:?}", client.seen);
        let texts: Vec<_> = client
            .seen_named("message")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(texts, ["one", "two"], "{runtime}: {:?}", client.seen);
        assert!(client.seen_named("dropped").is_empty(), "{runtime}");
        let closed = client.seen_named("closed");
        assert_eq!(closed.len(), 1, "{runtime}: {:?}", client.seen);
        assert_eq!(closed[0]["by"], "local", "{runtime}");
    }
    server.kill();
}

#[test]
fn binary_sends_stdin_lines_as_binary_messages_and_text_is_the_default() {
    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    let url = format!("ws://{}/", server.addr());
    let mut binary = ClientProc::spawn(&url, &["--binary"]);
    binary.wait_event("open");
    binary.send_line("hello");
    // The echo server sends back what it got: five bytes, as binary.
    let echoed = binary.wait_event("message");
    assert_eq!(echoed["binary_len"], 5, "{echoed}");
    binary.close_stdin();
    assert!(binary.wait_exit().success(), "{:?}", binary.seen);

    let mut text = ClientProc::spawn(&url, &["--text"]);
    text.wait_event("open");
    text.send_line("hello");
    text.wait_text("hello");
    text.close_stdin();
    assert!(text.wait_exit().success(), "{:?}", text.seen);
    let (status, _, stderr) = run_client(&[&url, "--text", "--binary"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    server.kill();
}

#[test]
fn print_rtt_writes_each_round_trip_on_stderr() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args([&format!("ws://{}/", server.addr()), "--echo", "--print-rtt"])
        .args(["--ping-interval", "50ms", "--ping-timeout", "5s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client example");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Bounded: the first three lines that look like round trips, or the patience.
    let deadline = std::time::Instant::now() + common::PATIENCE;
    let mut rtts = Vec::new();
    while rtts.len() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        if let Some(ms) = line
            .strip_prefix("RTT ")
            .and_then(|l| l.strip_suffix(" ms"))
        {
            rtts.push(ms.parse::<f64>().expect("a number of milliseconds"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    server.kill();
    assert_eq!(rtts.len(), 3, "round trips printed: {rtts:?}");
    assert!(rtts.iter().all(|ms| *ms >= 0.0 && *ms < 5000.0), "{rtts:?}");
}
