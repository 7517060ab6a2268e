//! Suspension: a client that lost time (a laptop lid, a frozen VM, a stopped process)
//! does not trust the timers that slept through it.

use std::time::{Duration, Instant, SystemTime};

use super::{Client, HeartbeatKind, Notice, Phase, Timer};

impl Client {
    /// Tells the client the wall-clock time `wall` read together with `now`. On most
    /// systems the monotonic clock behind `Instant` stops while the machine sleeps, so a
    /// suspended laptop wakes with no time lost by `Instant`'s account; the wall clock
    /// counts it. When the wall clock moved more than
    /// [`HeartbeatConfig::suspend_threshold`](crate::HeartbeatConfig::suspend_threshold)
    /// further than `now` since the last call, the client treats the connection as
    /// suspect, as it does when woken far past a deadline. A wall clock set back is
    /// taken as the new reference and changes nothing. Drivers call this on every wake,
    /// before the other calls at that time.
    pub fn handle_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        let before = self.wall.replace((now, wall));
        let Some((then, wall_then)) = before else {
            self.clamp(now);
            return;
        };
        let seen = now.saturating_duration_since(then);
        let unseen = wall
            .duration_since(wall_then)
            .map_or(Duration::ZERO, |w| w.saturating_sub(seen));
        self.enter(now, unseen);
    }

    /// The time every input is handled at: never before the last one. When the driver
    /// comes `unseen` plus however late it is past the earliest deadline, and that is
    /// over the threshold, the client was suspended.
    ///
    /// Once per instant is enough: every deadline is set at or after the time it is set
    /// at, so at an instant already looked at, no deadline can be further past than it
    /// was then. A batch of frames read together costs one look, not one each.
    #[inline]
    pub(super) fn enter(&mut self, now: Instant, unseen: Duration) -> Instant {
        let now = self.clamp(now);
        if now != self.checked || !unseen.is_zero() {
            self.look_for_suspension(now, unseen);
        }
        now
    }

    /// The look [`Client::enter`] makes once per instant (kept out of line: the frames
    /// after the first at an instant skip it).
    #[inline(never)]
    fn look_for_suspension(&mut self, now: Instant, unseen: Duration) {
        self.checked = now;
        let Some(threshold) = self.config.heartbeat.suspend_threshold else {
            return;
        };
        let late = self
            .timers
            .next()
            .map_or(Duration::ZERO, |due| now.saturating_duration_since(due));
        let lost = late.saturating_add(unseen);
        if lost > threshold {
            self.resumed(now, lost);
        }
    }

    /// After a suspension: the deadlines that measure the peer get a fresh, short
    /// window from now (it could not answer while this side slept), an open connection
    /// is probed with a heartbeat only whose reply proves it alive, and the backoff
    /// starts over, since the network may have changed altogether.
    fn resumed(&mut self, now: Instant, lost: Duration) {
        self.notices.push_back(Notice::Resumed { lost });
        self.failures = 0;
        let c = &self.config;
        let probe = c.heartbeat.probe_timeout.min(c.heartbeat.timeout);
        let window = now + probe;
        // Each timer gets the probe window, or its own full span if that is shorter: a
        // resume never stretches a wait past what its timeout allows from now.
        for (timer, span) in [
            (Timer::Connect, c.connect_timeout),
            (Timer::Close, c.close_timeout),
            (Timer::WriteStall, c.write_timeout),
            (Timer::PongDeadline, probe),
        ] {
            if self.timers.get(timer as usize).is_some() {
                self.timers.set(timer as usize, now + span.min(probe));
            }
        }
        if let Phase::Open { conn } = self.phase {
            if !matches!(c.heartbeat.kind, HeartbeatKind::Off) {
                self.timers.clear(Timer::Ping as usize);
                self.send_heartbeat(now, conn, window);
                self.beat.suspect = true;
            }
        }
    }
}
