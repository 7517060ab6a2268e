//! What the application asks of the server: sends, closes, shutdown, broadcast, and
//! the backlog bound every send is charged against.

use std::borrow::Cow;
use std::time::Instant;

use super::table::Stage;
use super::Shutdown;
use crate::client::CloseError;
use crate::frame::close_code;
use crate::{
    ConnId, EvictReason, Initiator, Server, ServerAction, ServerSendError, ServerSendErrorKind,
};

impl<P> Server<P> {
    /// Sends `message` to `conn`. Fails with the message back when `conn` is not open or
    /// the message alone exceeds the backlog bound; evicts the client when the message
    /// would take it past the bound.
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: P,
    ) -> Result<(), ServerSendError<P>> {
        self.clamp(now);
        match self.table.find(conn) {
            Some(idx) if self.table.slot(idx).stage.is_open() => {
                self.send_to_slot(idx, conn, message)
            }
            _ => Err(ServerSendError {
                message,
                kind: ServerSendErrorKind::NotOpen,
            }),
        }
    }

    /// Sends `message` to the client registered as `name` (see [`Server::send`]).
    pub fn send_to(
        &mut self,
        now: Instant,
        name: &str,
        message: P,
    ) -> Result<(), ServerSendError<P>> {
        match self.lookup(name) {
            Some(conn) => self.send(now, conn, message),
            None => Err(ServerSendError {
                message,
                kind: ServerSendErrorKind::UnknownName,
            }),
        }
    }

    /// Closes `conn` with `code` and `reason` (the close handshake, then an abort after
    /// `close_timeout`). `Ok(false)` when `conn` is not open.
    pub fn close(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: u16,
        reason: &str,
    ) -> Result<bool, CloseError> {
        if !close_code::is_sendable(code) {
            return Err(CloseError::InvalidCode(code));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        let now = self.clamp(now);
        match self.table.find(conn) {
            Some(idx) if self.table.slot(idx).stage.is_open() => {
                let reason = Cow::Owned(reason.to_owned());
                self.start_close(now, idx, code, reason, Initiator::Local);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Graceful shutdown: no new connections (upgrades get 503, [`Server::open`] fails),
    /// every open connection gets a Close with 1001, and whatever has not closed within
    /// `close_timeout` is aborted. [`ServerNotice::ShutdownComplete`](crate::ServerNotice::ShutdownComplete) reports when every
    /// connection is gone. Calling it again does nothing.
    pub fn shutdown(&mut self, now: Instant) {
        let now = self.clamp(now);
        if self.shutdown != Shutdown::Running {
            return;
        }
        self.shutdown = Shutdown::Draining;
        for i in 0..self.table.capacity() {
            let Some(stage) = self.table.held(i).map(|s| s.stage) else {
                continue;
            };
            if stage == Stage::Handshake {
                // Not upgraded: nothing to close gracefully.
                let conn = self.table.id(i as u32);
                self.actions.push_back((ServerAction::Abort { conn }, true));
                self.table.remove(i as u32);
            } else if stage.is_open() {
                self.start_close(
                    now,
                    i as u32,
                    close_code::GOING_AWAY,
                    Cow::Borrowed("server shutting down"),
                    Initiator::Local,
                );
            }
        }
        self.check_shutdown();
    }

    /// Counts `len` more bytes against `idx`'s backlog; evicts and returns `false` when
    /// that passes the bound.
    pub(super) fn charge(&mut self, idx: u32, len: usize) -> bool {
        let slot = self.table.slot_mut(idx);
        if slot.backlog.saturating_add(len) > self.config.max_backlog_bytes {
            self.evict(idx, EvictReason::Backlog);
            return false;
        }
        slot.backlog += len;
        true
    }

    fn send_to_slot(
        &mut self,
        idx: u32,
        conn: ConnId,
        message: P,
    ) -> Result<(), ServerSendError<P>> {
        let len = (self.len)(&message);
        if len > self.config.max_backlog_bytes {
            return Err(ServerSendError {
                message,
                kind: ServerSendErrorKind::TooLarge,
            });
        }
        if !self.charge(idx, len) {
            return Err(ServerSendError {
                message,
                kind: ServerSendErrorKind::Evicted,
            });
        }
        self.actions
            .push_back((ServerAction::Send { conn, message }, false));
        Ok(())
    }
}

impl<P: Clone> Server<P> {
    /// Sends `message` to every open connection (named or not); returns how many got
    /// it. Each client gets a clone of `message`: cheap for shared payloads (see
    /// "Payloads" on [`Server`]). Clients the message would take past their backlog
    /// bound are evicted instead; a message larger than the bound itself goes to nobody.
    pub fn broadcast(&mut self, now: Instant, message: P) -> usize {
        self.broadcast_except(now, message, None)
    }

    /// [`Server::broadcast`] to everyone but `except` (the sender, in a chat).
    pub fn broadcast_except(&mut self, now: Instant, message: P, except: Option<ConnId>) -> usize {
        self.clamp(now);
        let len = (self.len)(&message);
        if len > self.config.max_backlog_bytes {
            return 0;
        }
        let mut sent = 0;
        for i in 0..self.table.capacity() {
            let open = self.table.held(i).is_some_and(|s| s.stage.is_open());
            if !open {
                continue;
            }
            let idx = i as u32;
            let conn = self.table.id(idx);
            if Some(conn) == except {
                continue;
            }
            if self.charge(idx, len) {
                self.actions.push_back((
                    ServerAction::Send {
                        conn,
                        message: message.clone(),
                    },
                    false,
                ));
                sent += 1;
            }
        }
        sent
    }
}
