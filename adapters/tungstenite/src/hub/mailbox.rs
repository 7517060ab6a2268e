//! A connection's mailbox: the [`Out`] items the hub decided for it, waiting for the
//! connection's task to take them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use super::{Out, Outbox};

/// A connection's queue of [`Out`] items, shared by the hub (which pushes) and the
/// connection (which pops, by polling between reads or by awaiting [`Mailbox::next`]).
///
/// A deque behind a mutex, with the waiting task's waker beside it, holds only what is
/// queued: an idle connection's mailbox is a few dozen bytes, where a pair of channels
/// costs about a kilobyte per connection and a channel's block allocator another 1.7
/// KB once anything was sent.
#[derive(Debug, Default)]
pub struct Mailbox {
    state: Mutex<MailState>,
}

#[derive(Debug, Default)]
struct MailState {
    queue: VecDeque<Out>,
    /// The hub will queue nothing more.
    closed: bool,
    /// An Evict or Abort was queued: the connection must drop at once, even from the
    /// middle of a write.
    killed: bool,
    /// The task waiting in [`Mailbox::next`].
    waker: Option<Waker>,
    /// The task waiting in [`Mailbox::killed`].
    kill_waker: Option<Waker>,
}

/// What [`Mailbox::pop`] found.
#[derive(Debug)]
pub enum Mail {
    /// The next item.
    Item(Out),
    /// Nothing queued for now.
    Empty,
    /// Nothing queued, and the hub will queue nothing more: it forgot the connection or
    /// stopped.
    Closed,
}

/// Deques that grew past this many items give their memory back once drained.
const MAILBOX_KEEP: usize = 8;

impl Mailbox {
    fn state(&self) -> std::sync::MutexGuard<'_, MailState> {
        crate::lock(&self.state)
    }

    /// Queues `out` and wakes the connection; dropped once the mailbox is closed.
    pub fn push(&self, out: Out) {
        let (waker, kill_waker) = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            let kill = matches!(out, Out::Evict(_) | Out::Abort);
            state.queue.push_back(out);
            state.killed |= kill;
            let kill_waker = if kill { state.kill_waker.take() } else { None };
            (state.waker.take(), kill_waker)
        };
        waker.into_iter().chain(kill_waker).for_each(Waker::wake);
    }

    /// Takes the next item.
    pub fn pop(&self) -> Mail {
        Self::take(&mut self.state())
    }

    fn take(state: &mut MailState) -> Mail {
        match state.queue.pop_front() {
            Some(out) => {
                if state.queue.is_empty() && state.queue.capacity() > MAILBOX_KEEP {
                    state.queue = VecDeque::new();
                }
                Mail::Item(out)
            }
            None if state.closed => Mail::Closed,
            None => Mail::Empty,
        }
    }

    /// Waits for the next item; `None` once the mailbox is closed and drained.
    pub async fn next(&self) -> Option<Out> {
        std::future::poll_fn(|cx| {
            // One lock: a push cannot slip in between the look and the waker's
            // registration.
            let mut state = self.state();
            match Self::take(&mut state) {
                Mail::Item(out) => Poll::Ready(Some(out)),
                Mail::Closed => Poll::Ready(None),
                Mail::Empty => {
                    if !state
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        state.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until an Evict or Abort was queued, or the mailbox closed.
    pub async fn killed(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.state();
            if state.killed || state.closed {
                Poll::Ready(())
            } else {
                state.kill_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Closes the mailbox: what is queued can still be popped, nothing more is taken.
    pub fn close(&self) {
        let (waker, kill_waker) = {
            let mut state = self.state();
            state.closed = true;
            (state.waker.take(), state.kill_waker.take())
        };
        waker.into_iter().chain(kill_waker).for_each(Waker::wake);
    }
}

/// The hub's end of a mailbox; dropping it closes the mailbox.
#[derive(Debug)]
pub struct MailboxOutbox(pub Arc<Mailbox>);

impl Outbox for MailboxOutbox {
    fn push(&self, out: Out) {
        // A closed mailbox belongs to a connection that ended: nothing to do.
        self.0.push(out);
    }
}

impl Drop for MailboxOutbox {
    fn drop(&mut self) {
        self.0.close();
    }
}
