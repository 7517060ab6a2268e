//! heartline's `tracing` events in the examples: on stderr with `RUST_LOG`, nothing
//! without it, and stdout keeps only its JSON lines either way.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use heartline_examples::echo::EchoServer;

/// Runs `client URL` with `RUST_LOG` set to `filter` (or unset) until it is open, then
/// ends its stdin, so it closes and exits: (stdout, stderr).
fn client_once(url: &str, filter: Option<&str>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    if let Some(filter) = filter {
        command.env("RUST_LOG", filter);
    }
    let mut child = command.spawn().expect("run the client example");
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    let mut line = String::new();
    // Bounded: the client's own timeouts end it if nothing opens.
    while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
        out.push_str(&line);
        let open = line.contains(r#""event":"open""#);
        line.clear();
        if open {
            break;
        }
    }
    drop(stdin);
    let rest = child.wait_with_output().expect("the client ends");
    assert!(rest.status.success(), "{rest:?}");
    out.push_str(&String::from_utf8_lossy(&rest.stdout));
    (out, String::from_utf8_lossy(&rest.stderr).into_owned())
}

#[test]
fn rust_log_sends_the_clients_events_to_stderr_and_leaves_stdout_json() {
    let server = EchoServer::start("127.0.0.1:0".parse().expect("address")).expect("bind");
    let url = format!("ws://{}/", server.addr());

    let (stdout, stderr) = client_once(&url, Some("heartline=info"));
    for line in stdout.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line:?}"
        );
    }
    assert!(stdout.contains(r#""event":"open""#), "{stdout}");
    for event in ["connecting", "open", "closed"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("heartline::client") && l.contains(event)),
            "no {event} event on stderr: {stderr}"
        );
    }

    let (_, quiet) = client_once(&url, None);
    assert!(!quiet.contains("heartline::client"), "{quiet}");
}
