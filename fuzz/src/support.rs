//! What the targets share: the time steps, and the hub's channels for a driver that
//! keeps nothing.

use std::time::{Duration, Instant};

use heartline_tungstenite::hub::Reply;

/// A step of time as the machine targets take it.
pub(crate) enum Tick {
    /// This many ms pass.
    Advance(u16),
    /// This many seconds pass (a suspended laptop, a frozen VM).
    Sleep(u16),
    /// Straight to the next deadline.
    Fire,
    /// A stamp this many ms in the past.
    Backwards(u16),
}

/// The time fed to a machine: `now` is the latest stamp, never before `start`.
pub(crate) struct Clock {
    pub start: Instant,
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let start = Instant::now();
        Clock { start, now: start }
    }

    /// The stamp to hand to `handle_timeout` for `tick`, given the machine's next
    /// deadline; `None` when there is nothing to call.
    pub fn tick(&mut self, tick: Tick, next: Option<Instant>) -> Option<Instant> {
        match tick {
            Tick::Advance(ms) => self.now += Duration::from_millis(u64::from(ms)),
            Tick::Sleep(s) => self.now += Duration::from_secs(u64::from(s)),
            Tick::Fire => {
                let at = next?;
                self.now = self.now.max(at);
                return Some(at);
            }
            Tick::Backwards(ms) => {
                let then = self.now.checked_sub(Duration::from_millis(u64::from(ms)));
                return Some(then.unwrap_or(self.now).max(self.start));
            }
        }
        Some(self.now)
    }
}

/// A reply nobody waits for.
pub(crate) struct NoReply;

impl<T> Reply<T> for NoReply {
    fn reply(self, _: T) {}
}
