//! The README's first command, `cargo run -p heartline-examples --bin demo`, tells its
//! whole story and succeeds on its own.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_tells_the_whole_story_and_succeeds() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    // The demo ends by itself in seconds; this bound only keeps a broken one from
    // hanging the test run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not end by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("reader thread");
    assert!(status.success(), "demo failed ({status}):\n{out}");
    for line in [
        "open (connection #1)",
        "heartbeat answered",
        "by transport",
        "reconnect attempt 3 in",
        "all queued messages delivered, in order, once",
        "heartbeat missed",
        "done: every step behaved as described",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    // Every line is on the timeline.
    assert!(out.lines().all(|l| l.starts_with('[')), "{out}");
}
