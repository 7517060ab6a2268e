//! Interop of the `server` example with peers nobody here wrote: the seeds' own
//! JavaScript clients (`interop/browser/`) and the example's own page in headless
//! Chromium, and a Python `websockets` client with its own ping interval
//! (`interop/python/`).
//!
//! Peers: `apt-get install -y chromium` and `pip install websockets` (`$CHROMIUM`
//! names another Chromium binary). A test whose peer is missing fails when the
//! environment variable `CI` is set, and prints a "skipped" line otherwise.
//!
//! What is observed: the server's JSON event lines on stdout, and for the pages
//! their own reports ("open", "beat", "close"), which they send to the static file
//! server the test runs. Every wait is bounded; nothing asserts on durations.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for something that should take well under a second.
const WAIT: Duration = Duration::from_secs(10);
/// The server pings a client quiet for this long. Shorter than every peer's own
/// heartbeat interval, so that server pings happen between the peer's heartbeats.
const PING_INTERVAL_MS: &str = "100";
/// Generous: only a client that stopped answering pings for this long is evicted.
const IDLE_TIMEOUT_MS: &str = "5000";
/// Page heartbeats that must be answered on one connection before the restart.
const BEATS: usize = 3;

/// One Chromium at a time: the machine is small, and browser start-up under load
/// is the slowest step of these tests.
static BROWSER: Mutex<()> = Mutex::new(());

/// The command that starts the server under test on `listen`.
fn server_command(runtime: &str, listen: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.args(["--listen", listen, "--path", "/ws/", "--runtime", runtime])
        .args(["--ping-interval-ms", PING_INTERVAL_MS])
        .args(["--idle-timeout-ms", IDLE_TIMEOUT_MS]);
    cmd
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Reports a missing external peer: a failure in CI, a skip line elsewhere.
fn peer_missing(peer: &str, install: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{peer} is missing and CI is set: install it with `{install}`");
    }
    eprintln!("skipped: {peer} is missing; install it with `{install}`");
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` from Debian.
fn chromium() -> Option<String> {
    let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    runs(&program, &["--version"]).then_some(program)
}

/// Parses one flat JSON object line (`{"event":"connected","name":"x","t_ms":3}`)
/// into its fields; string values are unescaped, other values kept as written.
fn parse_json_line(line: &str) -> Option<HashMap<String, String>> {
    fn string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
        let mut out = String::new();
        loop {
            match chars.next()? {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
    }
    let mut chars = line.trim().chars().peekable();
    let mut fields = HashMap::new();
    if chars.next()? != '{' {
        return None;
    }
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next()? {
            '}' => return Some(fields),
            '"' => {}
            _ => return None,
        }
        let key = string(&mut chars)?;
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ':') {
            chars.next();
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            string(&mut chars)?
        } else {
            let mut raw = String::new();
            while chars.peek().is_some_and(|c| *c != ',' && *c != '}') {
                raw.extend(chars.next());
            }
            raw.trim().to_owned()
        };
        fields.insert(key, value);
    }
}

type ServerEvent = HashMap<String, String>;

/// Whether `e` is an `event` line, about client `name` if one is given.
fn is(e: &ServerEvent, event: &str, name: Option<&str>) -> bool {
    e.get("event").is_some_and(|ev| ev == event)
        && name.is_none_or(|name| e.get("name").is_some_and(|n| n == name))
}

/// A running server process and the events it printed.
struct ServerProcess {
    child: Child,
    events: Receiver<ServerEvent>,
    seen: Vec<ServerEvent>,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts the server and waits for its `listening` line.
    fn start(runtime: &str, listen: &str) -> ServerProcess {
        Self::start_with(runtime, listen, &[])
    }

    /// Starts the server with `extra` arguments.
    fn start_with(runtime: &str, listen: &str, extra: &[&str]) -> ServerProcess {
        let mut cmd = server_command(runtime, listen);
        cmd.args(extra);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {cmd:?}: {err}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, events) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match parse_json_line(&line) {
                    Some(event) => {
                        if tx.send(event).is_err() {
                            break;
                        }
                    }
                    None => eprintln!("server printed a non-JSON line: {line}"),
                }
            }
        });
        let mut server = ServerProcess {
            child,
            events,
            seen: Vec::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let listening = server.wait_for("listening", |e| is(e, "listening", None));
        server.addr = listening
            .get("addr")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("`listening` without a socket address: {listening:?}"));
        server
    }

    /// Waits (bounded) for the next event matching `pred`; panics with the log otherwise.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} from the server within {WAIT:?}; events: {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server exited before {what}; events: {:?}", self.seen)
                }
            }
        }
    }

    /// Events printed so far about client `name` other than `connected`.
    fn losses_of(&mut self, name: &str) -> Vec<ServerEvent> {
        self.seen.extend(self.events.try_iter());
        self.seen
            .iter()
            .filter(|e| e.get("name").is_some_and(|n| n == name) && !is(e, "connected", None))
            .cloned()
            .collect()
    }

    /// Kills the process abruptly: its sockets are closed by the kernel, no close frames.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One state change a page reported.
#[derive(Debug, Clone)]
struct PageReport {
    event: String,
    /// How many times the page's WebSocket had opened when it reported.
    open: u32,
}

/// A static file server for `interop/browser/` that also collects the pages' reports.
struct PageServer {
    addr: SocketAddr,
    reports: Receiver<PageReport>,
    seen: Vec<PageReport>,
    stop: Arc<AtomicBool>,
}

impl PageServer {
    fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let addr = listener.local_addr().expect("page server address");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, reports) = mpsc::channel();
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let tx = tx.clone();
                    thread::spawn(move || serve_page_request(stream, &tx));
                }
            }
        });
        PageServer {
            addr,
            reports,
            seen: Vec::new(),
            stop,
        }
    }

    /// Waits (bounded) until `count` reports match `pred`, returning them.
    fn wait_for(&mut self, what: &str, count: usize, pred: impl Fn(&PageReport) -> bool) {
        let deadline = Instant::now() + WAIT;
        while self.seen.iter().filter(|r| pred(r)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(report) => self.seen.push(report),
                Err(_) => panic!(
                    "the page did not report {what} within {WAIT:?}; reports: {:?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_page_request(mut stream: TcpStream, reports: &Sender<PageReport>) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, content_type, body) = if path == "/report" {
        let params: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let _ = reports.send(PageReport {
            event: params.get("event").copied().unwrap_or("").to_owned(),
            open: params.get("open").and_then(|n| n.parse().ok()).unwrap_or(0),
        });
        ("204 No Content", "text/plain", Vec::new())
    } else {
        let name = path.trim_start_matches('/');
        let allowed = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            && !name.contains("..");
        let file = interop_dir().join("browser").join(name);
        match std::fs::read(&file) {
            Ok(body) if allowed => {
                let kind = if name.ends_with(".js") {
                    "text/javascript"
                } else {
                    "text/html"
                };
                ("200 OK", kind, body)
            }
            _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// A headless Chromium showing one page, with a fresh profile.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    fn open(program: &str, url: &str) -> Browser {
        static PROFILES: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "heartline-interop-chromium-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        Browser { child, profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Runs seed page `page` against the server on `runtime`: it connects, keeps its
/// connection across several heartbeats, and comes back after the server process
/// is killed and restarted on the same port.
fn seed_page_survives_heartbeats_and_restart(page: &str, runtime: &str) {
    let _one_browser = BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(chromium) = chromium() else {
        return peer_missing("chromium", "apt-get install -y chromium");
    };
    let mut pages = PageServer::start();
    // The seed pages come from another origin (the page server): let them in.
    let pages_origin = format!("http://{}", pages.addr);
    let allow = ["--allow-origin", pages_origin.as_str()];
    let mut server = ServerProcess::start_with(runtime, "127.0.0.1:0", &allow);
    let port = server.addr.port();
    let url = format!("http://{}/{page}.html?port={port}&name={page}", pages.addr);
    let _browser = Browser::open(&chromium, &url);

    server.wait_for(&format!("`connected` for {page}"), |e| {
        is(e, "connected", Some(page))
    });
    pages.wait_for("heartbeat answers", BEATS, |r| r.event == "beat");
    let first_connection_only = pages.seen.iter().all(|r| r.open == 1 && r.event != "close");
    assert!(
        first_connection_only,
        "{page} lost its first connection during heartbeats: {:?}",
        pages.seen
    );
    assert_eq!(
        server.losses_of(page),
        Vec::<ServerEvent>::new(),
        "{page} was dropped"
    );

    server.kill();
    pages.wait_for("the lost connection", 1, |r| r.event == "close");
    let mut server = ServerProcess::start_with(runtime, &format!("127.0.0.1:{port}"), &allow);
    server.wait_for(&format!("`connected` for {page} after the restart"), |e| {
        is(e, "connected", Some(page))
    });
    pages.wait_for("a heartbeat answer after the restart", 1, |r| {
        r.event == "beat" && r.open >= 2
    });
}

#[test]
fn seed000_socket_class_on_smol() {
    seed_page_survives_heartbeats_and_restart("seed000", "smol");
}

#[test]
fn seed001_ping_pong_client_on_async_std() {
    seed_page_survives_heartbeats_and_restart("seed001", "async-std");
}

#[test]
fn seed000_socket_class_on_tokio() {
    seed_page_survives_heartbeats_and_restart("seed000", "tokio");
}

#[test]
fn seed003_heart_check_on_blocking() {
    seed_page_survives_heartbeats_and_restart("seed003", "blocking");
}

/// The `server` example's own page (seed 002's, served at `GET /` by the event-loop
/// server): it connects under its name, and its reconnect brings it back after the
/// server process is killed and restarted on the same port.
#[test]
fn the_servers_own_page_connects_and_comes_back_after_a_restart() {
    let _one_browser = BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(chromium) = chromium() else {
        return peer_missing("chromium", "apt-get install -y chromium");
    };
    let mut server = ServerProcess::start("blocking", "127.0.0.1:0");
    let addr = server.addr;
    let url = format!(
        "http://{addr}/?name=own&autoconnect=1&heartbeat_ms=200&timeout_ms=2000&reconnect_ms=200"
    );
    let _browser = Browser::open(&chromium, &url);
    server.wait_for("`connected` for the page", |e| {
        is(e, "connected", Some("own"))
    });
    server.kill();
    let mut server = ServerProcess::start("blocking", &addr.to_string());
    server.wait_for("`connected` for the page after the restart", |e| {
        is(e, "connected", Some("own"))
    });
}

/// Python `websockets` with its own keepalive pings stays connected across several
/// of its pings and the server's, then leaves with a normal close (1000).
fn python_client_stays_connected(runtime: &str) {
    if !runs("python3", &["-c", "import websockets"]) {
        return peer_missing("python3 with websockets", "pip install websockets");
    }
    let mut server = ServerProcess::start(runtime, "127.0.0.1:0");
    let name = format!("python-{runtime}");
    let url = format!("ws://{}/ws/?name={name}", server.addr);
    let output = Command::new("python3")
        .arg(interop_dir().join("python/ping_client.py"))
        .arg(&url)
        .args(["--ping-interval", "0.3", "--pings", "3", "--deadline", "20"])
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ping_client.py failed ({}): {stdout}{}; server events: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        server.seen
    );
    let done = stdout
        .lines()
        .find_map(parse_json_line)
        .expect("a JSON summary line");
    let count = |key: &str| {
        done.get(key)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    };
    assert!(count("own_pings_answered") >= 3, "{done:?}");
    assert!(count("server_pings") >= 3, "{done:?}");

    server.wait_for(&format!("`connected` for {name}"), |e| {
        is(e, "connected", Some(&name))
    });
    let gone = server.wait_for(&format!("`disconnected` for {name}"), |e| {
        e.get("name") == Some(&name) && !is(e, "connected", None)
    });
    assert_eq!(
        gone.get("event").map(String::as_str),
        Some("disconnected"),
        "{name} did not leave by itself: {gone:?}"
    );
    assert_eq!(
        gone.get("code").map(String::as_str),
        Some("1000"),
        "{gone:?}"
    );
}

#[test]
fn python_websockets_client_on_smol() {
    python_client_stays_connected("smol");
}

#[test]
fn python_websockets_client_on_tokio() {
    python_client_stays_connected("tokio");
}

#[test]
fn python_websockets_client_on_async_std() {
    python_client_stays_connected("async-std");
}

#[test]
fn python_websockets_client_on_blocking() {
    python_client_stays_connected("blocking");
}

#[test]
fn json_lines_are_parsed() {
    let event =
        parse_json_line(r#"{"event":"evicted", "t_ms": 12, "name":"a\"b\u00e9","reason":"idle"}"#)
            .expect("a JSON object");
    assert_eq!(event["event"], "evicted");
    assert_eq!(event["t_ms"], "12");
    assert_eq!(event["name"], "a\"bé");
    assert_eq!(event["reason"], "idle");
    assert_eq!(parse_json_line("listening on 127.0.0.1:80"), None);
}
