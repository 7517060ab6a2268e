//! What the open connection took to write, and how much of it the peer has been seen
//! to read: the messages a lost connection may have taken with it.
//!
//! TCP delivers in order, so when the peer answers a heartbeat it has read every
//! message written before that heartbeat. What was written after the last answered
//! heartbeat may be in a socket buffer that died with the connection, or in a peer
//! that froze: the client cannot know. It does not send those again (the peer may have
//! them: that would deliver twice); it says how many there were, in
//! [`Notice::Unconfirmed`](crate::Notice::Unconfirmed), so nothing is lost silently.

use crate::ConnId;

/// Messages and their payload bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count {
    pub messages: usize,
    pub bytes: usize,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes;
    }
}

/// The ledger of one connection.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// The open connection it is for.
    conn: Option<ConnId>,
    /// Messages given to the connection to write (and not taken back).
    handed: Count,
    /// Of those, the ones the peer has read.
    read: Count,
    /// The heartbeat in flight and what had been handed when it was queued.
    mark: Option<(u64, Count)>,
}

impl Ledger {
    /// `conn` opened.
    pub fn open(&mut self, conn: ConnId) {
        *self = Ledger {
            conn: Some(conn),
            ..Ledger::default()
        };
    }

    /// A message of `bytes` was given to the connection.
    pub fn handed(&mut self, bytes: usize) {
        self.handed.add(bytes);
    }

    /// Messages given to the connection came back unwritten.
    pub fn taken_back(&mut self, messages: usize, bytes: usize) {
        self.handed.messages = self.handed.messages.saturating_sub(messages);
        self.handed.bytes = self.handed.bytes.saturating_sub(bytes);
    }

    /// Heartbeat `seq` was queued behind everything handed so far.
    pub fn heartbeat(&mut self, seq: u64) {
        self.mark = Some((seq, self.handed));
    }

    /// The peer answered heartbeat `seq`.
    pub fn answered(&mut self, seq: u64) {
        if let Some((marked, count)) = self.mark {
            if marked == seq {
                self.read = count;
                self.mark = None;
            }
        }
    }

    /// The peer answered this side's Close: it read everything before it.
    pub fn all_read(&mut self) {
        self.read = self.handed;
    }

    /// The connection ended: what it took and the peer was not seen to read. The
    /// ledger is empty afterwards.
    pub fn settle(&mut self) -> Option<(ConnId, Count)> {
        let unread = Count {
            messages: self.handed.messages.saturating_sub(self.read.messages),
            bytes: self.handed.bytes.saturating_sub(self.read.bytes),
        };
        let conn = std::mem::take(self).conn?;
        (unread.messages > 0).then_some((conn, unread))
    }
}
