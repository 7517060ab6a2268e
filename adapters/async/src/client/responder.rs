//! What an event handler answers with: a [`Responder`] whose sends go straight to the
//! open connection, in the driver's own turn.

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_tungstenite::tungstenite;
use futures_util::Sink;
use heartline_core::{CloseError, ConnId, Message, SendError};
use heartline_tungstenite::client::{ClientEvent, SharedCore};
use heartline_tungstenite::wire;

use super::written;

/// An application's event handler, called on the driver's task.
pub(super) type Handler = Box<dyn FnMut(ClientEvent, &Responder<'_>) + Send>;

/// What an event handler may do from the driver's task: send and close. Its sends are
/// written in the same turn of the driver, without waking anyone.
pub struct Responder<'a> {
    pub(super) core: &'a SharedCore,
    /// The open connection, when the handler runs right after a read: a message the
    /// core lets through is written to it at once, not queued as an action.
    pub(super) direct: Option<RefCell<&'a mut dyn DirectWrite>>,
}

impl fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder<'_> {
    /// Sends a message, as [`ClientHandle::send`](crate::ClientHandle::send) does.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let message = message.into();
        let Some(direct) = &self.direct else {
            // The driver takes the core's actions right after the handler returns.
            return self.core.lock().send_untimed(message);
        };
        let mut direct = direct.borrow_mut();
        let Some(conn) = direct.conn() else {
            return self.core.lock().send_untimed(message);
        };
        // The core decides; the write itself happens outside its lock.
        let Some(message) = self.core.lock().send_now(conn, message)? else {
            return Ok(());
        };
        match direct.write(message) {
            Ok(()) => Ok(()),
            // The socket's buffer is full: queue it (first in line, as nothing was
            // pending) for the driver to write once the socket takes more.
            Err(message) => self.core.lock().send_untimed(message),
        }
    }

    /// Sends a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send(Message::Binary(data.into()))
    }

    /// Closes for good, as [`ClientHandle::close`](crate::ClientHandle::close) does.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        self.core.lock().close(Instant::now(), code, reason)
    }
}

/// The open connection as a [`Responder`] writes to it directly.
pub(super) trait DirectWrite {
    /// The connection, while it can still be written to.
    fn conn(&self) -> Option<ConnId>;
    /// Writes `message` into the WebSocket's buffer (flushed by the driver after the
    /// handler returns), or gives it back if the buffer is full. A failed write ends
    /// direct writing; the driver reports the failure.
    fn write(&mut self, message: Message) -> Result<(), Message>;
}

/// [`DirectWrite`] over the driver's open stream, within one poll of the driver.
pub(super) struct DirectSink<'a, 'b, S> {
    pub(super) ws: &'a mut S,
    pub(super) cx: &'a mut Context<'b>,
    pub(super) conn: ConnId,
    /// Something was written and needs a flush.
    pub(super) wrote: bool,
    /// The write failed, with the error if it is worth reporting.
    pub(super) failed: Option<Option<String>>,
}

impl<S> DirectWrite for DirectSink<'_, '_, S>
where
    S: Sink<tungstenite::Message, Error = tungstenite::Error> + Unpin,
{
    fn conn(&self) -> Option<ConnId> {
        self.failed.is_none().then_some(self.conn)
    }

    fn write(&mut self, message: Message) -> Result<(), Message> {
        let result = match Pin::new(&mut *self.ws).poll_ready(self.cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut *self.ws).start_send(wire::to_message(message)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => return Err(message),
        };
        match written(result) {
            Ok(()) => self.wrote = true,
            Err(error) => self.failed = Some(error),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;

    use super::*;
    use heartline_core::{Action, Event};
    use heartline_tungstenite::client::{ClientHandle, Options, Prepared};

    /// A sink that takes `room` messages, then reports a full buffer (or, with
    /// `fail`, a broken connection).
    struct FakeSink {
        written: Vec<tungstenite::Message>,
        room: usize,
        fail: bool,
    }

    impl Sink<tungstenite::Message> for FakeSink {
        type Error = tungstenite::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.fail {
                Poll::Ready(Err(tungstenite::Error::Io(
                    io::ErrorKind::BrokenPipe.into(),
                )))
            } else if self.written.len() < self.room {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }

        fn start_send(
            mut self: Pin<&mut Self>,
            item: tungstenite::Message,
        ) -> Result<(), Self::Error> {
            self.written.push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A core with an open connection, and that connection.
    fn open_core() -> (ClientHandle, Prepared, ConnId) {
        let (handle, prepared) = Options::new("ws://127.0.0.1:9/")
            .prepare(|| {})
            .expect("valid options");
        let mut actions = VecDeque::new();
        prepared
            .core
            .take_actions(Some(Instant::now()), true, &mut actions, |_| {});
        let Some(Action::Connect { conn, .. }) = actions.pop_front() else {
            panic!("the client connects first: {actions:?}");
        };
        prepared.core.event(Event::Connected(conn), |_| {});
        (handle, prepared, conn)
    }

    /// Sends `0..count` as text through a responder writing to `sink`; returns the
    /// sink's report and the core's queued sends.
    fn send_through(
        sink: &mut FakeSink,
        count: usize,
    ) -> (bool, Option<Option<String>>, Vec<String>) {
        let (_handle, prepared, conn) = open_core();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut direct = DirectSink {
            ws: sink,
            cx: &mut cx,
            conn,
            wrote: false,
            failed: None,
        };
        {
            let responder = Responder {
                core: &prepared.core,
                direct: Some(RefCell::new(&mut direct)),
            };
            for i in 0..count {
                responder.send_text(i.to_string()).expect("accepted");
            }
        }
        let mut actions = VecDeque::new();
        prepared
            .core
            .take_actions(None, false, &mut actions, |_| {});
        let queued = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Send {
                    message: Message::Text(t),
                    ..
                } => Some(t),
                _ => None,
            })
            .collect();
        (direct.wrote, direct.failed, queued)
    }

    fn texts(written: &[tungstenite::Message]) -> Vec<String> {
        written
            .iter()
            .map(|m| m.to_text().expect("text").to_owned())
            .collect()
    }

    #[test]
    fn an_open_connection_takes_the_handlers_sends_at_once() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: usize::MAX,
            fail: false,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 5);
        assert!(wrote && failed.is_none());
        assert_eq!(texts(&sink.written), ["0", "1", "2", "3", "4"]);
        assert!(queued.is_empty(), "nothing left for the driver: {queued:?}");
    }

    #[test]
    fn a_full_socket_queues_the_rest_in_order() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: 2,
            fail: false,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 5);
        assert!(wrote && failed.is_none());
        assert_eq!(texts(&sink.written), ["0", "1"]);
        assert_eq!(
            queued,
            ["2", "3", "4"],
            "the driver writes these next, in order"
        );
    }

    #[test]
    fn a_failed_write_is_reported_and_later_sends_wait_in_the_core() {
        let mut sink = FakeSink {
            written: Vec::new(),
            room: usize::MAX,
            fail: true,
        };
        let (wrote, failed, queued) = send_through(&mut sink, 3);
        assert!(!wrote);
        assert!(
            matches!(&failed, Some(Some(e)) if e.contains("Broken pipe") || e.contains("broken pipe")),
            "{failed:?}"
        );
        // The first message went down with the connection, as a failed write of a
        // taken action does; the driver reports the loss to the core.
        assert_eq!(queued, ["1", "2"]);
    }
}
