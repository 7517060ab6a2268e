//! Closing: the application's close (for good) and reconnect-now, and the close
//! handshake either side starts.

use std::time::Instant;

use super::{AfterClose, GiveUpReason, Next, Phase, Timer};
use crate::frame::close_code;
use crate::{Action, Client, CloseError, ConnId, Initiator, Notice};

impl Client {
    /// Closes for good: no reconnect afterwards, timers cleared. From an open connection
    /// this starts the close handshake with `code` and `reason`.
    pub fn close(&mut self, now: Instant, code: u16, reason: &str) -> Result<(), CloseError> {
        if !close_code::is_sendable(code) {
            return Err(CloseError::InvalidCode(code));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        let now = self.clamp(now);
        match &mut self.phase {
            Phase::Open { conn } => {
                let conn = *conn;
                self.start_close(now, conn, code, reason, Initiator::Local, AfterClose::Stop);
            }
            Phase::Connecting { conn } => {
                let conn = *conn;
                self.actions.push_back(Action::Abort { conn });
                self.stop(true);
            }
            Phase::Closing { after, .. } => *after = AfterClose::Stop,
            Phase::Waiting => self.stop(true),
            Phase::Closed { by_app } => *by_app = true,
        }
        Ok(())
    }

    /// Skips the wait: reconnects at once if a reconnect is pending; closes and reopens
    /// an open connection; starts over after the client gave up. Does nothing while
    /// connecting, or after [`Client::close`].
    pub fn reconnect_now(&mut self, now: Instant) {
        let now = self.clamp(now);
        match &mut self.phase {
            Phase::Waiting => {
                self.timers.clear(Timer::Reconnect as usize);
                self.connect(now);
            }
            Phase::Open { conn } => {
                let conn = *conn;
                self.start_close(
                    now,
                    conn,
                    close_code::NORMAL,
                    "reconnecting",
                    Initiator::Local,
                    AfterClose::ReconnectNow,
                );
            }
            Phase::Closing { after, .. } => {
                if *after == AfterClose::Decide {
                    *after = AfterClose::ReconnectNow;
                }
            }
            Phase::Closed { by_app: false } => {
                self.failures = 0;
                self.connect(now);
            }
            Phase::Connecting { .. } | Phase::Closed { by_app: true } => {}
        }
    }

    /// The peer broke the protocol on `conn`: fail the connection with `code`.
    pub(super) fn on_violation(&mut self, now: Instant, conn: ConnId, code: u16, reason: &str) {
        if !matches!(self.phase, Phase::Open { .. }) {
            // Closing already: the handshake under way ends it; its timer bounds the wait.
            return;
        }
        let code = if close_code::is_sendable(code) {
            code
        } else {
            close_code::PROTOCOL_ERROR
        };
        let reason = close_code::fit_reason(reason);
        self.start_close(
            now,
            conn,
            code,
            reason,
            Initiator::Local,
            AfterClose::Decide,
        );
    }

    pub(super) fn start_close(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: u16,
        reason: &str,
        by: Initiator,
        after: AfterClose,
    ) {
        self.leave_open(now);
        // A heartbeat not yet taken is moot once the close handshake starts.
        self.actions.retain(|a| {
            !matches!(a, Action::SendPing { conn: c, .. } | Action::SendHeartbeat { conn: c } if *c == conn)
        });
        if by == Initiator::Local {
            self.actions.push_back(Action::Close {
                conn,
                code,
                reason: reason.to_owned(),
            });
        }
        self.timers
            .set(Timer::Close as usize, now + self.config.close_timeout);
        self.phase = Phase::Closing {
            conn,
            after,
            code,
            reason: reason.to_owned(),
            by,
        };
    }

    /// The close handshake ended (or timed out): report and move on.
    pub(super) fn finish_close(&mut self, now: Instant) {
        self.timers.clear(Timer::Close as usize);
        self.timers.clear(Timer::WriteStall as usize);
        let Phase::Closing {
            conn,
            after,
            code,
            reason,
            by,
        } = std::mem::replace(&mut self.phase, Phase::Waiting)
        else {
            return;
        };
        let next = match after {
            AfterClose::Stop => Next::Stop,
            AfterClose::ReconnectNow => Next::ConnectNow,
            // Only the peer's code can say "do not come back": a close this client made
            // (the peer broke the protocol) retries like a lost connection.
            AfterClose::Decide
                if by == Initiator::Remote
                    && self.config.reconnect.terminal_close_codes.contains(&code) =>
            {
                Next::GiveUp(GiveUpReason::CloseCode {
                    code,
                    reason: reason.clone(),
                })
            }
            AfterClose::Decide => Next::Retry(None),
        };
        self.notices.push_back(Notice::Closed {
            conn,
            code,
            reason,
            by,
        });
        self.after_disconnect(now, next);
    }
}
