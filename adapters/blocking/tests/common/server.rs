//! Helpers for the server tests: raw clients over real sockets on 127.0.0.1 that behave
//! exactly as told (a frozen client never reads), plus plain HTTP requests.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long a test waits for something that should take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A raw WebSocket client on a blocking socket with short read timeouts.
pub type RawClient = WebSocket<TcpStream>;

/// Connects a raw client to `ws://addr{target}` and finishes the handshake.
pub fn connect(addr: SocketAddr, target: &str) -> RawClient {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream
        .set_write_timeout(Some(PATIENCE))
        .expect("write timeout");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let url = format!("ws://{addr}{target}");
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, response) = tungstenite::client::client_with_config(url, stream, Some(config))
        .unwrap_or_else(|e| panic!("upgrade of {target} failed: {e}"));
    assert_eq!(response.status(), 101);
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    ws
}

/// Reads from `client` until a Close frame arrives and returns its code, answering
/// pings on the way. Panics if none arrives within [`PATIENCE`].
pub fn close_code(client: &mut RawClient) -> u16 {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match client.read() {
            Ok(Message::Close(frame)) => {
                // Put tungstenite's Close reply on the wire, finishing the handshake.
                let _ = client.flush();
                return frame.map_or(1005, |f| u16::from(f.code));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("connection ended without a Close frame: {e}"),
        }
    }
    panic!("no Close frame within {PATIENCE:?}");
}

/// Reads from `client` until a text message arrives and returns it.
pub fn next_text(client: &mut RawClient) -> String {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match client.read() {
            Ok(Message::Text(t)) => return t.as_str().to_owned(),
            Ok(Message::Close(frame)) => panic!("closed while waiting for text: {frame:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("connection failed while waiting for text: {e}"),
        }
    }
    panic!("no text message within {PATIENCE:?}");
}

/// Sends `request` (a full request head) and returns the status code and body of the
/// answer, read until the server closes the connection.
pub fn http_exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    stream.write_all(request.as_bytes()).expect("write request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An upgrade request for `target`, as a browser would send it.
pub fn upgrade_request(target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// A server configuration for tests: `/ws/?name=` as by default, with the given ping
/// interval and idle timeout in milliseconds.
pub fn core_config(ping_ms: u64, idle_ms: u64) -> heartline_core::ServerConfig {
    let mut built = heartline_core::ServerConfig::default();
    built.ping_interval = Duration::from_millis(ping_ms);
    built.idle_timeout = Duration::from_millis(idle_ms);
    built.handshake_timeout = Duration::from_millis(500);
    built.close_timeout = Duration::from_millis(500);
    // A write stuck on a peer that does not read ends the connection this soon.
    built.write_timeout = Duration::from_millis(300);
    built
}

/// A server configuration for tests that must not see pings or evictions.
pub fn quiet() -> heartline_core::ServerConfig {
    core_config(5_000, 30_000)
}

/// Waits for an event that `wanted` accepts, taking events with `next` (which waits
/// at most the given time); earlier events are skipped. Panics after [`PATIENCE`].
pub fn wait_for<E: std::fmt::Debug>(
    mut next: impl FnMut(Duration) -> Option<E>,
    what: &str,
    mut wanted: impl FnMut(&E) -> bool,
) -> E {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("no {what} within {PATIENCE:?}; saw {seen:#?}");
        }
        match next(left) {
            Some(event) if wanted(&event) => return event,
            Some(event) => seen.push(event),
            None => {}
        }
    }
}

/// The frames a server sent, read raw off `stream` until the server closes it, as
/// (opcode, payload). Reading raw means nothing is written back: the client stays
/// frozen to the end, and its kernel never answers with a reset.
pub fn frames_until_eof(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .expect("read until the server closes");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        // Server frames are unmasked; control frames and small test messages have
        // 7-bit lengths.
        let len = usize::from(rest[1] & 0x7f);
        assert!(len < 126, "unexpected large frame from the server");
        let end = (2 + len).min(rest.len());
        frames.push((opcode, rest[2..end].to_vec()));
        rest = &rest[end..];
    }
    frames
}

/// The close code in a Close frame's payload.
pub fn close_payload_code(payload: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]))
}

/// Writes masked, empty Ping frames (valid client frames) on `stream` without ever
/// reading, until a write fails because the server closed its socket; `false` if
/// writes still succeed after [`PATIENCE`]. The server reads nothing from a socket it
/// dropped, so its kernel answers with a reset.
pub fn pings_until_reset(stream: &mut TcpStream) -> bool {
    const PING: [u8; 6] = [0x89, 0x80, 1, 2, 3, 4];
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if stream
            .write_all(&PING)
            .and_then(|()| stream.flush())
            .is_err()
        {
            return true;
        }
        // A pause between probes, so the loop does not spin while the server decides.
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
