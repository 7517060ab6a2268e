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
    /// Each attempt waits between the previous attempt's delay and its own: `[d/2, d]`
    /// when delays double, `[0, d]` for the first retry of an outage, `[d/2, d]` once
    /// the delay stops growing. A client draws its place in those ranges once per
    /// outage and keeps it for every attempt, so its retries fall at the same share of
    /// consecutive spans of time (`[0, d1]`, `[d1, d1 + d2]`, ...) that together cover
    /// it without a gap. Each attempt is due a delay after the previous one was due,
    /// not after its failure arrived, so a slow failure (a connect timeout, a driver
    /// busy with thousands of peers dropped at once) does not move the schedule; a
    /// failure that arrives after the next attempt was due waits half that range's
    /// low end. Whenever the server comes back, its clients return in the
    /// order of their places, spread over one delay, instead of piling up as sums of
    /// independent draws; after the first retry every wait keeps at least half its
    /// delay, so no client retries in a tight loop.
    Equal,
}

impl Jitter {
    /// One delay `d` jittered on its own, its place drawn from `rng`: `Equal` in
    /// `[d/2, d]`, `Full` in `[0, d]`.
    pub fn apply(self, d: Duration, rng: &mut Rng) -> Duration {
        let range = match self {
            Jitter::None => return d,
            Jitter::Full => (Duration::ZERO, d),
            Jitter::Equal => (half(d), d),
        };
        at(range, rng.next_u64())
    }

    /// The range the delay before reconnect attempt `attempt` (1-based) of an outage
    /// falls in: lowest and highest.
    pub fn range(self, backoff: &Backoff, attempt: u32) -> (Duration, Duration) {
        let d = backoff.delay(attempt);
        match self {
            Jitter::None => (d, d),
            Jitter::Full => (Duration::ZERO, d),
            Jitter::Equal if attempt <= 1 => (Duration::ZERO, d),
            Jitter::Equal => {
                let previous = backoff.delay(attempt - 1);
                (if previous < d { previous } else { half(d) }, d)
            }
        }
    }

    /// The delay before attempt `attempt` for a client at `place` in its range (0 the
    /// low end, `u64::MAX` the high end): the same place for every attempt of an
    /// outage with `Equal`, a fresh one for each with `Full`.
    pub fn delay(self, backoff: &Backoff, attempt: u32, place: u64) -> Duration {
        at(self.range(backoff, attempt), place)
    }
}

/// The upper half's start, to the millisecond (501 ms of 1001 ms).
fn half(d: Duration) -> Duration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(ms - ms / 2)
}

/// The point at `place` of `[lo, hi]`, to the millisecond: millisecond resolution is
/// plenty for reconnect delays and keeps the arithmetic in integers.
fn at((lo, hi): (Duration, Duration), place: u64) -> Duration {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (lo, span) = (ms(lo), ms(hi).saturating_sub(ms(lo)));
    // `place` scaled to `0..=span` by multiply-shift, as in `Rng::below_inclusive`.
    let scaled = ((u128::from(place) * (u128::from(span) + 1)) >> 64) as u64;
    Duration::from_millis(lo.saturating_add(scaled))
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
    fn equal_ranges_cover_the_timeline_without_gaps() {
        let b = Backoff::exponential(MS(1000), MS(4000));
        let ranges: Vec<_> = (1..=5).map(|n| Jitter::Equal.range(&b, n)).collect();
        assert_eq!(
            ranges,
            vec![
                (MS(0), MS(1000)),
                (MS(1000), MS(2000)),
                (MS(2000), MS(4000)),
                (MS(2000), MS(4000)),
                (MS(2000), MS(4000)),
            ]
        );
        // A client at one place: its retries fall at that share of consecutive spans.
        let middle = u64::MAX / 2;
        let delays: Vec<_> = (1..=3)
            .map(|n| Jitter::Equal.delay(&b, n, middle))
            .collect();
        assert_eq!(delays, vec![MS(500), MS(1500), MS(3000)]);
        assert_eq!(Jitter::Equal.delay(&b, 2, 0), MS(1000));
        assert_eq!(Jitter::Equal.delay(&b, 2, u64::MAX), MS(2000));
        assert_eq!(Jitter::Full.range(&b, 3), (MS(0), MS(4000)));
        assert_eq!(Jitter::None.delay(&b, 3, middle), MS(4000));
        // A fixed delay keeps the upper half after the first retry.
        let f = Backoff::Fixed(MS(1000));
        assert_eq!(Jitter::Equal.range(&f, 1), (MS(0), MS(1000)));
        assert_eq!(Jitter::Equal.range(&f, 2), (MS(500), MS(1000)));
    }
}
