//! One connection to a backplane server (a Redis server), as a machine: when to
//! connect, how long connecting, a write or an answer may take, when to ask a silent
//! server whether it is there, when an unanswered question means it is gone, and how
//! long to wait before the next attempt. A backplane's IO thread reports what
//! happened, with the time, and does what [`BackplaneLink::poll`] says.

use std::time::{Duration, Instant};

use crate::Backoff;

/// The timings of a [`BackplaneLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// How long connecting, a write or an answer to a probe may take before the
    /// connection counts as lost. Default 2 s: a backplane server answers in well
    /// under a millisecond on a healthy network; two seconds without an answer is a
    /// dead server or path.
    pub io_timeout: Duration,
    /// Silence after which the link asks the server whether it is there (Redis
    /// `PING`); `None` never asks (a connection that only writes learns of a dead
    /// server from its writes). Default 1 s, the cluster's heartbeat: a live cluster
    /// is never silent that long.
    pub idle_probe: Option<Duration>,
    /// The waits between failed attempts. Default 100 ms doubling to 2 s: a restarted
    /// server is back within a fraction of a second, an absent one is asked every 2 s.
    /// A link lost after it had been up for at least the first wait tries again at
    /// once.
    pub retry: Backoff,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            io_timeout: Duration::from_secs(2),
            idle_probe: Some(Duration::from_secs(1)),
            retry: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2)),
        }
    }
}

/// What the link's IO does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStep {
    /// Connect (and subscribe) by `deadline`, then report
    /// [`BackplaneLink::connected`] or [`BackplaneLink::failed`].
    Connect {
        /// When the attempt has failed.
        deadline: Instant,
    },
    /// Ask the server whether it is there; its answer is due by `deadline`. Report
    /// [`BackplaneLink::heard`] or [`BackplaneLink::failed`].
    Probe {
        /// When the missing answer means the server is gone.
        deadline: Instant,
    },
    /// Drop the connection (or the attempt): a probe went unanswered, or an attempt
    /// outlived its deadline. The link is down already and retries per its backoff.
    Drop {
        /// The link was up: a loss to report.
        lost: bool,
    },
    /// Nothing to do until `until` (`None`: until something happens). An open
    /// connection is read meanwhile; what arrives is reported with
    /// [`BackplaneLink::heard`].
    Wait {
        /// When to poll again.
        until: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down {
        retry_at: Instant,
    },
    Connecting {
        deadline: Instant,
    },
    Up {
        since: Instant,
        heard: Instant,
        probe: Option<Instant>,
    },
}

/// The state of one backplane connection. Sans-IO: every method takes the current
/// time, and the only wait is the one [`BackplaneLink::poll`] names.
#[derive(Debug, Clone)]
pub struct BackplaneLink {
    config: LinkConfig,
    state: State,
    /// Attempts that failed since the link was last up long enough.
    failures: u32,
}

impl BackplaneLink {
    /// A link that is down and connects at the first [`BackplaneLink::poll`].
    pub fn new(config: LinkConfig, now: Instant) -> BackplaneLink {
        BackplaneLink {
            config,
            state: State::Down { retry_at: now },
            failures: 0,
        }
    }

    /// The timings in force.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Whether the connection is up.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> LinkStep {
        match self.state {
            State::Down { retry_at } if now < retry_at => LinkStep::Wait {
                until: Some(retry_at),
            },
            State::Down { .. } => {
                let deadline = now + self.config.io_timeout;
                self.state = State::Connecting { deadline };
                LinkStep::Connect { deadline }
            }
            State::Connecting { deadline } if now < deadline => LinkStep::Wait {
                until: Some(deadline),
            },
            State::Connecting { .. } => LinkStep::Drop {
                lost: self.failed(now),
            },
            State::Up {
                since,
                heard,
                probe: None,
            } => match self.config.idle_probe.map(|idle| heard + idle) {
                Some(at) if now >= at => {
                    let deadline = now + self.config.io_timeout;
                    self.state = State::Up {
                        since,
                        heard,
                        probe: Some(deadline),
                    };
                    LinkStep::Probe { deadline }
                }
                until => LinkStep::Wait { until },
            },
            State::Up {
                probe: Some(deadline),
                ..
            } if now < deadline => LinkStep::Wait {
                until: Some(deadline),
            },
            State::Up { .. } => LinkStep::Drop {
                lost: self.failed(now),
            },
        }
    }

    /// The connection is up (connected and subscribed).
    pub fn connected(&mut self, now: Instant) {
        self.state = State::Up {
            since: now,
            heard: now,
            probe: None,
        };
    }

    /// The server was heard from (a message, or the answer to a probe): it is there.
    pub fn heard(&mut self, now: Instant) {
        if let State::Up { since, .. } = self.state {
            self.state = State::Up {
                since,
                heard: now,
                probe: None,
            };
        }
    }

    /// The attempt or the connection failed. `true` if the link was up: a loss to
    /// report.
    pub fn failed(&mut self, now: Instant) -> bool {
        let retry_at = match self.state {
            State::Up { since, .. }
                if now.saturating_duration_since(since) >= self.first_wait() =>
            {
                self.failures = 0;
                now
            }
            _ => {
                self.failures = self.failures.saturating_add(1);
                now + self.config.retry.delay(self.failures)
            }
        };
        let was_up = self.is_up();
        self.state = State::Down { retry_at };
        was_up
    }

    /// Starts afresh: down, connecting at the next poll (another connection to the
    /// same server went down or came back).
    pub fn restart(&mut self, now: Instant) {
        self.failures = 0;
        self.state = State::Down { retry_at: now };
    }

    fn first_wait(&self) -> Duration {
        self.config.retry.delay(1)
    }
}
