//! The server's time: its deadlines (the heads of the table's lists), the sweep that
//! handles those due, and the clock it keeps (never backwards; a suspension moves
//! every deadline by the time lost).

use std::time::Instant;

use super::table::Stage;
use super::{at, EvictReason, Server, ServerAction, ServerNotice};
use crate::frame::close_code;
use crate::{Initiator, PingPayload};
use std::borrow::Cow;

impl<P> Server<P> {
    /// Handles every deadline at or before `now`: aborts close handshakes that took too
    /// long, drops handshakes that took too long, evicts clients whose writes stalled
    /// for `write_timeout` or that were silent for `idle_timeout`, pings clients quiet
    /// for `ping_interval`. Each handled deadline moves or goes, so calling this again
    /// with the same `now` does nothing; it only touches connections that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        while let Some(idx) = self.due(Stage::Closing, now) {
            let conn = self.table.id(idx);
            self.actions.push_back((ServerAction::Abort { conn }, true));
            let c = self.table.slot_mut(idx).closing.take();
            let (code, reason, by) = c.map_or(
                (close_code::ABNORMAL, Cow::Borrowed(""), Initiator::Local),
                |c| (c.code, c.reason, c.by),
            );
            self.remove(idx, code, reason, by, None);
        }
        while let Some(idx) = self.due(Stage::Handshake, now) {
            self.evict(idx, EvictReason::HandshakeTimeout);
        }
        while let Some(idx) = self.stall_due(now) {
            self.evict(idx, EvictReason::WriteStall);
        }
        while let Some(idx) = self.due(Stage::Pinged, now) {
            self.evict(idx, EvictReason::Idle);
        }
        while let Some(idx) = self.due(Stage::Quiet, now) {
            let last_seen = self.table.slot(idx).key;
            if at(last_seen, self.config.idle_timeout).is_some_and(|t| t <= now) {
                // Overdue for both: no point pinging a client about to be dropped.
                self.evict(idx, EvictReason::Idle);
                continue;
            }
            let conn = self.table.id(idx);
            let seq = self.ping_seq;
            self.ping_seq += 1;
            self.table.slot_mut(idx).ping = Some((seq, now));
            self.table.move_to(idx, Stage::Pinged, last_seen);
            self.actions.push_back((
                ServerAction::SendPing {
                    conn,
                    payload: PingPayload::from_seq(seq),
                },
                false,
            ));
        }
    }

    /// The one deadline at which [`Server::handle_timeout`] must be called next: the
    /// earliest over all connections (pings delayed by at most
    /// [`ServerConfig::effective_ping_slack`](super::ServerConfig::effective_ping_slack)
    /// to share a wake-up), found in constant time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stall = self.stall_deadline().map(|(_, at)| at);
        [
            Stage::Closing,
            Stage::Handshake,
            Stage::Pinged,
            Stage::Quiet,
        ]
        .into_iter()
        .filter_map(|stage| self.wake_at(stage))
        .chain(stall)
        .min()
    }

    // ---- the clock and the deadlines ----

    pub(super) fn clamp(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.resume_if_suspended(now);
            self.now = now;
        }
        self.now
    }

    /// Nothing was heard for longer than the suspend threshold, and the server woke
    /// that far past its deadline: it was suspended. Every deadline moves by the time
    /// lost (see [`ServerConfig::suspend_threshold`](super::ServerConfig)).
    fn resume_if_suspended(&mut self, now: Instant) {
        let Some(threshold) = self.config.suspend_threshold else {
            return;
        };
        if now.saturating_duration_since(self.now) <= threshold {
            return;
        }
        let Some(expected) = self.poll_timeout() else {
            return;
        };
        let lost = now.saturating_duration_since(expected.max(self.now));
        if lost > threshold {
            self.table.shift(lost);
            self.notices.push_back(ServerNotice::Resumed { lost });
        }
    }

    pub(super) fn deadline(&self, stage: Stage) -> Option<Instant> {
        let idx = self.table.head(stage)?;
        let after = match stage {
            Stage::Handshake => self.config.handshake_timeout,
            Stage::Quiet => self.config.ping_interval,
            Stage::Pinged => self.config.idle_timeout,
            Stage::Closing => self.config.close_timeout,
        };
        at(self.table.slot(idx).key, after)
    }

    /// When to wake for `stage`: its deadline, plus the ping slack for pings.
    pub(super) fn wake_at(&self, stage: Stage) -> Option<Instant> {
        let t = self.deadline(stage)?;
        match stage {
            Stage::Quiet => at(t, self.ping_slack),
            _ => Some(t),
        }
    }

    pub(super) fn due(&self, stage: Stage, now: Instant) -> Option<u32> {
        let idx = self.table.head(stage)?;
        self.deadline(stage)
            .is_some_and(|t| t <= now)
            .then_some(idx)
    }

    /// The connection blocked longest and when its stall runs out.
    pub(super) fn stall_deadline(&self) -> Option<(u32, Instant)> {
        let (idx, since) = self.table.stall_head()?;
        Some((idx, at(since, self.config.write_timeout)?))
    }

    pub(super) fn stall_due(&self, now: Instant) -> Option<u32> {
        self.stall_deadline()
            .and_then(|(idx, t)| (t <= now).then_some(idx))
    }
}
