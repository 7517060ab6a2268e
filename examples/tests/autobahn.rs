//! Autobahn's conformance cases (run by kosoku, pinned in interop/autobahn/) in both
//! directions on every runtime: kosoku's fuzzingclient against the `server` example,
//! and the `client` example (`--echo --once`) against kosoku's fuzzingserver.
//!
//! Every case must end OK, or be one of the NON-STRICT / INFORMATIONAL cases README
//! lists with the reason; UNIMPLEMENTED is allowed for 12.x and 13.x only
//! (permessage-deflate). `HEARTLINE_AUTOBAHN_CASES=9.*` runs a subset.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const RUNTIMES: [&str; 4] = ["smol", "tokio", "async-std", "blocking"];

/// The largest Autobahn message is 16 MiB (9.1.6 and 9.2.6).
const MAX_MESSAGE: &str = "16777216";

/// Cases that are not OK by design, with the verdict each gets; README's table says why.
const EXPECTED: &[(&str, &str)] = &[
    // A valid message and a violation arrive in one read: the connection is failed
    // at the violation, before the application's echo of the message goes out.
    ("3.2", "NON-STRICT"),
    ("3.3", "NON-STRICT"),
    ("3.4", "NON-STRICT"),
    ("4.1.3", "NON-STRICT"),
    ("4.1.4", "NON-STRICT"),
    ("4.1.5", "NON-STRICT"),
    ("4.2.3", "NON-STRICT"),
    ("4.2.4", "NON-STRICT"),
    ("4.2.5", "NON-STRICT"),
    ("5.15", "NON-STRICT"),
    // Invalid UTF-8 inside one frame is found once the frame is complete, not at the
    // first bad chop (tungstenite validates whole frames).
    ("6.4.3", "NON-STRICT"),
    ("6.4.4", "NON-STRICT"),
    // Left open by the spec: a Close right behind a 256 KiB message is handled before
    // the echo is written; close codes 5000 and 65535.
    ("7.1.6", "INFORMATIONAL"),
    ("7.13.1", "INFORMATIONAL"),
    ("7.13.2", "INFORMATIONAL"),
];

/// kosoku from the venv `.ci/run` makes, or from `PATH`.
fn kosoku() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("interop/autobahn/.venv/bin/kosoku");
    if venv.exists() {
        return Some(venv);
    }
    let found = Command::new("kosoku")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| PathBuf::from("kosoku"))
}

fn selection(command: &mut Command) {
    if let Ok(cases) = std::env::var("HEARTLINE_AUTOBAHN_CASES") {
        for case in cases.split(',').filter(|c| !c.is_empty()) {
            command.args(["-i", case]);
        }
    }
}

fn report_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("autobahn")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Each case's verdict in `dir/index.json`: case id -> (behavior, behaviorClose).
fn verdicts(dir: &Path) -> BTreeMap<String, (String, String)> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let index: Value = serde_json::from_str(&text).expect("index.json is JSON");
    let agents = index.as_object().expect("agents");
    assert_eq!(agents.len(), 1, "one agent per run: {:?}", agents.keys());
    let cases = agents
        .values()
        .next()
        .and_then(Value::as_object)
        .expect("cases");
    cases
        .iter()
        .map(|(id, v)| {
            let field = |f: &str| v[f].as_str().unwrap_or("?").to_owned();
            (id.clone(), (field("behavior"), field("behaviorClose")))
        })
        .collect()
}

/// Fails listing every case whose verdict is neither OK nor expected.
fn check(what: &str, verdicts: &BTreeMap<String, (String, String)>) {
    assert!(!verdicts.is_empty(), "{what}: no case ran");
    let mut wrong = Vec::new();
    for (id, (behavior, close)) in verdicts {
        let deflate = id.starts_with("12.") || id.starts_with("13.");
        let fine = match behavior.as_str() {
            "OK" => true,
            "UNIMPLEMENTED" => deflate,
            other => EXPECTED.contains(&(id.as_str(), other)),
        };
        if !fine {
            wrong.push(format!("{id}: {behavior} (close {close})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let ok = verdicts.values().filter(|(b, _)| b == "OK").count();
    eprintln!("{what}: {} cases, {ok} OK, none FAILED", verdicts.len());
}

#[test]
fn the_server_passes_autobahn_on_every_runtime() {
    let Some(kosoku) = kosoku() else {
        return common::skip_or_fail("kosoku", "interop/autobahn/setup.sh");
    };
    for runtime in RUNTIMES {
        let (_server, addr) = common::server(&[
            "--listen",
            "127.0.0.1:0",
            "--path",
            "/",
            "--anonymous",
            "--runtime",
            runtime,
            "--max-message-bytes",
            MAX_MESSAGE,
        ]);
        let dir = report_dir(&format!("server-{runtime}"));
        let mut command = Command::new(&kosoku);
        command
            .args(["-m", "fuzzingclient", "-p", "4", "-o"])
            .arg(&dir)
            .arg(&addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        selection(&mut command);
        // kosoku exits non-zero whenever a case is not OK (UNIMPLEMENTED included):
        // the verdicts are judged from its report instead.
        command.status().expect("run kosoku");
        check(&format!("server on {runtime}"), &verdicts(&dir));
    }
}

/// kosoku's fuzzingserver on an ephemeral port: the process and its `ws://` address.
fn fuzzingserver(kosoku: &Path, dir: &Path) -> (std::process::Child, String) {
    let mut command = Command::new(kosoku);
    command
        .args(["-m", "fuzzingserver", "-o"])
        .arg(dir)
        .arg("127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    selection(&mut command);
    let mut child = command.spawn().expect("start kosoku");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("kosoku says where it listens");
        if let Some(url) = line.strip_prefix("fuzzingserver listening on ") {
            break url.trim().to_owned();
        }
    };
    // Keep reading, so kosoku never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// `client URL --echo --once ...` to its end; its stdout lines.
fn client(url: &str, runtime: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args([url, "--echo", "--once", "--runtime", runtime])
        .args(["--max-message-bytes", MAX_MESSAGE])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the client example");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn the_client_passes_autobahn_on_every_runtime() {
    let Some(kosoku) = kosoku() else {
        return common::skip_or_fail("kosoku", "interop/autobahn/setup.sh");
    };
    for runtime in RUNTIMES {
        let dir = report_dir(&format!("client-{runtime}"));
        let (mut server, url) = fuzzingserver(&kosoku, &dir);
        let count = client(&format!("{url}/getCaseCount"), runtime)
            .iter()
            .find(|v| v["event"] == "message")
            .and_then(|v| v["text"].as_str()?.parse::<u32>().ok())
            .expect("a case count");
        let agent = format!("heartline-{runtime}");
        for case in 1..=count {
            client(&format!("{url}/runCase?case={case}&agent={agent}"), runtime);
        }
        client(&format!("{url}/updateReports?agent={agent}"), runtime);
        // kosoku writes its report and exits once the reports are asked for.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_wait().expect("kosoku's status").is_none() {
            assert!(Instant::now() < deadline, "kosoku did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
        check(&format!("client on {runtime}"), &verdicts(&dir));
    }
}
