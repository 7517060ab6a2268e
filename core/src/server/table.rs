//! The connection table and the server's one timer source.
//!
//! Connections live in a slab (`Vec` of slots plus a free list), addressed by the index
//! packed into their [`ConnId`]. Every connection is also on exactly one of three
//! intrusive doubly-linked lists, one per stage:
//!
//! | list      | key        | deadline                 | due means            |
//! |-----------|------------|--------------------------|----------------------|
//! | `Quiet`   | last seen  | key + `ping_interval`    | send a Ping          |
//! | `Pinged`  | last seen  | key + `idle_timeout`     | evict                |
//! | `Closing` | close sent | key + `close_timeout`    | abort                |
//!
//! Every connection shares the same three durations, so a list kept in key order is
//! also in deadline order, and key order comes for free: a connection is only ever
//! appended with a key of "now" (which never goes backwards), or moved from the head
//! of `Quiet` to the tail of `Pinged` keeping its key, which is newer than every key
//! already on `Pinged` (those left `Quiet` earlier, from in front of it).
//! So the earliest deadline of the whole server is the smallest of three list heads:
//! O(1), exact, and nothing to re-arm lazily. An inbound frame unlinks the connection
//! and appends it to `Quiet` (a handful of index writes, no heap operation, no
//! allocation). A sweep only ever touches connections that are due.
//!
//! Pings may wait up to `ping_slack` past their deadline (the server's wake-up time for
//! `Quiet` is its head's deadline plus the slack), so that every client due within that
//! window is pinged in one wake-up; eviction deadlines are never delayed.
//!
//! This is a timing queue with one slot per stage, the degenerate case of a timing
//! wheel that constant timeouts allow. A binary heap would cost O(log n) per re-arm
//! and either a heap operation per frame or spurious early wake-ups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{ConnId, Initiator};
use std::borrow::Cow;

pub(crate) const NIL: u32 = u32::MAX;
/// Bits of a [`ConnId`] that hold the slot index; the rest is the connection's
/// sequence number, so a reused slot gets a different, larger id.
const INDEX_BITS: u32 = 24;
/// Most connections held at once (16,777,215).
pub(crate) const MAX_SLOTS: usize = (1 << INDEX_BITS) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Quiet = 0,
    Pinged = 1,
    Closing = 2,
}

/// How a closing connection is closing.
#[derive(Debug, Clone)]
pub(crate) struct Closing {
    pub(crate) code: u16,
    pub(crate) reason: Cow<'static, str>,
    pub(crate) by: Initiator,
}

#[derive(Debug)]
pub(crate) struct Slot {
    /// The connection's sequence number; 0 when the slot is free.
    pub(crate) seq: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) stage: Stage,
    prev: u32,
    next: u32,
    /// Last sign of life (Quiet, Pinged) or when the close started (Closing).
    pub(crate) key: Instant,
    /// Payload bytes handed to the driver and not yet reported written.
    pub(crate) backlog: usize,
    /// The Ping in flight: (sequence, sent at).
    pub(crate) ping: Option<(u64, Instant)>,
    pub(crate) rtt: Option<Duration>,
    pub(crate) closing: Option<Closing>,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

#[derive(Debug)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: [List; 3],
    len: usize,
    next_seq: u64,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 3],
            len: 0,
            next_seq: 1,
        }
    }

    /// Connections held (open or closing).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of slots, free or not (for iteration by index).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Adds a connection seen alive at `now`; `None` when the table is full.
    pub(crate) fn insert(&mut self, now: Instant, name: Option<Arc<str>>) -> Option<ConnId> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot {
                    seq: 0,
                    name: None,
                    stage: Stage::Quiet,
                    prev: NIL,
                    next: NIL,
                    key: now,
                    backlog: 0,
                    ping: None,
                    rtt: None,
                    closing: None,
                });
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = &mut self.slots[idx as usize];
        slot.seq = seq;
        slot.name = name;
        slot.key = now;
        slot.backlog = 0;
        slot.ping = None;
        slot.rtt = None;
        slot.closing = None;
        self.push_back(idx, Stage::Quiet);
        self.len += 1;
        Some(ConnId(seq << INDEX_BITS | u64::from(idx)))
    }

    /// The slot index of `conn`, if it is still held.
    pub(crate) fn find(&self, conn: ConnId) -> Option<u32> {
        let idx = (conn.0 & ((1 << INDEX_BITS) - 1)) as u32;
        let slot = self.slots.get(idx as usize)?;
        (slot.seq != 0 && slot.seq == conn.0 >> INDEX_BITS).then_some(idx)
    }

    /// The id of the connection in slot `idx` (which must be held).
    pub(crate) fn id(&self, idx: u32) -> ConnId {
        ConnId(self.slots[idx as usize].seq << INDEX_BITS | u64::from(idx))
    }

    pub(crate) fn slot(&self, idx: u32) -> &Slot {
        &self.slots[idx as usize]
    }

    pub(crate) fn slot_mut(&mut self, idx: u32) -> &mut Slot {
        &mut self.slots[idx as usize]
    }

    /// The slot at `idx` when it holds a connection (for iteration).
    pub(crate) fn held(&self, idx: usize) -> Option<&Slot> {
        self.slots.get(idx).filter(|s| s.seq != 0)
    }

    /// Frees slot `idx`, returning its name.
    pub(crate) fn remove(&mut self, idx: u32) -> Option<Arc<str>> {
        self.unlink(idx);
        let slot = &mut self.slots[idx as usize];
        slot.seq = 0;
        slot.closing = None;
        self.free.push(idx);
        self.len -= 1;
        slot.name.take()
    }

    /// Moves `idx` to the tail of `stage`'s list with key `key`.
    pub(crate) fn move_to(&mut self, idx: u32, stage: Stage, key: Instant) {
        self.unlink(idx);
        self.slots[idx as usize].key = key;
        self.push_back(idx, stage);
    }

    /// The connection at the head of `stage`'s list (the earliest deadline there).
    pub(crate) fn head(&self, stage: Stage) -> Option<u32> {
        let h = self.lists[stage as usize].head;
        (h != NIL).then_some(h)
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, stage) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next, s.stage as usize)
        };
        if prev == NIL {
            self.lists[stage].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[stage].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_back(&mut self, idx: u32, stage: Stage) {
        let list = &mut self.lists[stage as usize];
        let tail = list.tail;
        list.tail = idx;
        if tail == NIL {
            list.head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        let s = &mut self.slots[idx as usize];
        s.stage = stage;
        s.prev = tail;
        s.next = NIL;
    }
}
