//! When the driver reads its connection: once the reactor says it is readable, or on
//! a hunch while such hunches pay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_lite::{Stream, StreamExt};
use futures_util::task::AtomicWaker;

/// Whether the open connection may have something to read.
///
/// The driver reads with a waker of its own, which marks the connection readable
/// before it wakes the task. Once a read found the socket empty, a turn of the driver
/// reads again when the reactor has reported the socket readable, or on a hunch.
///
/// The peer may answer while a turn runs, and the reactor hears of it only once the
/// executor runs out of work: a read on a hunch then saves a round through the
/// reactor (a wait on epoll and a wake-up). With many busy connections it mostly
/// finds the socket still empty, one wasted system call per turn. So the driver reads
/// on a hunch while such reads find something about once in three tries or more, and
/// otherwise once every [`HUNCH_PROBE`] turns, to notice when they start to. (Over
/// [`TcpStream`](crate::TcpStream), which itself waits for the reactor after a short
/// read, a read on a hunch costs no system call and seldom finds anything; hunches
/// pay over streams that try the socket on every read.)
pub(super) struct Readable {
    flag: Arc<ReadFlag>,
    waker: Waker,
    /// How well reads on a hunch paid lately: up 2 for each that found something,
    /// down 1 for each that did not, at most [`HUNCH_MAX`]. Zero: no hunches.
    hunch: u8,
    /// Turns since the last read on a hunch.
    since_hunch: u8,
}

/// The most [`Readable::hunch`] keeps: after a run of hits, a few misses in a row turn
/// hunches off.
const HUNCH_MAX: u8 = 6;

/// With hunches off, a read on a hunch every this many turns.
const HUNCH_PROBE: u8 = 16;

#[derive(Default)]
struct ReadFlag {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl std::task::Wake for ReadFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Readable {
    pub(super) fn new() -> Self {
        let flag = Arc::new(ReadFlag::default());
        Readable {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            hunch: 0,
            since_hunch: 0,
        }
    }

    /// The connection may have something to read: a new one, or a read that stopped
    /// before it found the socket empty.
    pub(super) fn set(&self) {
        self.flag.ready.store(true, Ordering::Release);
    }

    /// Polls `ws` for its next message if it may have one (or on a hunch); otherwise
    /// `cx` is woken once it may.
    pub(super) fn poll_next<S: Stream + Unpin>(
        &mut self,
        ws: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Option<S::Item>> {
        // Registered before the flag is looked at: a wake-up in between is not lost.
        self.flag.task.register(cx.waker());
        if self.flag.ready.swap(false, Ordering::AcqRel) {
            return self.poll_more(ws);
        }
        self.since_hunch = self.since_hunch.saturating_add(1);
        if self.hunch == 0 && self.since_hunch < HUNCH_PROBE {
            return Poll::Pending;
        }
        self.since_hunch = 0;
        let polled = self.poll_more(ws);
        self.hunch = match polled {
            Poll::Ready(_) => (self.hunch + 2).min(HUNCH_MAX),
            Poll::Pending => self.hunch.saturating_sub(1),
        };
        polled
    }

    /// Polls `ws` for its next message, in the turn in which [`Readable::poll_next`]
    /// registered the task: after it, or after a message this gave.
    pub(super) fn poll_more<S: Stream + Unpin>(&self, ws: &mut S) -> Poll<Option<S::Item>> {
        ws.poll_next(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;

    use super::*;

    /// A stream standing in for a connection: `ready` items to read; when it has none
    /// it keeps the waker it was polled with, as a reactor registration would.
    #[derive(Default)]
    struct FakeConn {
        ready: VecDeque<u32>,
        reads: usize,
        registered: Option<Waker>,
    }

    impl Stream for FakeConn {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.reads += 1;
            match self.ready.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None => {
                    self.registered = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    #[test]
    fn a_drained_connection_is_read_again_only_once_the_reactor_wakes_it() {
        let (wakes, task) = crate::handoff::tests::counting();
        let mut cx = Context::from_waker(&task);
        let mut conn = FakeConn {
            ready: VecDeque::from([1]),
            ..FakeConn::default()
        };
        let mut readable = Readable::new();
        readable.set();

        // A new connection is read; the read after the message finds it empty.
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(1)));
        assert_eq!(readable.poll_more(&mut conn), Poll::Pending);
        assert_eq!(conn.reads, 2);

        // Later turns do not read it again while nothing arrived (until a probe).
        for _ in 1..HUNCH_PROBE {
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
        }
        assert_eq!(conn.reads, 2, "no read attempt on a drained connection");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

        // Data arrives: the registration wakes the task, and the next turn reads.
        conn.ready.push_back(2);
        conn.registered.take().expect("registered").wake();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(2)));
        assert_eq!(conn.reads, 3);
    }

    #[test]
    fn reads_on_a_hunch_go_on_while_they_find_something() {
        let (_, task) = crate::handoff::tests::counting();
        let mut cx = Context::from_waker(&task);
        let mut conn = FakeConn::default();
        let mut readable = Readable::new();
        // Hunches off: one read in HUNCH_PROBE turns, which here finds a message that
        // the reactor has not reported yet.
        for _ in 1..HUNCH_PROBE {
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
        }
        assert_eq!(conn.reads, 0);
        conn.ready.push_back(1);
        assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Ready(Some(1)));
        // That paid: the next turns read on a hunch, until misses turn hunches off.
        let mut reads = Vec::new();
        for _ in 0..4 {
            let before = conn.reads;
            assert_eq!(readable.poll_next(&mut conn, &mut cx), Poll::Pending);
            reads.push(conn.reads - before);
        }
        assert_eq!(reads, [1, 1, 0, 0], "a hit earns two tries on a hunch");
    }
}
