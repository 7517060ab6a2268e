//! Arbitrary bytes on the wire, read by tungstenite with heartline's limits, and what
//! heartline makes of them: the frames go to the server's hub or the client core, a
//! read error becomes the close code heartline sends, and every Close that results
//! goes back out through tungstenite.
//!
//! Checked: a peer's violation maps to 1002, 1007 or 1009 and nothing else; every Close
//! heartline asks for carries a sendable code and a reason that fits a frame; writing
//! it never fails for its content; close reasons are cut at a character boundary.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Instant;

use arbitrary::Arbitrary;
use heartline_core::{close_code, Action, Client, ClientConfig, ConnId, Event};
use heartline_tungstenite::hub::ServerConfig;
use heartline_tungstenite::hub::{Channels, Hub, Input as HubInput, Out, Outbox};
use heartline_tungstenite::wire;
use tungstenite::protocol::{Role, WebSocket};

use crate::support::NoReply;

/// Which side reads, its limits, and what arrives.
#[derive(Debug, Arbitrary)]
pub struct Input {
    server_side: bool,
    max_message: u16,
    max_frame: u16,
    pieces: Vec<Piece>,
    reason: String,
}

#[derive(Debug, Arbitrary)]
enum Piece {
    Frame(Spec),
    Raw(Vec<u8>),
}

/// One frame, encoded by the rules or near them.
#[derive(Debug, Arbitrary)]
struct Spec {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    /// 0: the shortest length form; 1: 16 bits; 2: 64 bits.
    length_form: u8,
    /// A length that is not the payload's.
    lie: Option<u16>,
    payload: Vec<u8>,
}

impl Spec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | self.opcode & 0xf);
        let len = self.lie.map_or(self.payload.len(), usize::from);
        let mask_bit = u8::from(self.masked) << 7;
        match self.length_form % 3 {
            0 if len < 126 => out.push(mask_bit | len as u8),
            0 | 1 if len <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&self.mask);
        }
        let key = if self.masked { self.mask } else { [0; 4] };
        out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
}

/// The peer's bytes, handed out in small reads; writes go nowhere.
struct Wire {
    inbound: io::Cursor<Vec<u8>>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(7);
        self.inbound.read(&mut buf[..n])
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Collect(Rc<RefCell<Vec<Out>>>);

impl Outbox for Collect {
    fn push(&self, out: Out) {
        self.0.borrow_mut().push(out);
    }
}

struct Local;

impl Channels for Local {
    type Outbox = Collect;
    type Reply<T> = NoReply;
}

/// Runs one input.
pub fn run(input: Input) {
    let reason = close_code::fit_reason(&input.reason);
    assert!(reason.len() <= close_code::MAX_REASON && input.reason.starts_with(reason));
    assert_eq!(
        wire::close_frame(1000, input.reason.clone())
            .reason
            .as_str(),
        reason
    );

    let mut bytes = Vec::new();
    for piece in input.pieces.iter().take(64) {
        match piece {
            Piece::Frame(spec) => spec.encode(&mut bytes),
            Piece::Raw(raw) => bytes.extend_from_slice(raw),
        }
    }
    let mut config = ServerConfig::default();
    config.core.max_message_size = 1 + usize::from(input.max_message);
    config.core.max_frame_size = 1 + usize::from(input.max_frame);
    let limits = config.buffers.websocket_config(&config.core);
    let role = if input.server_side {
        Role::Server
    } else {
        Role::Client
    };
    let wire = Wire {
        inbound: io::Cursor::new(bytes),
    };
    let mut ws = WebSocket::from_raw_socket(wire, role, Some(limits));
    let mut side = if input.server_side {
        Side::server(&config)
    } else {
        Side::client()
    };
    let now = Instant::now();
    let closes = loop {
        match ws.read() {
            Ok(message) => side.frame(now, message),
            Err(error) => break side.ended(now, &error),
        }
    };
    for (code, reason) in closes {
        assert!(
            close_code::is_sendable(code),
            "close code {code} on the wire"
        );
        assert!(
            reason.len() <= close_code::MAX_REASON,
            "reason of {} bytes",
            reason.len()
        );
        // What the driver does with it: the content itself is never the problem.
        match ws.close(Some(wire::close_frame(code, reason))) {
            Ok(()) | Err(tungstenite::Error::AlreadyClosed | tungstenite::Error::Protocol(_)) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("writing Close {code}: {e}"),
        }
    }
}

enum Side {
    Server {
        hub: Box<Hub<Local>>,
        conn: ConnId,
        outbox: Collect,
    },
    Client {
        core: Box<Client>,
        conn: ConnId,
    },
}

impl Side {
    fn server(config: &ServerConfig) -> Side {
        let now = Instant::now();
        let mut hub = Box::new(Hub::<Local>::new(config, now).expect("a valid config"));
        let outbox = Collect::default();
        let conn = hub.incoming(now, outbox.clone()).expect("room for one");
        hub.open(now, conn, Some("peer".into())).expect("opens");
        Side::Server { hub, conn, outbox }
    }

    fn client() -> Side {
        let now = Instant::now();
        let mut core = Box::new(Client::new(ClientConfig::default(), 1, now).expect("defaults"));
        let conn = loop {
            match core.poll_action() {
                Some(Action::Connect { conn, .. }) => break conn,
                Some(_) => {}
                None => panic!("no first connection"),
            }
        };
        core.handle_event(now, Event::Connected(conn));
        while core.poll_action().is_some() {}
        Side::Client { core, conn }
    }

    fn frame(&mut self, now: Instant, message: tungstenite::Message) {
        match self {
            Side::Server { hub, conn, .. } => {
                hub.input(now, *conn, HubInput::Frame(message), |_| {});
                hub.dispatch(|_| {});
            }
            Side::Client { core, conn } => {
                if let Some(frame) = wire::as_frame(&message) {
                    core.handle_event(now, Event::Frame(*conn, frame));
                }
            }
        }
    }

    /// The read ended with `error`: what heartline closes with, from the frames read
    /// before and from the error.
    fn ended(&mut self, now: Instant, error: &tungstenite::Error) -> Vec<(u16, String)> {
        let violation = wire::violation(error);
        if let Some((code, _)) = violation {
            assert!(
                matches!(code, 1002 | 1007 | 1009),
                "{error} answered with {code}"
            );
        }
        match self {
            Side::Server { hub, conn, outbox } => {
                if let Some((code, reason)) = violation {
                    hub.input(now, *conn, HubInput::Violation(code, reason), |_| {});
                }
                hub.dispatch(|_| {});
                outbox
                    .0
                    .borrow_mut()
                    .drain(..)
                    .filter_map(|out| match out {
                        Out::Close(code, reason) => Some((code, reason)),
                        Out::Evict(reason) => Out::eviction_frame(reason)
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                        _ => None,
                    })
                    .collect()
            }
            Side::Client { core, conn } => {
                if let Some((code, reason)) = violation {
                    core.handle_event(now, Event::Violation(*conn, code, reason));
                }
                let mut closes = Vec::new();
                while let Some(action) = core.poll_action() {
                    if let Action::Close { code, reason, .. } = action {
                        closes.push((code, reason));
                    }
                }
                closes
            }
        }
    }
}
