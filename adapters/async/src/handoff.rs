//! The client driver's two hand-offs with the rest of the program: the events it passes
//! to the application, and the nudges the handles give it.
//!
//! Both are cheap per message: an event is a push onto a locked queue, and the
//! application's task is woken only when it waits on an empty one; a burst of nudges
//! costs one wake-up of the driver, not one per nudge.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use heartline_tungstenite::client::ClientEvent;

use heartline_tungstenite::lock;

/// The events between the driver and the application's [`EventReceiver`].
#[derive(Default)]
struct EventQueue {
    events: VecDeque<ClientEvent>,
    /// The application's task, waiting for an event.
    waker: Option<Waker>,
    /// The driver is gone: no events after those queued.
    ended: bool,
    /// The application dropped its receiver: events are discarded.
    dropped: bool,
}

/// A new event queue: the driver's end and the application's end.
pub(crate) fn events() -> (EventSender, EventReceiver) {
    let shared = Arc::new(Mutex::new(EventQueue::default()));
    (
        EventSender {
            shared: Arc::clone(&shared),
        },
        EventReceiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

/// The driver's end of the event queue. Dropping it ends the events.
pub(crate) struct EventSender {
    shared: Arc<Mutex<EventQueue>>,
}

impl EventSender {
    /// Queues one event.
    pub(crate) fn push(&self, event: ClientEvent) {
        self.push_with(|queue| queue.push_back(event));
    }

    /// Queues all of `events` in order, leaving `events` empty. Into an empty queue the
    /// two trade places: no event is moved.
    pub(crate) fn push_all(&self, events: &mut VecDeque<ClientEvent>) {
        if events.is_empty() {
            return;
        }
        self.push_with(|queue| {
            if queue.is_empty() {
                std::mem::swap(queue, events);
            } else {
                queue.append(events);
            }
        });
        // Discarded for a dropped receiver: the batch goes either way.
        events.clear();
    }

    fn push_with(&self, add: impl FnOnce(&mut VecDeque<ClientEvent>)) {
        let waker = {
            let mut q = lock(&self.shared);
            if q.dropped {
                return;
            }
            add(&mut q.events);
            q.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let waker = {
            let mut q = lock(&self.shared);
            q.ended = true;
            q.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The application's end of the event queue.
pub(crate) struct EventReceiver {
    shared: Arc<Mutex<EventQueue>>,
    /// Events already taken from the shared queue, all at once, to hand out one by one
    /// without locking.
    taken: VecDeque<ClientEvent>,
}

impl fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReceiver")
            .field("taken", &self.taken.len())
            .finish_non_exhaustive()
    }
}

impl EventReceiver {
    /// The next event: `Ready(None)` once the driver is gone and all events are taken;
    /// `Pending` (with `cx` woken on the next event) while none is queued.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<ClientEvent>> {
        match self.taken.pop_front() {
            Some(event) => Poll::Ready(Some(event)),
            None => self.poll_shared(cx),
        }
    }

    /// [`EventReceiver::poll_recv`] once the events already taken are handed out.
    #[inline(never)]
    fn poll_shared(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<ClientEvent>> {
        let mut q = lock(&self.shared);
        if !q.events.is_empty() {
            // Swap rather than move: both queues keep their room.
            std::mem::swap(&mut self.taken, &mut q.events);
            drop(q);
            return Poll::Ready(self.taken.pop_front());
        }
        if q.ended {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            match &mut q.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let mut q = lock(&self.shared);
        q.dropped = true;
        q.waker = None;
        q.events = VecDeque::new();
    }
}

/// The handles' nudge to the driver: a flag and the driver's waker. A nudge while one is
/// already pending costs one atomic operation.
#[derive(Default)]
pub(crate) struct Nudge {
    pending: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Nudge {
    /// Tells the driver to look at the core again.
    pub(crate) fn nudge(&self) {
        // Whoever sets the flag wakes the driver; later nudges ride on that wake-up. (A
        // handle changed the core under its lock before this, and the driver clears the
        // flag before it takes the lock: a flag seen set is not yet cleared.)
        if self.pending.load(Ordering::Acquire) || self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = lock(&self.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Sets the flag without waking anyone: the driver is about to look at the core
    /// anyway, so nudges until the next [`Nudge::clear`] need not wake it.
    pub(crate) fn hold(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// Takes a pending nudge: the driver is about to look at the core anyway.
    pub(crate) fn clear(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// `Ready` once nudged (taking the nudge); otherwise `cx` is woken by the next nudge.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut slot = lock(&self.waker);
            match &mut *slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        // A nudge between the first look and the waker's registration found no waker
        // to wake: look again.
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker that counts its wake-ups (the client's tests use it too).
    #[derive(Default)]
    pub(crate) struct CountWakes(pub(crate) AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn counting() -> (Arc<CountWakes>, Waker) {
        let count = Arc::new(CountWakes::default());
        let waker = Waker::from(Arc::clone(&count));
        (count, waker)
    }

    fn text(s: &str) -> ClientEvent {
        ClientEvent::Text(s.into())
    }

    #[test]
    fn events_come_out_in_order_then_end_once_the_sender_is_gone() {
        let (tx, mut rx) = events();
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(Some(&mut cx)), Poll::Pending);
        tx.push(text("a"));
        let mut batch = VecDeque::from([text("b"), text("c")]);
        tx.push_all(&mut batch);
        assert!(batch.is_empty());
        // One wake-up for the waiting receiver, however many events follow.
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        tx.push(text("d"));
        drop(tx);
        for want in ["a", "b", "c", "d"] {
            assert_eq!(rx.poll_recv(Some(&mut cx)), Poll::Ready(Some(text(want))));
        }
        assert_eq!(rx.poll_recv(Some(&mut cx)), Poll::Ready(None));
    }

    #[test]
    fn the_end_wakes_a_waiting_receiver() {
        let (tx, mut rx) = events();
        let (wakes, waker) = counting();
        assert_eq!(
            rx.poll_recv(Some(&mut Context::from_waker(&waker))),
            Poll::Pending
        );
        drop(tx);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(None), Poll::Ready(None));
    }

    #[test]
    fn events_for_a_dropped_receiver_are_discarded() {
        let (tx, rx) = events();
        drop(rx);
        tx.push(text("a"));
        assert!(lock(&tx.shared).events.is_empty());
    }

    #[test]
    fn a_burst_of_nudges_wakes_the_driver_once() {
        let nudge = Nudge::default();
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(nudge.poll(&mut cx), Poll::Pending);
        for _ in 0..10 {
            nudge.nudge();
        }
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(nudge.poll(&mut cx), Poll::Ready(()));
        assert_eq!(nudge.poll(&mut cx), Poll::Pending);
        // A nudge taken by `clear` does not wake the driver's next wait.
        nudge.nudge();
        nudge.clear();
        assert_eq!(nudge.poll(&mut cx), Poll::Pending);
        // Held: nudges wake nobody until the driver clears the flag.
        let before = wakes.0.load(Ordering::SeqCst);
        nudge.hold();
        nudge.nudge();
        assert_eq!(wakes.0.load(Ordering::SeqCst), before);
        nudge.clear();
        nudge.nudge();
        assert_eq!(wakes.0.load(Ordering::SeqCst), before + 1);
    }
}
