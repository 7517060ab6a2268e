//! The client handle as a `futures::Sink` of messages (feature `sink`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;
use heartline_core::{close_code, Message, SendError};

use super::ClientHandle;

/// Every message goes to [`ClientHandle::send`]: at once while the connection is open,
/// otherwise into the client's bounded queue. The sink is always ready, since the
/// queue's bound is its back-pressure: a message the queue cannot take (with
/// `Overflow::RejectNew`) comes back as the error of `start_send`. A flush means the
/// client has taken every message, not that the server has them (the driver writes
/// them as soon as it can; see `Notice::Unconfirmed` for what a lost connection may
/// not have delivered). Closing the sink closes the client with 1000, for every handle.
impl<M: Into<Message>> Sink<M> for ClientHandle {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: M) -> Result<(), SendError> {
        self.send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        // Closing twice, or after the client has stopped, is not an error of the sink.
        let _ = self.close(close_code::NORMAL, "");
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Options;
    use heartline_core::{Overflow, ReadyState};
    use std::task::Waker;

    fn send(handle: &mut ClientHandle, text: &str) -> Result<(), SendError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut pinned = Pin::new(handle);
        assert!(matches!(
            Sink::<Message>::poll_ready(pinned.as_mut(), &mut cx),
            Poll::Ready(Ok(()))
        ));
        pinned.as_mut().start_send(Message::from(text))?;
        match Sink::<Message>::poll_flush(pinned, &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("a flush never waits"),
        }
    }

    #[test]
    fn the_sink_queues_into_the_client_and_hands_back_what_the_bound_refuses() {
        let mut options = Options::new("ws://127.0.0.1:9/");
        options.config.queue.max_messages = 2;
        options.config.queue.overflow = Overflow::RejectNew;
        let (mut handle, _prepared) = options.prepare(|| {}).expect("builds");
        send(&mut handle, "one").expect("queued");
        send(&mut handle, "two").expect("queued");
        assert_eq!(handle.buffered_amount(), 6);
        let refused = send(&mut handle, "three").expect_err("over the bound");
        assert_eq!(refused.message, Message::from("three"));
        let mut cx = Context::from_waker(Waker::noop());
        let closed = Sink::<Message>::poll_close(Pin::new(&mut handle), &mut cx);
        assert!(matches!(closed, Poll::Ready(Ok(()))));
        assert_eq!(handle.state(), ReadyState::Closed);
    }
}
