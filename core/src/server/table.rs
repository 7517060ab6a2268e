//! The connection table and the server's one timer source.
//!
//! Connections live in a slab (`Vec` of slots plus a free list), addressed by the index
//! packed into their [`ConnId`]. Every connection is on exactly one of four intrusive
//! doubly-linked lists, one per stage, and a connection whose writes are blocked is
//! also on a fifth, the stall list (a second pair of links in its slot):
//!
//! | list        | key            | deadline                  | due means            |
//! |-------------|----------------|---------------------------|----------------------|
//! | `Handshake` | accepted at    | key + `handshake_timeout` | drop the socket      |
//! | `Quiet`     | last seen      | key + `ping_interval`     | send a Ping          |
//! | `Pinged`    | last seen      | key + `idle_timeout`      | evict                |
//! | `Closing`   | close sent     | key + `close_timeout`     | abort                |
//! | stall       | blocked since  | key + `write_timeout`     | evict                |
//!
//! Every connection shares the same five durations, so a list kept in key order is
//! also in deadline order, and key order comes for free: a connection is only ever
//! appended with a key of "now" (which never goes backwards), or moved from the head
//! of `Quiet` to the tail of `Pinged` keeping its key, which is newer than every key
//! already on `Pinged` (those left `Quiet` earlier, from in front of it).
//! So the earliest deadline of the whole server is the smallest of five list heads:
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

/// Where a connection is in its life; each stage is one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Accepted, the upgrade not yet done.
    Handshake = 0,
    Quiet = 1,
    Pinged = 2,
    Closing = 3,
}

impl Stage {
    /// Open: upgraded and not closing.
    pub(crate) fn is_open(self) -> bool {
        matches!(self, Stage::Quiet | Stage::Pinged)
    }
}

/// Which list of the stall lane, after the four stage lists.
const STALLED: usize = 4;
/// Links of the stage lists, and of the stall list.
const STAGE_LANE: usize = 0;
const STALL_LANE: usize = 1;

/// How a closing connection is closing.
#[derive(Debug, Clone)]
pub(crate) struct Closing {
    pub(crate) code: u16,
    pub(crate) reason: Cow<'static, str>,
    pub(crate) by: Initiator,
}

#[derive(Debug, Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

#[derive(Debug)]
pub(crate) struct Slot {
    /// The connection's sequence number; 0 when the slot is free.
    pub(crate) seq: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) stage: Stage,
    links: [Links; 2],
    /// Last sign of life (Quiet, Pinged), when the close started (Closing) or when the
    /// socket was accepted (Handshake).
    pub(crate) key: Instant,
    /// Since when writes are blocked; `Some` exactly while on the stall list.
    pub(crate) stalled: Option<Instant>,
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
    len: usize,
}

#[derive(Debug)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: [List; 5],
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
                len: 0,
            }; 5],
            len: 0,
            next_seq: 1,
        }
    }

    /// Connections held, in any stage.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Connections in `stage`.
    pub(crate) fn count(&self, stage: Stage) -> usize {
        self.lists[stage as usize].len
    }

    /// Number of slots, free or not (for iteration by index).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Adds a connection in `stage` with key `now`; `None` when the table is full.
    pub(crate) fn insert(&mut self, now: Instant, stage: Stage) -> Option<ConnId> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot {
                    seq: 0,
                    name: None,
                    stage,
                    links: [UNLINKED; 2],
                    key: now,
                    stalled: None,
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
        slot.name = None;
        slot.key = now;
        slot.stalled = None;
        slot.backlog = 0;
        slot.ping = None;
        slot.rtt = None;
        slot.closing = None;
        slot.stage = stage;
        self.push_back(idx, stage as usize, STAGE_LANE);
        self.len += 1;
        Some(ConnId(seq << INDEX_BITS | u64::from(idx)))
    }

    /// Moves every time kept for every connection `by` later: the keys (so every list
    /// keeps its order and every deadline moves alike), stalls and pings in flight.
    pub(crate) fn shift(&mut self, by: Duration) {
        for slot in self.slots.iter_mut().filter(|s| s.seq != 0) {
            slot.key += by;
            if let Some(since) = &mut slot.stalled {
                *since += by;
            }
            if let Some((_, sent)) = &mut slot.ping {
                *sent += by;
            }
        }
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
        self.unstall(idx);
        let stage = self.slots[idx as usize].stage;
        self.unlink(idx, stage as usize, STAGE_LANE);
        let slot = &mut self.slots[idx as usize];
        slot.seq = 0;
        slot.closing = None;
        self.free.push(idx);
        self.len -= 1;
        slot.name.take()
    }

    /// Moves `idx` to the tail of `stage`'s list with key `key`.
    pub(crate) fn move_to(&mut self, idx: u32, stage: Stage, key: Instant) {
        let old = self.slots[idx as usize].stage;
        self.unlink(idx, old as usize, STAGE_LANE);
        let slot = &mut self.slots[idx as usize];
        slot.key = key;
        slot.stage = stage;
        self.push_back(idx, stage as usize, STAGE_LANE);
    }

    /// The connection at the head of `stage`'s list (the earliest deadline there).
    pub(crate) fn head(&self, stage: Stage) -> Option<u32> {
        let h = self.lists[stage as usize].head;
        (h != NIL).then_some(h)
    }

    /// Puts `idx` on the stall list, blocked since `now`, unless it is there already
    /// (a stall lasts from the first write that could not finish).
    pub(crate) fn stall(&mut self, idx: u32, now: Instant) {
        if self.slots[idx as usize].stalled.is_none() {
            self.slots[idx as usize].stalled = Some(now);
            self.push_back(idx, STALLED, STALL_LANE);
        }
    }

    /// Takes `idx` off the stall list, if it is on it.
    pub(crate) fn unstall(&mut self, idx: u32) {
        if self.slots[idx as usize].stalled.take().is_some() {
            self.unlink(idx, STALLED, STALL_LANE);
        }
    }

    /// The connection blocked longest, and since when.
    pub(crate) fn stall_head(&self) -> Option<(u32, Instant)> {
        let h = self.lists[STALLED].head;
        let since = self.slots.get(h as usize)?.stalled?;
        Some((h, since))
    }

    fn unlink(&mut self, idx: u32, list: usize, lane: usize) {
        let Links { prev, next } = self.slots[idx as usize].links[lane];
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.slots[prev as usize].links[lane].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.slots[next as usize].links[lane].prev = prev;
        }
        self.lists[list].len -= 1;
        self.slots[idx as usize].links[lane] = UNLINKED;
    }

    fn push_back(&mut self, idx: u32, list: usize, lane: usize) {
        let l = &mut self.lists[list];
        let tail = l.tail;
        l.tail = idx;
        l.len += 1;
        if tail == NIL {
            l.head = idx;
        } else {
            self.slots[tail as usize].links[lane].next = idx;
        }
        self.slots[idx as usize].links[lane] = Links {
            prev: tail,
            next: NIL,
        };
    }
}
