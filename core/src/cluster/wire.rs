//! What cluster nodes tell each other over the backplane, and its encoding: one
//! binary format every backplane carries as opaque bytes, so nodes on different
//! runtimes and backplanes understand each other.

use std::fmt;

use crate::frame::Message;

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// `node` is alive; sent every heartbeat interval, with a digest of the clients it
    /// holds: a node whose view of it differs asks for its presence.
    Heartbeat {
        /// The sender.
        node: String,
        /// The digest of its clients (0 for none).
        digest: u64,
    },
    /// `node` (re)joined: every node answers with its [`Wire::Presence`].
    Hello {
        /// The sender.
        node: String,
    },
    /// Every client `node` holds: `(name, connection, stamp)`; a name it held before
    /// and does not list has left.
    Presence {
        /// The sender.
        node: String,
        /// The clients.
        names: Vec<(String, u64, u64)>,
    },
    /// A client connected as `name` on `node`: it replaces any older holder of the
    /// name, on any node (the later `stamp` wins; equal stamps go to the greater node).
    Claim {
        /// The node the client is on.
        node: String,
        /// The client's name.
        name: String,
        /// Its connection on that node.
        conn: u64,
        /// The claim's logical time.
        stamp: u64,
    },
    /// The client `name` on `node` left.
    Release {
        /// The node.
        node: String,
        /// The name.
        name: String,
        /// The connection that left.
        conn: u64,
    },
    /// Deliver `message` to the client `to`; answer with [`Wire::Delivered`].
    Send {
        /// The node asking.
        node: String,
        /// Its number for the request.
        id: u64,
        /// The addressee's name.
        to: String,
        /// The sending client's name, if any.
        from: Option<String>,
        /// The message.
        message: Message,
    },
    /// The answer to [`Wire::Send`] `id` from `node`.
    Delivered {
        /// The node answering.
        node: String,
        /// The request's number.
        id: u64,
        /// Whether the addressee was there and took it.
        delivered: bool,
    },
    /// Deliver `message` to every client of every other node.
    Broadcast {
        /// The node it comes from.
        node: String,
        /// The sending client's name, if any.
        from: Option<String>,
        /// The message.
        message: Message,
    },
}

impl Wire {
    /// The node that sent it.
    pub fn node(&self) -> &str {
        match self {
            Wire::Heartbeat { node, .. }
            | Wire::Hello { node }
            | Wire::Presence { node, .. }
            | Wire::Claim { node, .. }
            | Wire::Release { node, .. }
            | Wire::Send { node, .. }
            | Wire::Delivered { node, .. }
            | Wire::Broadcast { node, .. } => node,
        }
    }

    /// The bytes to publish.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![VERSION]);
        match self {
            Wire::Heartbeat { node, digest } => w.tag(0).str(node).u64(*digest),
            Wire::Hello { node } => w.tag(1).str(node),
            Wire::Presence { node, names } => {
                w.tag(2).str(node).u64(names.len() as u64);
                for (name, conn, stamp) in names {
                    w.str(name).u64(*conn).u64(*stamp);
                }
                &mut w
            }
            Wire::Claim {
                node,
                name,
                conn,
                stamp,
            } => w.tag(3).str(node).str(name).u64(*conn).u64(*stamp),
            Wire::Release { node, name, conn } => w.tag(4).str(node).str(name).u64(*conn),
            Wire::Send {
                node,
                id,
                to,
                from,
                message,
            } => w
                .tag(5)
                .str(node)
                .u64(*id)
                .str(to)
                .opt(from.as_deref())
                .message(message),
            Wire::Delivered {
                node,
                id,
                delivered,
            } => w.tag(6).str(node).u64(*id).tag(u8::from(*delivered)),
            Wire::Broadcast {
                node,
                from,
                message,
            } => w.tag(7).str(node).opt(from.as_deref()).message(message),
        };
        w.0
    }

    /// Reads what [`Wire::encode`] wrote; anything else is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Wire, WireError> {
        let mut r = Reader(bytes);
        if r.byte()? != VERSION {
            return Err(WireError("unknown version"));
        }
        let wire = match r.byte()? {
            0 => Wire::Heartbeat {
                node: r.string()?,
                digest: r.u64()?,
            },
            1 => Wire::Hello { node: r.string()? },
            2 => {
                let node = r.string()?;
                let n = r.u64()?;
                // Each entry takes at least 20 bytes: a count past that is a lie.
                if n > (r.0.len() / 20) as u64 {
                    return Err(WireError("presence count past the end"));
                }
                let mut names = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    names.push((r.string()?, r.u64()?, r.u64()?));
                }
                Wire::Presence { node, names }
            }
            3 => Wire::Claim {
                node: r.string()?,
                name: r.string()?,
                conn: r.u64()?,
                stamp: r.u64()?,
            },
            4 => Wire::Release {
                node: r.string()?,
                name: r.string()?,
                conn: r.u64()?,
            },
            5 => Wire::Send {
                node: r.string()?,
                id: r.u64()?,
                to: r.string()?,
                from: r.opt()?,
                message: r.message()?,
            },
            6 => Wire::Delivered {
                node: r.string()?,
                id: r.u64()?,
                delivered: match r.byte()? {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError("bad flag")),
                },
            },
            7 => Wire::Broadcast {
                node: r.string()?,
                from: r.opt()?,
                message: r.message()?,
            },
            _ => return Err(WireError("unknown message")),
        };
        if !r.0.is_empty() {
            return Err(WireError("bytes after the message"));
        }
        Ok(wire)
    }
}

/// Bytes that are not a [`Wire`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(&'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a cluster message: {}", self.0)
    }
}

impl std::error::Error for WireError {}

const VERSION: u8 = 1;

struct Writer(Vec<u8>);

impl Writer {
    fn tag(&mut self, t: u8) -> &mut Self {
        self.0.push(t);
        self
    }
    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.tag(1).str(s),
            None => self.tag(0),
        }
    }
    fn message(&mut self, m: &Message) -> &mut Self {
        match m {
            Message::Text(t) => self.tag(0).str(t),
            Message::Binary(b) => self.tag(1).bytes(b),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let n = usize::try_from(self.u64()?).map_err(|_| WireError("length too large"))?;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?).map_err(|_| WireError("text is not UTF-8"))
    }
    fn opt(&mut self) -> Result<Option<String>, WireError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(WireError("bad option")),
        }
    }
    fn message(&mut self) -> Result<Message, WireError> {
        match self.byte()? {
            0 => Ok(Message::Text(self.string()?)),
            1 => Ok(Message::Binary(self.bytes()?)),
            _ => Err(WireError("bad message kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_garbage_is_an_error() {
        let all = [
            Wire::Heartbeat {
                node: "a".into(),
                digest: 42,
            },
            Wire::Hello { node: "b".into() },
            Wire::Presence {
                node: "a".into(),
                names: vec![("alice".into(), 3, 9), ("bob".into(), 4, 10)],
            },
            Wire::Claim {
                node: "a".into(),
                name: "alice".into(),
                conn: 3,
                stamp: 9,
            },
            Wire::Release {
                node: "a".into(),
                name: "alice".into(),
                conn: 3,
            },
            Wire::Send {
                node: "b".into(),
                id: 7,
                to: "alice".into(),
                from: Some("bob".into()),
                message: Message::Text("hi é".into()),
            },
            Wire::Delivered {
                node: "a".into(),
                id: 7,
                delivered: true,
            },
            Wire::Broadcast {
                node: "a".into(),
                from: None,
                message: Message::Binary(vec![0, 1, 2]),
            },
        ];
        for wire in all {
            let bytes = wire.encode();
            assert_eq!(Wire::decode(&bytes), Ok(wire.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    Wire::decode(&bytes[..cut]).is_err(),
                    "{wire:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Wire::decode(&longer).is_err());
        }
        // A presence that claims more entries than it carries is refused up front.
        let mut lie = Writer(vec![VERSION]);
        lie.tag(2).str("a").u64(u64::MAX);
        assert!(Wire::decode(&lie.0).is_err());
    }
}
