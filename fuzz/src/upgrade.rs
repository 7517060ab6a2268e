//! The server's answer to arbitrary request bytes, through the path every runtime's
//! server takes: the request head parser, then the hub's upgrade decision (the core's
//! rules, then the WebSocket handshake), with arbitrary rules.
//!
//! Checked: a head is complete, partial (and under the size limit) or refused with
//! 400/431; every answer is a well-formed HTTP/1.1 response whose Content-Length is its
//! body's; 101 exactly when the hub opens the connection, and then the request was an
//! upgrade on an allowed path from an allowed origin, with a name that fits the rules,
//! and the connection registers under it; every refusal is a 4xx or 5xx.

use std::time::Instant;

use arbitrary::Arbitrary;
use heartline_core::{OriginRule, PathRule, UpgradeRequest};
use heartline_tungstenite::hub::{Answer, Channels, Hub, Out, Outbox, ServerConfig, Then};
use heartline_tungstenite::wire::{self, Head, MAX_REQUEST_HEAD};

use crate::support::NoReply;

/// The rules, and the request.
#[derive(Debug, Arbitrary)]
pub struct Input {
    rules: Rules,
    request: Request,
}

#[derive(Debug, Arbitrary)]
struct Rules {
    path: u8,
    path_text: String,
    name: u8,
    key: String,
    name_required: bool,
    max_name_len: u8,
    any_origin: bool,
    allow: Vec<String>,
    shutting_down: bool,
}

#[derive(Debug, Arbitrary)]
enum Request {
    /// Whatever bytes.
    Raw(Vec<u8>),
    /// A request shaped like a browser's, with arbitrary parts.
    Built(Built),
}

#[derive(Debug, Arbitrary)]
struct Built {
    target: String,
    host: Option<String>,
    origin: Option<String>,
    upgrade: bool,
    key: bool,
    version: u8,
    extra: Vec<(String, Vec<u8>)>,
    tail: Vec<u8>,
}

impl Built {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("GET {} HTTP/1.1\r\n", self.target).into_bytes();
        let mut header = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(host) = &self.host {
            header("Host", host.as_bytes());
        }
        if self.upgrade {
            header("Upgrade", b"websocket");
            header("Connection", b"Upgrade");
        }
        if self.key {
            header("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==");
        }
        let version = if self.version < 200 {
            "13".to_owned()
        } else {
            self.version.to_string()
        };
        header("Sec-WebSocket-Version", version.as_bytes());
        if let Some(origin) = &self.origin {
            header("Origin", origin.as_bytes());
        }
        for (name, value) in &self.extra {
            header(name, value);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.tail);
        out
    }
}

struct Nowhere;

impl Outbox for Nowhere {
    fn push(&self, _: Out) {}
}

struct Plain;

impl Channels for Plain {
    type Outbox = Nowhere;
    type Reply<T> = NoReply;
}

impl Rules {
    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
        let up = &mut config.core.upgrade;
        let path = format!("/{}", self.path_text);
        up.path = match self.path % 3 {
            0 => PathRule::Any,
            1 => PathRule::Exact(path),
            _ => PathRule::Prefix(path),
        };
        up.name = match self.name % 3 {
            0 => heartline_core::NameSource::None,
            1 => heartline_core::NameSource::LastSegment,
            _ if self.key.is_empty() => heartline_core::NameSource::Query("name".into()),
            _ => heartline_core::NameSource::Query(self.key.clone()),
        };
        up.name_required = self.name_required && !self.name.is_multiple_of(3);
        up.max_name_len = 1 + usize::from(self.max_name_len);
        up.origin = if self.any_origin {
            OriginRule::Any
        } else {
            OriginRule::SameHost {
                allow: self.allow.clone(),
            }
        };
        config
    }
}

/// Runs one input.
pub fn run(input: Input) {
    let config = input.rules.config();
    let now = Instant::now();
    let mut hub = Hub::<Plain>::new(&config, now).expect("the folded rules are valid");
    if input.rules.shutting_down {
        hub.shutdown(now);
    }
    let bytes = match &input.request {
        Request::Raw(bytes) => bytes.clone(),
        Request::Built(built) => built.bytes(),
    };
    let (request, used) = match wire::parse_head(&bytes) {
        Head::Partial => {
            assert!(
                bytes.len() < MAX_REQUEST_HEAD,
                "a partial head past the limit"
            );
            return;
        }
        Head::Invalid(status) => {
            assert!(matches!(status, 400 | 431), "head refused with {status}");
            well_formed(&Answer::bad_head(status).bytes);
            return;
        }
        Head::Complete(request, used) => (request, used),
    };
    assert!(used <= bytes.len());
    let conn = hub.incoming(now, Nowhere).ok();
    let answer = hub.answer(now, &request);
    let status = well_formed(&answer.bytes);
    match &answer.then {
        Then::Close => assert!((400..600).contains(&status), "refused with {status}"),
        Then::Open(name) => {
            assert_eq!(status, 101, "opened with {status}");
            assert!(!input.rules.shutting_down, "upgraded while shutting down");
            assert!(
                wire::is_upgrade(&request),
                "101 to a request that is no upgrade"
            );
            opened(&config, &request, name.as_deref());
            if let Some(conn) = conn {
                hub.open(now, conn, name.clone())
                    .expect("an accepted upgrade opens");
                if let Some(name) = name.as_deref().filter(|n| !n.is_empty()) {
                    let found = hub.lookup(name).map(|c| c.conn);
                    assert_eq!(found, Some(conn), "{name} not registered");
                }
            }
        }
    }
}

/// What an accepted request must satisfy.
fn opened(config: &ServerConfig, request: &wire::Request, name: Option<&str>) {
    let rules = &config.core.upgrade;
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let req = UpgradeRequest::new(target, &[]);
    assert!(rules.path.matches(req.path()), "{target} served");
    match name {
        Some(n) => {
            assert!(!n.is_empty() && n.len() <= rules.max_name_len, "name {n:?}");
            assert!(!n.chars().any(char::is_control), "name {n:?} has controls");
        }
        None => assert!(!rules.name_required, "nameless client accepted"),
    }
    if let OriginRule::SameHost { allow } = &rules.origin {
        let header = |n: &str| request.headers().get(n).map(|v| v.as_bytes());
        if let Some(origin) = header("origin") {
            let origin = std::str::from_utf8(origin)
                .expect("an allowed origin is text")
                .trim();
            let host = header("host").and_then(|h| std::str::from_utf8(h).ok());
            let listed = allow
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
            let same = origin
                .split_once("://")
                .zip(host)
                .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host.trim()));
            assert!(listed || same, "origin {origin:?} allowed");
        }
    }
}

/// Checks that `bytes` is one HTTP/1.1 response whose body is as long as it says;
/// returns its status.
fn well_formed(bytes: &[u8]) -> u16 {
    let text = std::str::from_utf8(bytes).expect("a response is text");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head ends");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .expect("a status line");
    for line in lines {
        let (name, value) = line.split_once(": ").expect("a header line");
        assert!(!name.is_empty() && !value.contains(['\r', '\n']));
        if name.eq_ignore_ascii_case("content-length") {
            assert_eq!(
                value.parse::<usize>().ok(),
                Some(body.len()),
                "Content-Length"
            );
        }
    }
    status
}
