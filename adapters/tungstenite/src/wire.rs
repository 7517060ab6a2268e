//! The IO-free glue between tungstenite and heartline: for servers, buffer sizes, the
//! HTTP request head before an upgrade and plain HTTP answers; for clients and servers
//! alike, the one translation between the core's messages, pings and closes and
//! tungstenite's messages and frames.
//!
//! The blocking and async adapters both use this module, so their servers parse and
//! answer upgrade requests the same way, and every driver translates frames the same
//! way.

use std::borrow::Cow;

use heartline_core::{close_code, Frame, Message as CoreMessage, PingPayload};
use tungstenite::handshake::machine::TryParse;
pub use tungstenite::handshake::server::Request;
use tungstenite::handshake::server::{create_response, write_response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message};

/// Buffer sizes for each server connection.
///
/// tungstenite's own default read buffer is 128 KiB and its frame reader fills the
/// whole buffer with zeros on every read: an idle connection then costs about 139 KB of
/// memory. heartline's defaults keep an idle connection at a few KB; messages larger
/// than the buffers still work, they just take more reads.
///
/// Measured with the `server` example on smol and 4,000 idle connections: about 5 KB of
/// resident memory per connection in all with the 1 KiB default, about 8 KB with a
/// 4 KiB read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffers {
    /// Bytes read from the socket at a time. Default 1 KiB: one read takes a heartbeat
    /// or a typical chat or JSON message, and a server with tens of thousands of mostly
    /// idle clients spends its memory on clients, not on empty buffers. A larger message
    /// takes several reads (the buffer grows for the frame being read); raise it for
    /// servers that mostly move large messages.
    pub read: usize,
    /// Outgoing bytes collected before a write to the socket. Default 0: every message
    /// is written at once (heartline flushes after each message anyway), so no idle
    /// connection holds a write buffer.
    pub write: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            read: 1024,
            write: 0,
        }
    }
}

impl Buffers {
    /// The tungstenite configuration for these buffers and the server's limits.
    ///
    /// Inbound messages and frames are limited to `max_message_size` and
    /// `max_frame_size`. The outgoing
    /// buffer may hold the largest message the core lets through (its backlog bound, or
    /// the largest inbound message echoed back) plus 64 KiB, so sending a large message
    /// never fails for lack of room, while a peer that stops reading cannot make it
    /// grow without limit.
    pub fn websocket_config(&self, core: &heartline_core::ServerConfig) -> WebSocketConfig {
        let read = self.read.max(1);
        let write = self.write;
        let max_message_size = core.max_message_size;
        let max_write = max_message_size
            .max(core.max_backlog_bytes)
            .saturating_add(64 * 1024)
            .max(write.saturating_add(1));
        WebSocketConfig::default()
            .read_buffer_size(read)
            .write_buffer_size(write)
            .max_write_buffer_size(max_write)
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(core.max_frame_size))
    }
}

/// The largest request head (request line and headers) a server reads before it answers
/// 431. Browsers send well under 2 KiB; 8 KiB leaves room for large cookies.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What came of reading a request head so far.
#[derive(Debug)]
pub enum Head {
    /// More bytes are needed.
    Partial,
    /// A complete head: the request, and how many bytes of the buffer it took.
    Complete(Box<Request>, usize),
    /// Not a valid request: answer with this status and close.
    Invalid(u16),
}

/// Parses the request head in `buf` (the bytes read so far).
pub fn parse_head(buf: &[u8]) -> Head {
    match Request::try_parse(buf) {
        Ok(Some((len, request))) => Head::Complete(Box::new(request), len),
        Ok(None) if buf.len() >= MAX_REQUEST_HEAD => Head::Invalid(431),
        Ok(None) => Head::Partial,
        Err(_) => Head::Invalid(400),
    }
}

/// Whether a request asks for a WebSocket upgrade (`Upgrade: websocket`).
pub fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get("upgrade")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.trim().eq_ignore_ascii_case("websocket"))
}

/// A plain HTTP answer, for requests that are not upgrades or are rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: Cow<'static, str>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl HttpResponse {
    /// A `text/plain` answer.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        let body = match body.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        HttpResponse {
            status,
            content_type: Cow::Borrowed("text/plain; charset=utf-8"),
            body,
        }
    }

    /// A `text/html` answer with status 200.
    pub fn html(body: &'static str) -> Self {
        HttpResponse {
            status: 200,
            content_type: Cow::Borrowed("text/html; charset=utf-8"),
            body: Cow::Borrowed(body.as_bytes()),
        }
    }

    /// An `application/json` answer with status 200.
    pub fn json(body: String) -> Self {
        HttpResponse {
            status: 200,
            content_type: Cow::Borrowed("application/json"),
            body: Cow::Owned(body.into_bytes()),
        }
    }

    /// The bytes to write: status line, headers (`Connection: close`) and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = tungstenite::http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The 101 answer to a valid upgrade request, or the 400 answer to an upgrade request
/// that breaks the WebSocket handshake rules (missing key, wrong version...).
pub fn upgrade_response(request: &Request) -> Result<Vec<u8>, HttpResponse> {
    let response = create_response(request)
        .map_err(|e| HttpResponse::text(400, format!("bad WebSocket upgrade: {e}\n")))?;
    let mut out = Vec::with_capacity(160);
    write_response(&mut out, &response)
        .map_err(|e| HttpResponse::text(500, format!("cannot write the upgrade: {e}\n")))?;
    Ok(out)
}

/// The path and query of a request target (`/ws/?name=a` gives `/ws/` and `name=a`).
pub fn path_and_query(request: &Request) -> (&str, &str) {
    let uri = request.uri();
    (uri.path(), uri.query().unwrap_or(""))
}

/// The core's view of a tungstenite message. `Frame` messages (raw frames, which a
/// reader never returns) map to `None`.
#[inline]
pub fn as_frame(message: &Message) -> Option<Frame<'_>> {
    Some(match message {
        Message::Text(t) => Frame::Text(t.as_str()),
        Message::Binary(b) => Frame::Binary(b),
        Message::Ping(p) => Frame::Ping(p),
        Message::Pong(p) => Frame::Pong(p),
        Message::Close(c) => {
            Frame::Close(c.as_ref().map(|c| (u16::from(c.code), c.reason.as_str())))
        }
        Message::Frame(_) => return None,
    })
}

/// Copies a mid-sized data message out of tungstenite's read buffer.
///
/// tungstenite hands out payloads that share its read buffer. While one is held (in a
/// read batch, an event queue, the application's hands), tungstenite cannot reuse the
/// buffer: its next read allocates a new one and zero-fills it. That costs one buffer
/// per buffer's worth of messages, while a copy costs an allocation per message. So a
/// text or binary payload between an eighth and a half of the read buffer (`config`'s)
/// is copied into its own allocation; smaller ones share a buffer with many others, and
/// larger ones fill most of one anyway.
///
/// Measured with the echo bench over 100 connections (ratio to raw async-tungstenite,
/// event handler / event stream): 1 KiB messages 1.00 / 0.80 without the copy, 1.07 /
/// 1.07 with it; 32-byte messages lost 2-3% when copied.
#[inline]
pub fn unshare(message: Message, config: &WebSocketConfig) -> Message {
    let worth = config.read_buffer_size / 8..=config.read_buffer_size / 2;
    match message {
        Message::Binary(b) if worth.contains(&b.len()) => {
            Message::Binary(Bytes::copy_from_slice(&b))
        }
        Message::Text(t) if worth.contains(&t.len()) => Message::Text(t.as_str().into()),
        other => other,
    }
}

/// Turns a core message into a tungstenite message without copying it (`String` and
/// `Vec<u8>` become `Utf8Bytes` and `Bytes`).
#[inline]
pub fn to_message(message: CoreMessage) -> Message {
    match message {
        CoreMessage::Text(t) => Message::text(t),
        CoreMessage::Binary(b) => Message::binary(b),
    }
}

/// Turns an application message that came off the wire into a core message.
/// Control frames map to `None`.
pub fn from_message(message: Message) -> Option<CoreMessage> {
    match message {
        Message::Text(t) => Some(CoreMessage::Text(t.as_str().to_owned())),
        Message::Binary(b) => Some(CoreMessage::Binary(b.into())),
        _ => None,
    }
}

/// The protocol Ping that carries a heartbeat's payload.
pub fn ping(payload: &PingPayload) -> Message {
    Message::Ping(tungstenite::Bytes::copy_from_slice(payload.as_bytes()))
}

/// A Close frame with `code` and `reason`, the reason cut to the 123 bytes a Close
/// frame can carry (at a character boundary).
pub fn close_frame(code: u16, reason: impl Into<String>) -> tungstenite::protocol::CloseFrame {
    let mut reason = reason.into();
    let end = close_code::fit_reason(&reason).len();
    reason.truncate(end);
    tungstenite::protocol::CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }
}

/// What ended a connection, for the core: `None` when the close handshake finished (no
/// error), otherwise the error's text.
pub fn end_reason(error: tungstenite::Error) -> Option<String> {
    match error {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => None,
        e => Some(e.to_string()),
    }
}

/// The close code and reason for a read error the peer caused (RFC 6455 section 7.4.1):
/// 1002 for a protocol violation, 1007 for text that is not UTF-8, 1009 for a message or
/// frame over the limit. `None` for an error of the transport, which ends the connection
/// without a frame.
pub fn violation(error: &tungstenite::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Utf8(_) => Some((close_code::INVALID_PAYLOAD, "invalid UTF-8")),
        tungstenite::Error::Capacity(_) => Some((close_code::TOO_BIG, "message too big")),
        tungstenite::Error::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing,
        ) => None,
        tungstenite::Error::Protocol(_) => Some((close_code::PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}

/// Whether a non-blocking read or write found the socket not ready: the data waits in
/// tungstenite's buffers until the next readiness event.
pub fn would_block(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_sized_payloads_leave_the_read_buffer_and_others_stay() {
        let config = WebSocketConfig::default().read_buffer_size(1024);
        let buffer = Bytes::from(vec![7u8; 4096]);
        let unshared = |range: std::ops::Range<usize>| {
            let payload = buffer.slice(range);
            let Message::Binary(after) = unshare(Message::Binary(payload.clone()), &config) else {
                panic!("still binary");
            };
            assert_eq!(after, payload);
            after.as_ptr() != payload.as_ptr()
        };
        assert!(!unshared(0..127), "under an eighth of the buffer: shared");
        assert!(unshared(0..128), "an eighth: copied");
        assert!(unshared(1000..1512), "half: copied");
        assert!(!unshared(2000..2513), "over half: shared");
        let text = Message::Text("h\u{e9}llo".repeat(40).into());
        assert_eq!(unshare(text.clone(), &config), text);
        let ping = Message::Ping(buffer.slice(0..200));
        assert_eq!(unshare(ping.clone(), &config), ping);
    }

    #[test]
    fn splits_a_complete_head_from_what_follows() {
        let raw = b"GET /ws/?name=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nextra";
        let Head::Complete(request, len) = parse_head(raw) else {
            panic!("expected a complete head");
        };
        assert_eq!(&raw[len..], b"extra");
        assert_eq!(path_and_query(&request), ("/ws/", "name=a"));
        assert!(is_upgrade(&request));
    }

    #[test]
    fn a_partial_head_needs_more_and_an_endless_one_is_refused() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost"),
            Head::Partial
        ));
        let mut endless = b"GET / HTTP/1.1\r\nX: ".to_vec();
        endless.resize(MAX_REQUEST_HEAD, b'a');
        assert!(matches!(parse_head(&endless), Head::Invalid(431)));
        assert!(matches!(
            parse_head(b"\x00\x01 nonsense\r\n\r\n"),
            Head::Invalid(400)
        ));
    }

    #[test]
    fn an_upgrade_without_a_key_gets_400() {
        let raw =
            b"GET /ws/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let Head::Complete(request, _) = parse_head(raw) else {
            panic!("expected a complete head");
        };
        assert_eq!(upgrade_response(&request).unwrap_err().status, 400);
    }

    #[test]
    fn a_response_carries_its_length_and_closes() {
        let bytes = HttpResponse::text(404, "no such path\n").to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nno such path\n"));
    }

    #[test]
    fn messages_pings_and_closes_translate_both_ways() {
        let text = to_message(CoreMessage::Text("héllo".into()));
        assert!(matches!(as_frame(&text), Some(Frame::Text("héllo"))));
        assert_eq!(from_message(text), Some(CoreMessage::Text("héllo".into())));
        let binary = to_message(CoreMessage::Binary(vec![0, 1, 255]));
        assert!(matches!(
            as_frame(&binary),
            Some(Frame::Binary([0, 1, 255]))
        ));
        assert_eq!(
            from_message(binary),
            Some(CoreMessage::Binary(vec![0, 1, 255]))
        );
        let payload = PingPayload::from_seq(7);
        assert!(matches!(
            as_frame(&ping(&payload)),
            Some(Frame::Ping(p)) if p == payload.as_bytes()
        ));
        let close = Message::Close(Some(close_frame(4000, "bye")));
        assert!(matches!(
            as_frame(&close),
            Some(Frame::Close(Some((4000, "bye"))))
        ));
        assert!(matches!(
            as_frame(&Message::Close(None)),
            Some(Frame::Close(None))
        ));
        assert_eq!(from_message(Message::Ping(Vec::new().into())), None);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let frame = close_frame(4409, &long);
        assert!(frame.reason.len() <= 123);
        assert_eq!(frame.reason.len() % 2, 0);
    }
}
