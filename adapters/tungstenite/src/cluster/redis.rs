//! The Redis backplane (feature `redis`): Redis pub/sub carries the cluster's
//! messages.
//!
//! Each node holds two connections to Redis, each on a thread of its own: one
//! subscribed to `<prefix>:all` and `<prefix>:node:<id>`, one publishing. The sync
//! client of the `redis` crate serves every runtime alike, since every heartline server
//! runs the same `mio` loop whatever its runtime: the loop never waits on Redis, it
//! hands messages to a bounded queue and takes what arrives from its inbox.
//!
//! - When to connect, how long connecting, a write or an answer may take, when a
//!   silent Redis is asked whether it is there and how long to wait before trying
//!   again are [`BackplaneLink`]'s decisions (the core's), with
//!   [`LinkConfig::default`]'s timings: 2 s for IO, a `PING` after 1 s of silence on
//!   the subscription, retries 100 ms doubling to 2 s. These threads only carry them
//!   out.
//! - Redis unreachable (at startup, or later): the node reports the backplane down and
//!   serves its own clients; once subscribed again the node reports it up and the
//!   cluster rebuilds presence.
//! - What is published while the publishing connection is down, or while the queue
//!   (4,096 messages) is full, is dropped: pub/sub is at most once anyway, and the
//!   cluster machine mends views and times sends out.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{BackplaneLink, Channel, LinkConfig, LinkStep};
use redis::{Client, Connection};

use super::{Backplane, BackplaneEvent, Inbox, Link};

/// How often the subscriber looks up from reading or waiting, to notice that its node
/// left (a thread's own stop signal, not a judgement of Redis).
const POLL: Duration = Duration::from_millis(250);
/// Messages waiting to be published, at most.
const QUEUE: usize = 4096;

/// A backplane on a Redis server's pub/sub.
#[derive(Debug, Clone)]
pub struct Redis {
    client: Client,
    prefix: String,
}

impl Redis {
    /// The Redis server at `url` (`redis://HOST:PORT`, `redis://:PASSWORD@HOST/DB`).
    /// Nothing connects until a server joins; a URL that does not parse is an
    /// `InvalidInput` error.
    pub fn open(url: &str) -> io::Result<Redis> {
        let client = Client::open(url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
        Ok(Redis {
            client,
            prefix: "heartline".to_owned(),
        })
    }

    /// Names the channels `<prefix>:all` and `<prefix>:node:<id>` (default
    /// `heartline`): clusters that share a Redis server need different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn channel(&self, channel: &Channel) -> String {
        match channel {
            Channel::All => format!("{}:all", self.prefix),
            Channel::Node(node) => format!("{}:node:{node}", self.prefix),
        }
    }
}

impl Backplane for Redis {
    fn join(&self, node: &str, inbox: Inbox) -> io::Result<Box<dyn Link>> {
        let left = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicU64::new(0));
        let channels = [
            self.channel(&Channel::All),
            self.channel(&Channel::Node(node.to_owned())),
        ];
        let subscriber = Subscriber {
            client: self.client.clone(),
            channels,
            inbox,
            left: left.clone(),
            changes: changes.clone(),
        };
        thread::Builder::new()
            .name(format!("heartline-redis-sub-{node}"))
            .spawn(move || subscriber.run())?;
        let (queue, rx) = mpsc::sync_channel(QUEUE);
        let publisher = Publisher {
            backplane: self.clone(),
            rx,
            changes,
        };
        thread::Builder::new()
            .name(format!("heartline-redis-pub-{node}"))
            .spawn(move || publisher.run())?;
        Ok(Box::new(RedisLink { queue, left }))
    }
}

struct RedisLink {
    queue: SyncSender<(Channel, Vec<u8>)>,
    left: Arc<AtomicBool>,
}

impl Link for RedisLink {
    fn publish(&mut self, channel: &Channel, bytes: Vec<u8>) {
        match self.queue.try_send((channel.clone(), bytes)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                crate::trace::backplane_dropped("the publish queue is full");
            }
            Err(TrySendError::Disconnected(_)) => {
                crate::trace::backplane_dropped("the publisher has stopped");
            }
        }
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        // The publisher ends with the queue; the subscriber looks up within POLL.
        self.left.store(true, Ordering::Relaxed);
    }
}

/// How a subscription ended.
enum Ended {
    /// The node left, or its loop stopped.
    Left,
    /// The connection failed or never came up.
    Lost(String),
    /// Redis did not answer a probe in time: the link has already counted the loss
    /// (`true` if it was up).
    Dropped(bool),
}

struct Subscriber {
    client: Client,
    channels: [String; 2],
    inbox: Inbox,
    left: Arc<AtomicBool>,
    /// Counts the subscription's ups and downs, for the publisher: its connection
    /// went the same way, so it reconnects at once rather than at its next retry.
    changes: Arc<AtomicU64>,
}

impl Subscriber {
    fn run(self) {
        let mut link = BackplaneLink::new(LinkConfig::default(), Instant::now());
        while !self.left.load(Ordering::Relaxed) {
            match link.poll(Instant::now()) {
                LinkStep::Connect { deadline } => match self.session(&mut link, deadline) {
                    Ended::Left => return,
                    Ended::Lost(error) => {
                        crate::trace::backplane_lost(&error);
                        if link.failed(Instant::now()) && !self.down() {
                            return;
                        }
                    }
                    Ended::Dropped(lost) => {
                        crate::trace::backplane_lost("Redis did not answer PING in time");
                        if lost && !self.down() {
                            return;
                        }
                    }
                },
                LinkStep::Wait { until } => self.pause(until),
                // Only an open connection is probed or dropped, inside `session`.
                LinkStep::Probe { .. } | LinkStep::Drop { .. } => {}
            }
        }
    }

    /// Reports the subscription down; `false` if the node's loop is gone.
    fn down(&self) -> bool {
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.inbox.deliver(BackplaneEvent::Down)
    }

    /// Sleeps until `until` or for [`POLL`], whichever is sooner.
    fn pause(&self, until: Option<Instant>) {
        let now = Instant::now();
        let wait = until.map_or(POLL, |at| at.saturating_duration_since(now).min(POLL));
        thread::sleep(wait);
    }

    /// One connection: subscribe by `deadline`, report up, hand on every message, ask
    /// a silent Redis whether it is there when the link says so, until it fails.
    fn session(&self, link: &mut BackplaneLink, deadline: Instant) -> Ended {
        let io_timeout = link.config().io_timeout;
        let mut conn = match self
            .client
            .get_connection_with_timeout(left_until(deadline))
        {
            Ok(conn) => conn,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let configured = conn
            .set_write_timeout(Some(io_timeout))
            .and_then(|()| conn.set_read_timeout(Some(left_until(deadline))));
        if let Err(e) = configured {
            return Ended::Lost(e.to_string());
        }
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub.subscribe(&self.channels[..]) {
            return Ended::Lost(e.to_string());
        }
        link.connected(Instant::now());
        self.changes.fetch_add(1, Ordering::Relaxed);
        if !self.inbox.deliver(BackplaneEvent::Up) {
            return Ended::Left;
        }
        loop {
            if self.left.load(Ordering::Relaxed) {
                return Ended::Left;
            }
            let (read_until, probe) = match link.poll(Instant::now()) {
                LinkStep::Wait { until } => (until, false),
                LinkStep::Probe { deadline } => (Some(deadline), true),
                LinkStep::Drop { lost } => return Ended::Dropped(lost),
                // Not while up; should it happen, this connection is done.
                LinkStep::Connect { .. } => return Ended::Dropped(false),
            };
            let timeout = read_until.map_or(POLL, |at| {
                let left = left_until(at);
                if probe {
                    left
                } else {
                    left.min(POLL)
                }
            });
            if let Err(e) = pubsub.set_read_timeout(Some(timeout)) {
                return Ended::Lost(e.to_string());
            }
            if probe {
                // The answer must come by the probe's deadline (the read timeout).
                match pubsub.ping::<redis::Value>() {
                    Ok(_) => link.heard(Instant::now()),
                    Err(e) => return Ended::Lost(e.to_string()),
                }
                continue;
            }
            match pubsub.get_message() {
                Ok(message) => {
                    link.heard(Instant::now());
                    let bytes = message.get_payload_bytes().to_vec();
                    if !self.inbox.deliver(BackplaneEvent::Message(bytes)) {
                        return Ended::Left;
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Ended::Lost(e.to_string()),
            }
        }
    }
}

/// The time left until `at`, at least a millisecond (a zero socket timeout means
/// none at all).
fn left_until(at: Instant) -> Duration {
    at.saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

struct Publisher {
    backplane: Redis,
    rx: Receiver<(Channel, Vec<u8>)>,
    changes: Arc<AtomicU64>,
}

impl Publisher {
    fn run(self) {
        // A connection that only writes: its writes time out, nothing probes it.
        let mut config = LinkConfig::default();
        config.idle_probe = None;
        let mut link = BackplaneLink::new(config, Instant::now());
        let mut conn: Option<Connection> = None;
        let mut seen = 0;
        while let Ok((channel, bytes)) = self.rx.recv() {
            let changes = self.changes.load(Ordering::Relaxed);
            if changes != seen {
                // The subscription went down or came back: so did Redis for this
                // connection, most likely. Start afresh now.
                seen = changes;
                conn = None;
                link.restart(Instant::now());
            }
            if conn.is_none() {
                if let LinkStep::Connect { deadline } = link.poll(Instant::now()) {
                    match self.connect(deadline, link.config().io_timeout) {
                        Ok(c) => {
                            conn = Some(c);
                            link.connected(Instant::now());
                        }
                        Err(e) => {
                            crate::trace::backplane_lost(&e.to_string());
                            link.failed(Instant::now());
                        }
                    }
                }
            }
            let Some(c) = conn.as_mut() else {
                crate::trace::backplane_dropped("Redis is unreachable");
                continue;
            };
            let published = redis::cmd("PUBLISH")
                .arg(self.backplane.channel(&channel))
                .arg(bytes)
                .query::<i64>(c);
            if let Err(e) = published {
                crate::trace::backplane_lost(&e.to_string());
                conn = None;
                link.failed(Instant::now());
            }
        }
    }

    fn connect(&self, deadline: Instant, io_timeout: Duration) -> redis::RedisResult<Connection> {
        let conn = self
            .backplane
            .client
            .get_connection_with_timeout(left_until(deadline))?;
        conn.set_write_timeout(Some(io_timeout))?;
        conn.set_read_timeout(Some(io_timeout))?;
        Ok(conn)
    }
}
