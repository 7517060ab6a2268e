//! Frames and messages as the core sees them.
//!
//! The core never parses bytes off the wire: the WebSocket library in the adapter does
//! that. It is told which frame arrived through a borrowed [`Frame`], so looking at a
//! frame costs no copy, and it hands outbound application data around as [`Message`].

/// An inbound frame, borrowed from whatever buffer the WebSocket library decoded it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A protocol Ping. The WebSocket library answers it with a Pong by itself.
    Ping(&'a [u8]),
    /// A protocol Pong.
    Pong(&'a [u8]),
    /// A Close frame, with its code and reason when the peer sent one.
    Close(Option<(u16, &'a str)>),
}

/// An outbound application message.
///
/// Owned `String` / `Vec<u8>` convert into tungstenite's messages without a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// Size of the payload in bytes (what `buffered_amount` counts).
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Borrows this message as an inbound [`Frame`] (useful for matching echoes).
    pub fn as_frame(&self) -> Frame<'_> {
        match self {
            Message::Text(t) => Frame::Text(t),
            Message::Binary(b) => Frame::Binary(b),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

/// Close codes: the RFC 6455 ones heartline uses, and heartline's own (4000-4999 range,
/// reserved by the RFC for private use).
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: going away (server shutdown, page navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: unsupported data.
    pub const UNSUPPORTED: u16 = 1003;
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// 1007: invalid payload data (for example, text that is not UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: policy violation.
    pub const POLICY: u16 = 1008;
    /// 1009: message too big.
    pub const TOO_BIG: u16 = 1009;
    /// 1010: a required extension was not negotiated.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// 1011: internal server error.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// 1012: service restart.
    pub const SERVICE_RESTART: u16 = 1012;
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;

    /// 4408: heartline evicted a peer that stayed silent past its idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4408;
    /// 4409: a newer connection registered under the same name replaced this one.
    ///
    /// A heartline client treats it as terminal by default, so two devices that share a
    /// name do not keep replacing each other.
    pub const REPLACED: u16 = 4409;
    /// 4507: heartline evicted a peer that did not read fast enough: its outbound
    /// queue reached its bound.
    pub const BACKLOG: u16 = 4507;

    /// Whether `code` may appear in a Close frame on the wire (RFC 6455 section 7.4).
    pub fn is_sendable(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The longest reason a Close frame holds (125 payload bytes, two of them the code).
    pub const MAX_REASON: usize = 123;

    /// `reason` cut to at most [`MAX_REASON`] bytes, at a character boundary.
    pub fn fit_reason(reason: &str) -> &str {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        &reason[..end]
    }
}
