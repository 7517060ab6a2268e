//! The client's events as the application reads them: a `Stream`, or `recv`.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use heartline_tungstenite::client::ClientEvent;

use crate::handoff::EventReceiver;

/// The client's events, in order. The stream ends after the client is closed for good
/// (closed by the application, or gave up).
///
/// Events queue without bound, so an application that reads slowly never stalls the
/// connection's heartbeat; the queue holds what the application has not read yet.
/// Once this is dropped, events are discarded (the client keeps running for its
/// handles).
#[derive(Debug)]
pub struct ClientEvents {
    pub(super) rx: EventReceiver,
}

impl ClientEvents {
    /// The next event, or `None` after the client is closed for good.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.rx.poll_recv(Some(cx))).await
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        match self.rx.poll_recv(None) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }
}

impl Stream for ClientEvents {
    type Item = ClientEvent;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(Some(cx))
    }
}
