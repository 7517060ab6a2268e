//! The core shared by a client's handles and its driver, the handle the application
//! holds, and the events it hears.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use heartline_core::{
    close_code, Action, Client, CloseError, ConnId, Disposition, Event, Message, Notice,
    ReadyState, SendError,
};
use tungstenite::{Bytes, Utf8Bytes};

use crate::{wire, Wait};

/// The core, shared by the handles and the driver.
pub struct SharedCore {
    pub(super) core: Mutex<Client>,
    /// Tells the driver a handle changed the core.
    pub(super) wake: Box<dyn Fn() + Send + Sync>,
    /// Live handles; when the last goes, the client closes.
    pub(super) handles: AtomicUsize,
    /// The driver has ended (only changed and read with `core` locked).
    pub(super) finished: AtomicBool,
}

impl fmt::Debug for SharedCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCore")
            .field("core", &self.core)
            .field("handles", &self.handles)
            .finish_non_exhaustive()
    }
}

impl SharedCore {
    /// Locks the core. Never held across IO or an `await`.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, Client> {
        // Every method of the core leaves it valid, even one a panic interrupted.
        crate::lock(&self.core)
    }

    /// How the driver waits next: until the core's deadline, or not at all once the
    /// driver is done (the client is closed for good and, `idle`, the driver holds no
    /// connection). From then on [`ClientHandle::reconnect_now`] does nothing: nobody
    /// would carry it out.
    pub fn wait(&self, idle: bool) -> Wait {
        self.wait_locked(&self.lock(), idle)
    }

    fn wait_locked(&self, core: &Client, idle: bool) -> Wait {
        if idle && core.is_closed() {
            self.finished.store(true, Ordering::Relaxed);
            return Wait::Stop;
        }
        core.poll_timeout().map_or(Wait::Forever, Wait::Until)
    }

    /// Feeds an inbound message to the core; the notices it caused go to `notify`
    /// first, then the message itself if it is the application's.
    pub fn feed(
        &self,
        conn: ConnId,
        message: tungstenite::Message,
        mut notify: impl FnMut(ClientEvent),
    ) {
        let mut core = self.lock();
        let delivered = feed_locked(&mut core, Instant::now(), conn, message, &mut notify);
        drop(core);
        if let Some(event) = delivered {
            notify(event);
        }
    }

    /// Feeds several inbound messages at once, under one lock: what a driver read in
    /// one go at `now`. `events` gets, in order, each message's notices and then the
    /// message itself if it is the application's; the caller passes them on after the
    /// core is unlocked again.
    pub fn feed_all(
        &self,
        conn: ConnId,
        now: Instant,
        messages: impl IntoIterator<Item = tungstenite::Message>,
        events: &mut VecDeque<ClientEvent>,
    ) {
        let mut core = self.lock();
        for message in messages {
            let mut push = |event| events.push_back(event);
            if let Some(event) = feed_locked(&mut core, now, conn, message, &mut push) {
                events.push_back(event);
            }
        }
    }

    /// Passes on the notices the core has, and nothing else.
    pub fn pass_notices(&self, notify: impl FnMut(ClientEvent)) {
        drain(&mut self.lock(), notify);
    }

    /// After a write to `conn` failed: hands the core back the messages among the taken
    /// `actions` that will now not be written ([`Client::give_back`]).
    pub fn give_back(&self, conn: ConnId, actions: &mut VecDeque<Action>) {
        self.lock().give_back(conn, actions);
    }

    /// Feeds a non-frame event (connected, failed, disconnected); returns the core's
    /// answer, after passing on the notices it caused.
    pub fn event(&self, event: Event<'_>, notify: impl FnMut(ClientEvent)) -> Disposition {
        let mut core = self.lock();
        let disposition = core.handle_event(Instant::now(), event);
        drain(&mut core, notify);
        disposition
    }

    /// The next action, after passing on pending notices.
    pub fn next_action(&self, notify: impl FnMut(ClientEvent)) -> Option<Action> {
        let mut core = self.lock();
        drain(&mut core, notify);
        let action = core.poll_action();
        trace_heartbeats(&action);
        action
    }

    /// Handles the deadlines due by `now` (if given), then moves every pending action
    /// into `actions` under one lock, after passing on pending notices. When there was
    /// none, also answers [`SharedCore::wait`] for a driver that is `idle` (holds no
    /// connection), in the same lock: `None` means actions were taken.
    pub fn take_actions(
        &self,
        now: Option<Instant>,
        idle: bool,
        actions: &mut VecDeque<Action>,
        notify: impl FnMut(ClientEvent),
    ) -> Option<Wait> {
        let mut core = self.lock();
        if let Some(now) = now {
            handle_due(&mut core, now);
        }
        drain(&mut core, notify);
        core.take_actions(actions);
        trace_heartbeats(actions.iter());
        if !actions.is_empty() {
            return None;
        }
        Some(self.wait_locked(&core, idle))
    }
}

/// Handles the deadlines due by `now`, after giving the core the wall-clock time read
/// with it, so that it notices a suspension the monotonic clock did not count (see
/// [`Client::handle_wall_clock`]). Drivers call this whenever they wake.
pub fn handle_due(core: &mut Client, now: Instant) {
    core.handle_wall_clock(now, SystemTime::now());
    core.handle_timeout(now);
}

/// Feeds one inbound message to the locked core at `now`; its notices go to `notify`,
/// and the message comes back as an event if the application should see it.
fn feed_locked(
    core: &mut Client,
    now: Instant,
    conn: ConnId,
    message: tungstenite::Message,
    notify: impl FnMut(ClientEvent),
) -> Option<ClientEvent> {
    let frame = wire::as_frame(&message)?;
    let disposition = core.handle_event(now, Event::Frame(conn, frame));
    drain(core, notify);
    if disposition != Disposition::Deliver {
        return None;
    }
    match message {
        tungstenite::Message::Text(t) => Some(ClientEvent::Text(t)),
        tungstenite::Message::Binary(b) => Some(ClientEvent::Binary(b)),
        _ => None,
    }
}

fn drain(core: &mut Client, mut notify: impl FnMut(ClientEvent)) {
    while let Some(notice) = core.poll_notice() {
        crate::trace::client_notice(&notice);
        notify(ClientEvent::Notice(notice));
    }
}

/// Traces the heartbeats among `actions`.
#[inline]
fn trace_heartbeats<'a>(actions: impl IntoIterator<Item = &'a Action>) {
    #[cfg(feature = "tracing")]
    for action in actions {
        if let Action::SendPing { conn, .. } | Action::SendHeartbeat { conn } = action {
            crate::trace::client_heartbeat(*conn);
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = actions;
}

/// Sends, closes and inspects the client from any thread or task. Cheap to clone.
///
/// When the last handle is dropped the client closes (code 1000) and the events end
/// once the close completes.
#[derive(Debug)]
pub struct ClientHandle {
    pub(super) shared: Arc<SharedCore>,
}

impl Clone for ClientHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        ClientHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self
                .shared
                .lock()
                .close(Instant::now(), close_code::NORMAL, "");
            (self.shared.wake)();
        }
    }
}

impl ClientHandle {
    /// Sends a message: at once if the connection is open, otherwise queued (within the
    /// configured bounds) until it opens. A message that cannot be taken comes back in
    /// the error. The driver is woken and writes it right away.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        // Sending depends on no deadline: the driver keeps the core's clock.
        let result = self.shared.lock().send_untimed(message.into());
        if result.is_ok() {
            (self.shared.wake)();
        }
        result
    }

    /// Sends a text message (see [`ClientHandle::send`]).
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message (see [`ClientHandle::send`]).
    pub fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send(Message::Binary(data.into()))
    }

    /// Closes for good with `code` and `reason`: no reconnect afterwards. The events end
    /// once the close handshake completes (or times out).
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        let result = self.shared.lock().close(Instant::now(), code, reason);
        (self.shared.wake)();
        result
    }

    /// Reconnects at once: skips a pending backoff wait, or closes and reopens an open
    /// connection. After the client gave up (or was closed) and its events ended, it
    /// does nothing: build a new client to start over.
    pub fn reconnect_now(&self) {
        {
            let mut core = self.shared.lock();
            if self.shared.finished.load(Ordering::Relaxed) {
                return;
            }
            core.reconnect_now(Instant::now());
        }
        (self.shared.wake)();
    }

    /// The browser-like ready state.
    pub fn state(&self) -> ReadyState {
        self.shared.lock().state()
    }

    /// Payload bytes accepted by [`ClientHandle::send`] and not yet handed to the
    /// socket, like the browser's `bufferedAmount`.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().buffered_amount()
    }

    /// The last measured heartbeat round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.lock().rtt()
    }
}

/// What the application hears from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A lifecycle notice from the core (open, closed, heartbeat missed, reconnect
    /// scheduled, gave up, ...).
    Notice(Notice),
    /// A text message from the server (heartbeat replies are not delivered).
    Text(Utf8Bytes),
    /// A binary message from the server.
    Binary(Bytes),
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ClientHandle>();
    send_sync::<ClientEvent>();
};
