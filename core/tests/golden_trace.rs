//! A fixed seed and a fixed script give exactly the recorded trace, forever.
//!
//! After an intended change of behaviour, regenerate the file with
//! `HEARTLINE_BLESS=1 cargo test -p heartline-core --test golden_trace` and review the diff.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{ms, Harness};
use heartline_core::{Action, Backoff, ClientConfig, ConnectError, Event, Frame, Jitter, Message};

const GOLDEN: &str = "tests/golden/client_trace.txt";

fn script() -> String {
    let mut c = ClientConfig::default();
    c.heartbeat.interval = ms(1000);
    c.heartbeat.timeout = ms(500);
    c.reconnect.backoff = Backoff::exponential(ms(200), ms(3000));
    c.reconnect.jitter = Jitter::Equal;
    c.reconnect.max_attempts = Some(6);
    c.reconnect.stable_after = ms(5000);
    c.connect_timeout = ms(2000);
    c.close_timeout = ms(800);
    let mut h = Harness::new(c);
    let mut trace = String::new();
    let mut record = |h: &mut Harness, trace: &mut String| {
        let t = h.t().as_millis();
        for a in h.actions() {
            let shown = match a {
                // A deadline is an instant: shown as time since the start.
                Action::Connect {
                    conn,
                    attempt,
                    deadline,
                } => format!(
                    "Connect {{ conn: {conn:?}, attempt: {attempt}, deadline: {}ms }}",
                    (deadline - h.start).as_millis()
                ),
                other => format!("{other:?}"),
            };
            writeln!(trace, "{t:>6} action {shown}").unwrap();
        }
        for n in h.notices() {
            writeln!(trace, "{t:>6} notice {n:?}").unwrap();
        }
    };
    let step =
        |h: &mut Harness, trace: &mut String, record: &mut dyn FnMut(&mut Harness, &mut String)| {
            h.fire_next();
            record(h, trace);
        };
    record(&mut h, &mut trace);

    // Connects, exchanges a message, answers two heartbeats.
    h.advance(ms(30));
    h.event(Event::Connected(heartline_core::ConnId(1)));
    h.client.send(h.now, Message::from("hello")).unwrap();
    record(&mut h, &mut trace);
    h.advance(ms(20));
    h.event(Event::Frame(
        heartline_core::ConnId(1),
        Frame::Text("hello"),
    ));
    record(&mut h, &mut trace);
    for _ in 0..2 {
        h.fire_next();
        let ping = h.client.poll_action().expect("a heartbeat is due");
        writeln!(trace, "{:>6} action {ping:?}", h.t().as_millis()).unwrap();
        h.advance(ms(12));
        if let Action::SendPing { conn, payload } = ping {
            h.event(Event::Frame(conn, Frame::Pong(payload.as_bytes())));
        }
        record(&mut h, &mut trace);
    }
    // The server freezes: the next heartbeat goes unanswered.
    step(&mut h, &mut trace, &mut record);
    step(&mut h, &mut trace, &mut record);
    // Four refused attempts, then one that times out, then success.
    for _ in 0..4 {
        step(&mut h, &mut trace, &mut record);
        let conn = h.client.current_conn().unwrap();
        h.advance(ms(3));
        h.event(Event::ConnectFailed(
            conn,
            ConnectError::Io("connection refused"),
        ));
        record(&mut h, &mut trace);
    }
    step(&mut h, &mut trace, &mut record);
    step(&mut h, &mut trace, &mut record);
    step(&mut h, &mut trace, &mut record);
    let conn = h.client.current_conn().unwrap();
    h.advance(ms(40));
    h.event(Event::Connected(conn));
    record(&mut h, &mut trace);
    // The server restarts politely, then the application closes for good.
    h.advance(ms(300));
    h.event(Event::Frame(conn, Frame::Close(Some((1012, "restart")))));
    h.advance(ms(5));
    h.event(Event::Disconnected(conn, None));
    record(&mut h, &mut trace);
    h.advance(Duration::from_millis(50));
    h.client.close(h.now, 1000, "bye").unwrap();
    record(&mut h, &mut trace);
    trace
}

#[test]
fn seeded_script_reproduces_the_recorded_trace() {
    let trace = script();
    assert_eq!(trace, script(), "two runs of the same script differ");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("HEARTLINE_BLESS").is_some() {
        std::fs::write(&path, &trace).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).expect("golden trace file");
    assert!(
        trace == golden,
        "trace differs from {GOLDEN}; run with HEARTLINE_BLESS=1 and review.\n--- got ---\n{trace}"
    );
}
