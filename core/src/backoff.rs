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
    /// Uniform in `[0, d]`: spreads load best, but may retry at once.
    Full,
    /// Uniform in `[d/2, d]`: spreads load and keeps at least half the wait.
    Equal,
}

impl Jitter {
    /// Applies the jitter to `d`, drawing from `rng`.
    pub fn apply(self, d: Duration, rng: &mut Rng) -> Duration {
        // Millisecond resolution is plenty for reconnect delays and keeps arithmetic in u64.
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self {
            Jitter::None => d,
            Jitter::Full => Duration::from_millis(rng.below_inclusive(ms)),
            Jitter::Equal => {
                let half = ms / 2;
                Duration::from_millis(ms - half + rng.below_inclusive(half))
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
}
