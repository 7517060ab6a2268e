//! The heartbeat of the open connection: frames that prove the peer alive, the
//! heartbeat sent with its reply deadline, round-trip times.

use std::time::Instant;

use super::*;

/// Heartbeat bookkeeping for the open connection.
#[derive(Debug, Default)]
pub(super) struct Beat {
    /// The heartbeat in flight, whose reply is awaited: (sequence, sent at).
    pub(super) awaiting: Option<(u64, Instant)>,
    /// The last heartbeat sent, kept for a round-trip time even after other traffic
    /// already proved the peer alive.
    pub(super) last_sent: Option<(u64, Instant)>,
    /// Next heartbeat sequence number.
    pub(super) next_seq: u64,
    /// After a suspension: only the reply to the heartbeat in flight proves the peer
    /// alive, not frames that may have waited in the socket while this side slept.
    pub(super) suspect: bool,
}

impl Client {
    pub(super) fn on_frame(&mut self, now: Instant, conn: ConnId, frame: Frame<'_>) -> Disposition {
        let open = matches!(self.phase, Phase::Open { .. });
        if let Frame::Close(close) = frame {
            if open {
                let (code, reason) = close.unwrap_or((close_code::NO_STATUS, ""));
                // The WebSocket library answers the Close; wait for the peer to end TCP.
                self.start_close(
                    now,
                    conn,
                    code,
                    reason,
                    Initiator::Remote,
                    AfterClose::Decide,
                );
            }
            return Disposition::Consumed;
        }
        let mut disposition = match frame {
            Frame::Text(_) | Frame::Binary(_) => Disposition::Deliver,
            _ => Disposition::Consumed,
        };
        if !open {
            // Data that arrives during a close handshake is still the application's.
            return disposition;
        }
        let is_reply = match (&self.config.heartbeat.kind, frame) {
            (HeartbeatKind::Protocol, Frame::Pong(payload)) => self
                .beat
                .last_sent
                .is_some_and(|(seq, _)| PingPayload::from_seq(seq).as_bytes() == payload),
            (HeartbeatKind::App(app), Frame::Text(_) | Frame::Binary(_)) => {
                app.reply.matches(&app.message, &frame)
            }
            _ => false,
        };
        if is_reply {
            disposition = Disposition::Consumed;
            if let Some((seq, sent)) = self.beat.last_sent.take() {
                self.ledger.answered(seq);
                let rtt = now.saturating_duration_since(sent);
                self.rtt = Some(rtt);
                self.notices.push_back(Notice::Rtt(rtt));
            }
        }
        if is_reply || (self.config.heartbeat.any_frame_is_alive && !self.beat.suspect) {
            self.alive(now);
        }
        disposition
    }

    /// The peer showed a sign of life: the heartbeat restarts from now.
    pub(super) fn alive(&mut self, now: Instant) {
        if matches!(self.config.heartbeat.kind, HeartbeatKind::Off) {
            return;
        }
        self.beat.awaiting = None;
        self.beat.suspect = false;
        self.timers.clear(Timer::PongDeadline as usize);
        self.timers
            .set(Timer::Ping as usize, now + self.config.heartbeat.interval);
    }

    /// Sends a heartbeat on `conn`, whose reply is due by `deadline`.
    pub(super) fn send_heartbeat(&mut self, now: Instant, conn: ConnId, deadline: Instant) {
        let seq = self.beat.next_seq;
        self.beat.next_seq += 1;
        self.beat.awaiting = Some((seq, now));
        self.beat.last_sent = Some((seq, now));
        self.ledger.heartbeat(seq);
        self.timers.set(Timer::PongDeadline as usize, deadline);
        let action = match self.config.heartbeat.kind {
            HeartbeatKind::App(_) => Action::SendHeartbeat { conn },
            _ => Action::SendPing {
                conn,
                payload: PingPayload::from_seq(seq),
            },
        };
        self.actions.push_back(action);
    }
}
