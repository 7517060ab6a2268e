//! Reconnect delays: the backoff curve and its jitter.

use std::time::Duration;

use crate::rng::Rng;

/// How the delay before reconnect attempt *n* grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay before every attempt (the seed articles' `reconnectTime`).
    Fixed(Duration),
    /// `initial * factor^(n-1)`, capped at `max`.
    Exponential {
        /// Delay before the first attempt.
        initial: Duration,
        /// Upper bound; jitter is applied after this cap.
        max: Duration,
        /// Growth per attempt, at least 2.
        factor: u32,
    },
}

impl Backoff {
    /// Doubling from `initial` up to `max`.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff::Exponential {
            initial,
            max,
            factor: 2,
        }
    }

    /// The capped delay before attempt `attempt` (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential {
                initial,
                max,
                factor,
            } => {
                let mut d = initial;
                for _ in 1..attempt.max(1) {
                    if d >= max {
                        break;
                    }
                    d = d.saturating_mul(factor);
                }
                d.min(max)
            }
        }
    }

    /// The largest delay this curve can produce.
    pub fn max_delay(&self) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { max, .. } => max,
        }
    }
}

/// Randomisation of a delay, so that clients dropped together do not return together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the computed delay.
    None,
    /// Uniform in `[0, d]`, drawn afresh for every attempt: spreads the first retry
    /// widest, but may retry at once, and clients that fail again and again draw ever
    /// longer waits (a long tail after a restart; see the storm bench).
    Full,
    /// Uniform in `[d/2, d]`, keeps at least half the wait. The client draws its place
    /// in that range once per outage and keeps it for every attempt of the outage (a
    /// client that came early stays early), so after a restart the clients' returns
    /// are spread as evenly as their first retries were, instead of piling up as sums
    /// of independent draws. The client's [`Client`](crate::Client) draws the place;
    /// [`Jitter::apply`] draws one for a single delay.
    Equal,
}

impl Jitter {
    /// Applies the jitter to `d`, drawing its place from `rng`.
    pub fn apply(self, d: Duration, rng: &mut Rng) -> Duration {
        match self {
            Jitter::None => d,
            _ => self.at(d, rng.next_u64()),
        }
    }

    /// `d` jittered at `place` in its range: 0 is the low end, `u64::MAX` the high end.
    pub fn at(self, d: Duration, place: u64) -> Duration {
        // Millisecond resolution is plenty for reconnect delays and keeps arithmetic in u64.
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // `place` scaled to `0..=max`, by multiply-shift as in `Rng::below_inclusive`.
        let scaled = |max: u64| ((u128::from(place) * (u128::from(max) + 1)) >> 64) as u64;
        match self {
            Jitter::None => d,
            Jitter::Full => Duration::from_millis(scaled(ms)),
            Jitter::Equal => {
                let half = ms / 2;
                Duration::from_millis(ms - half + scaled(half))
            }
        }
    }

    /// The smallest delay this jitter can turn `d` into.
    pub fn lower_bound(self, d: Duration) -> Duration {
        match self {
            Jitter::None => d,
            Jitter::Full => Duration::ZERO,
            Jitter::Equal => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(ms - ms / 2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn exponential_doubles_then_caps() {
        let b = Backoff::exponential(MS(100), MS(1000));
        let got: Vec<_> = (1..=6).map(|n| b.delay(n)).collect();
        assert_eq!(
            got,
            vec![MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]
        );
        assert_eq!(b.delay(u32::MAX), MS(1000));
    }

    #[test]
    fn fixed_is_fixed() {
        let b = Backoff::Fixed(MS(5000));
        assert_eq!(b.delay(1), MS(5000));
        assert_eq!(b.delay(40), MS(5000));
    }

    #[test]
    fn jitter_bounds() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let f = Jitter::Full.apply(MS(1000), &mut rng);
            assert!(f <= MS(1000));
            let e = Jitter::Equal.apply(MS(1001), &mut rng);
            assert!(e >= MS(501) && e <= MS(1001), "{e:?}");
        }
        assert_eq!(Jitter::None.apply(MS(7), &mut rng), MS(7));
    }

    #[test]
    fn a_place_maps_to_the_same_spot_of_every_range() {
        assert_eq!(Jitter::Equal.at(MS(1000), 0), MS(500));
        assert_eq!(Jitter::Equal.at(MS(1000), u64::MAX), MS(1000));
        let middle = u64::MAX / 2;
        assert_eq!(Jitter::Equal.at(MS(1000), middle), MS(750));
        assert_eq!(Jitter::Equal.at(MS(2000), middle), MS(1500));
        assert_eq!(Jitter::Full.at(MS(2000), middle), MS(1000));
        assert_eq!(Jitter::Full.at(MS(2000), u64::MAX), MS(2000));
        // apply() is at() with a fresh place.
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        let d = Jitter::Equal.apply(MS(1000), &mut a);
        assert_eq!(d, Jitter::Equal.at(MS(1000), b.next_u64()));
    }
}
