//! A connection's life in the client machine: connecting, open, ended, and what comes
//! next (reconnect at once, after a delay, give up, stop).

use std::time::{Duration, Instant};

use super::*;

impl Client {
    pub(super) fn connect(&mut self, now: Instant) {
        self.last_conn = ConnId(self.last_conn.0 + 1);
        let conn = self.last_conn;
        self.phase = Phase::Connecting { conn };
        let deadline = now + self.config.connect_timeout;
        self.timers.set(Timer::Connect as usize, deadline);
        self.timers.clear(Timer::WriteStall as usize);
        self.actions.push_back(Action::Connect {
            conn,
            attempt: self.failures,
            deadline,
        });
        self.notices.push_back(Notice::Connecting {
            conn,
            attempt: self.failures,
        });
    }

    pub(super) fn on_open(&mut self, now: Instant, conn: ConnId) {
        self.timers.clear(Timer::Connect as usize);
        self.phase = Phase::Open { conn };
        self.ledger.open(conn);
        self.beat.awaiting = None;
        self.beat.last_sent = None;
        if !matches!(self.config.heartbeat.kind, HeartbeatKind::Off) {
            self.timers
                .set(Timer::Ping as usize, now + self.config.heartbeat.interval);
        }
        self.timers.set(
            Timer::Stable as usize,
            now + self.config.reconnect.stable_after,
        );
        self.notices.push_back(Notice::Open { conn });
        while let Some(message) = self.queue.pop_front() {
            self.queue_bytes -= message.len();
            self.push_send(conn, message);
        }
    }

    pub(super) fn on_connect_failed(&mut self, now: Instant, conn: ConnId, error: ConnectFailure) {
        self.timers.clear(Timer::Connect as usize);
        let next = match &error {
            ConnectFailure::Http { status, .. }
                if self
                    .config
                    .reconnect
                    .terminal_http_statuses
                    .contains(status) =>
            {
                Next::GiveUp(GiveUpReason::HttpStatus(*status))
            }
            ConnectFailure::Http {
                status: 429 | 503,
                retry_after: Some(wait),
            } => Next::Retry(Some(*wait)),
            _ => Next::Retry(None),
        };
        self.notices
            .push_back(Notice::ConnectFailed { conn, error });
        self.after_disconnect(now, next);
    }

    pub(super) fn on_disconnected(&mut self, now: Instant, conn: ConnId, error: Option<&str>) {
        match &mut self.phase {
            Phase::Connecting { .. } => {
                let e = error.unwrap_or("connection closed during the handshake");
                self.on_connect_failed(now, conn, ConnectFailure::Io(e.to_owned()));
            }
            Phase::Open { .. } => {
                self.leave_open(now);
                self.notices.push_back(Notice::Closed {
                    conn,
                    code: close_code::ABNORMAL,
                    reason: error.unwrap_or("connection lost").to_owned(),
                    by: Initiator::Transport,
                });
                self.after_disconnect(now, Next::Retry(None));
            }
            Phase::Closing { by, .. } => {
                // The peer answered this side's Close and ended TCP: it read it all.
                if *by == Initiator::Local && error.is_none() {
                    self.ledger.all_read();
                }
                self.finish_close(now);
            }
            Phase::Waiting | Phase::Closed { .. } => {}
        }
    }

    /// Clears what only an open connection has.
    pub(super) fn leave_open(&mut self, now: Instant) {
        // A connection that outlived the stability mark counts as stable even when the
        // driver reports its end before handling that deadline.
        if self
            .timers
            .get(Timer::Stable as usize)
            .is_some_and(|at| at <= now)
        {
            self.failures = 0;
        }
        self.beat.awaiting = None;
        self.beat.suspect = false;
        for t in [Timer::Ping, Timer::PongDeadline, Timer::Stable] {
            self.timers.clear(t as usize);
        }
    }

    pub(super) fn after_disconnect(&mut self, now: Instant, next: Next) {
        self.timers.clear(Timer::WriteStall as usize);
        self.requeue_pending();
        if let Some((conn, unread)) = self.ledger.settle() {
            self.notices.push_back(Notice::Unconfirmed {
                conn,
                messages: unread.messages,
                bytes: unread.bytes,
            });
        }
        match next {
            Next::Stop => self.stop(true),
            Next::GiveUp(reason) => {
                self.notices.push_back(Notice::GaveUp { reason });
                self.stop(false);
            }
            Next::ConnectNow => self.connect(now),
            Next::Retry(retry_after) => {
                let rc = &self.config.reconnect;
                if rc.max_attempts.is_some_and(|max| self.failures >= max) {
                    let attempts = self.failures;
                    self.notices.push_back(Notice::GaveUp {
                        reason: GiveUpReason::AttemptsExhausted { attempts },
                    });
                    self.stop(false);
                    return;
                }
                self.failures = self.failures.saturating_add(1);
                let place = match rc.jitter {
                    Jitter::None => 0,
                    Jitter::Full => self.rng.next_u64(),
                    // One place for the whole outage, drawn at its first retry.
                    Jitter::Equal => {
                        if self.failures == 1 {
                            self.place = self.rng.next_u64();
                        }
                        self.place
                    }
                };
                let mut delay = rc.jitter.delay(&rc.backoff, self.failures, place);
                if rc.jitter == Jitter::Equal {
                    delay = self.on_schedule(now, delay);
                }
                if let Some(wait) = retry_after {
                    delay = delay.max(wait.min(rc.retry_after_cap));
                }
                self.last_due = Some(now + delay);
                self.phase = Phase::Waiting;
                self.timers.set(Timer::Reconnect as usize, now + delay);
                self.notices.push_back(Notice::ReconnectScheduled {
                    attempt: self.failures,
                    delay,
                });
            }
        }
    }

    /// The wait from `now` until the attempt due `delay` after the previous attempt of
    /// this outage was due (after `now` for an outage's first retry), so that the
    /// attempts keep to the spans [`Jitter::Equal`] describes however long each
    /// failure took to arrive (a refusal at once, a connect timeout, a driver busy with
    /// thousands of peers at once). Never less than half the range's low end (a
    /// failure seen after the next attempt was due still waits before retrying), never
    /// more than `delay` (an attempt started early, by `reconnect_now`).
    fn on_schedule(&self, now: Instant, delay: Duration) -> Duration {
        let rc = &self.config.reconnect;
        let due = match self.last_due {
            Some(last) if self.failures > 1 => last + delay,
            _ => return delay,
        };
        let floor = rc.jitter.range(&rc.backoff, self.failures).0 / 2;
        due.saturating_duration_since(now)
            .clamp(floor.min(delay), delay)
    }

    /// Closed for good: timers cleared, the queue reported and emptied.
    pub(super) fn stop(&mut self, by_app: bool) {
        self.timers.clear_all();
        self.beat.awaiting = None;
        self.phase = Phase::Closed { by_app };
        if !self.queue.is_empty() {
            self.notices.push_back(Notice::Dropped {
                messages: self.queue.len(),
                bytes: self.queue_bytes,
                cause: DropCause::Closed,
            });
            self.queue.clear();
            self.queue_bytes = 0;
        }
    }
}

/// What happens after a connection ends.
pub(super) enum Next {
    Stop,
    GiveUp(GiveUpReason),
    ConnectNow,
    Retry(Option<Duration>),
}
