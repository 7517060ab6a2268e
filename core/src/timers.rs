//! One table of named deadlines, the only timer state a machine keeps.

use std::time::Instant;

/// A fixed set of deadlines indexed by a small enum (`T as usize`).
///
/// [`TimerTable::next`] is the single deadline a driver waits for, and
/// [`TimerTable::first_due`] walks the table in index order, so simultaneous deadlines
/// are always handled in the same order.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable<const N: usize> {
    at: [Option<Instant>; N],
}

impl<const N: usize> TimerTable<N> {
    pub(crate) const fn new() -> Self {
        TimerTable { at: [None; N] }
    }

    pub(crate) fn set(&mut self, timer: usize, at: Instant) {
        self.at[timer] = Some(at);
    }

    pub(crate) fn clear(&mut self, timer: usize) {
        self.at[timer] = None;
    }

    pub(crate) fn get(&self, timer: usize) -> Option<Instant> {
        self.at[timer]
    }

    pub(crate) fn clear_all(&mut self) {
        self.at = [None; N];
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The lowest-indexed timer whose deadline is at or before `now`; it is cleared.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<usize> {
        let i = self.at.iter().position(|t| t.is_some_and(|t| t <= now))?;
        self.at[i] = None;
        Some(i)
    }
}
