//! The send queue: what the application sends, held while the connection is not open
//! (within its bounds and overflow policy), and taken back when a connection is lost
//! before its sends were written, so no accepted message is lost silently.

use std::collections::VecDeque;
use std::time::Instant;

use super::{AfterClose, Phase};
use crate::frame::Message;
use crate::{Action, Client, ConnId, DropCause, Notice, Overflow, SendError, SendErrorKind};

impl Client {
    /// Sends `message` now if the connection is open, or queues it until it is.
    pub fn send(&mut self, now: Instant, message: Message) -> Result<(), SendError> {
        self.clamp(now);
        self.send_untimed(message)
    }

    /// [`Client::send`] without a time: what happens to a message depends on no
    /// deadline, so a caller with no fresh time at hand (a handle sending from another
    /// task) can skip reading the clock. The client's time stays the latest one given
    /// to it by any other call.
    #[inline]
    pub fn send_untimed(&mut self, message: Message) -> Result<(), SendError> {
        match &self.phase {
            Phase::Open { conn } => {
                let conn = *conn;
                self.push_send(conn, message);
                Ok(())
            }
            Phase::Closed { .. }
            | Phase::Closing {
                after: AfterClose::Stop,
                ..
            } => Err(SendError {
                message,
                kind: SendErrorKind::Closed,
            }),
            _ => self.enqueue(message),
        }
    }

    /// [`Client::send_untimed`] for a driver that can write to `conn` at once: when
    /// `conn` is the open connection and no action is pending, the message comes back
    /// (`Ok(Some)`) for the caller to write now, exactly as if it had been queued as an
    /// [`Action::Send`] and taken straight away. Otherwise it is queued as usual
    /// (`Ok(None)`), behind whatever is pending, so the order of messages never changes.
    #[inline]
    pub fn send_now(
        &mut self,
        conn: ConnId,
        message: Message,
    ) -> Result<Option<Message>, SendError> {
        if self.actions.is_empty()
            && matches!(self.phase, Phase::Open { conn: open } if open == conn)
        {
            self.ledger.handed(message.len());
            return Ok(Some(message));
        }
        self.send_untimed(message).map(|()| None)
    }

    /// Takes back, from `taken` (actions the driver took but will not execute, because
    /// a write to `conn` before them failed), the messages of the [`Action::Send`]s for
    /// `conn`, in order; the other actions stay in `taken`. Call it before reporting
    /// the end with [`Event::Disconnected`](crate::Event::Disconnected): like the sends still pending, they then
    /// wait for the next connection. Given back later, they go to the front of the
    /// send queue.
    pub fn give_back(&mut self, conn: ConnId, taken: &mut VecDeque<Action>) {
        let messages = take_sends(taken, Some(conn));
        if messages.is_empty() {
            return;
        }
        let live = matches!(
            self.phase,
            Phase::Open { conn: c } | Phase::Closing { conn: c, .. } if c == conn
        );
        if matches!(self.phase, Phase::Closed { .. }) {
            self.notices.push_back(Notice::Dropped {
                messages: messages.len(),
                bytes: messages.iter().map(Message::len).sum(),
                cause: DropCause::Closed,
            });
            return;
        }
        if !live {
            self.requeue_front(messages);
            return;
        }
        for message in messages.into_iter().rev() {
            self.action_bytes += message.len();
            self.actions.push_front(Action::Send { conn, message });
        }
    }

    /// The connection is gone: the sends still pending (all for it, as only an open
    /// connection gets any) were never handed to it, so they go back to the send
    /// queue, ahead of anything queued since, for the next connection.
    pub(super) fn requeue_pending(&mut self) {
        if !self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Send { .. }))
        {
            return;
        }
        let unsent = take_sends(&mut self.actions, None);
        self.action_bytes = 0;
        self.ledger
            .taken_back(unsent.len(), unsent.iter().map(Message::len).sum());
        self.requeue_front(unsent);
    }

    /// Puts `unsent` (in order) at the front of the send queue. The queue's bounds and
    /// overflow policy apply as if everything had been sent again in that order;
    /// what no longer fits is reported in one [`Notice::Dropped`], never lost silently.
    pub(super) fn requeue_front(&mut self, unsent: impl IntoIterator<Item = Message>) {
        let later = std::mem::take(&mut self.queue);
        self.queue_bytes = 0;
        let (mut messages, mut bytes) = (0, 0);
        for message in unsent.into_iter().chain(later) {
            if let Err(refused) = self.enqueue(message) {
                messages += 1;
                bytes += refused.message.len();
            }
        }
        if messages > 0 {
            self.notices.push_back(Notice::Dropped {
                messages,
                bytes,
                cause: DropCause::Overflow,
            });
        }
    }

    pub(super) fn push_send(&mut self, conn: ConnId, message: Message) {
        self.ledger.handed(message.len());
        self.action_bytes += message.len();
        self.actions.push_back(Action::Send { conn, message });
    }

    pub(super) fn enqueue(&mut self, message: Message) -> Result<(), SendError> {
        let q = self.config.queue;
        let len = message.len();
        if q.max_messages == 0 {
            return Err(SendError {
                message,
                kind: SendErrorKind::QueueFull,
            });
        }
        if len > q.max_bytes {
            return Err(SendError {
                message,
                kind: SendErrorKind::TooLarge,
            });
        }
        let fits = |client: &Client| {
            client.queue.len() < q.max_messages && client.queue_bytes + len <= q.max_bytes
        };
        if !fits(self) {
            match q.overflow {
                Overflow::RejectNew => {
                    return Err(SendError {
                        message,
                        kind: SendErrorKind::QueueFull,
                    })
                }
                Overflow::DropOldest => {
                    let (mut messages, mut bytes) = (0, 0);
                    while !fits(self) {
                        // `len <= max_bytes` and `max_messages > 0`, so an empty queue fits.
                        let Some(old) = self.queue.pop_front() else {
                            break;
                        };
                        self.queue_bytes -= old.len();
                        messages += 1;
                        bytes += old.len();
                    }
                    self.notices.push_back(Notice::Dropped {
                        messages,
                        bytes,
                        cause: DropCause::Overflow,
                    });
                }
            }
        }
        self.queue_bytes += len;
        self.queue.push_back(message);
        Ok(())
    }
}

/// Moves the messages of the [`Action::Send`]s in `actions` (for `conn` only, if
/// given) out, in order; every other action stays, in order.
fn take_sends(actions: &mut VecDeque<Action>, conn: Option<ConnId>) -> Vec<Message> {
    let mut sends = Vec::new();
    let mut kept = VecDeque::with_capacity(actions.len());
    for action in actions.drain(..) {
        match action {
            Action::Send { conn: c, message } if conn.is_none_or(|conn| c == conn) => {
                sends.push(message);
            }
            other => kept.push_back(other),
        }
    }
    *actions = kept;
    sends
}
