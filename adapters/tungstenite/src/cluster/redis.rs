//! The Redis backplane (feature `redis`): Redis pub/sub carries the cluster's
//! messages.
//!
//! Each node holds two connections to Redis, each on a thread of its own: one
//! subscribed to `<prefix>:all` and `<prefix>:node:<id>`, one publishing. The sync
//! client of the `redis` crate serves every runtime alike, since every heartline server
//! runs the same `mio` loop whatever its runtime: the loop never waits on Redis, it
//! hands messages to a bounded queue and takes what arrives from its inbox.
//!
//! - Redis unreachable (at startup, or later): the node reports the backplane down and
//!   serves its own clients; both threads retry with the core's exponential backoff
//!   (100 ms, doubling to 2 s), and once subscribed again the node reports it up and
//!   the cluster rebuilds presence.
//! - A Redis that stops answering without closing the connection is noticed by a
//!   `PING` after [`IDLE_PING`] of silence, answered within [`IO_TIMEOUT`] or the
//!   connection counts as lost.
//! - What is published while the publishing connection is down, or while the queue
//!   (4,096 messages) is full, is dropped: pub/sub is at most once anyway, and the
//!   cluster machine mends views and times sends out.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use heartline_core::{Backoff, Channel};
use redis::{Client, Connection};

use super::{Backplane, BackplaneEvent, Inbox, Link};

/// How long connecting, a write or an answer to `PING` may take before the
/// connection counts as lost. 2 s: Redis answers in well under a millisecond on a
/// healthy network; two seconds without an answer is a dead server or path.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Silence on the subscription after which the node asks Redis whether it is there.
/// 1 s, as the cluster's heartbeat: a live cluster is never silent that long.
pub const IDLE_PING: Duration = Duration::from_secs(1);
/// How often the subscriber looks up from waiting (to notice that its node left).
const POLL: Duration = Duration::from_millis(250);
/// Messages waiting to be published, at most.
const QUEUE: usize = 4096;
/// Reconnection delays: 100 ms, doubling up to 2 s.
const RETRY: Backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));

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
    Lost(redis::RedisError),
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
        let mut attempt = 0;
        while !self.left.load(Ordering::Relaxed) {
            let mut up = false;
            match self.session(&mut up) {
                Ended::Left => return,
                Ended::Lost(error) => {
                    crate::trace::backplane_lost(&error.to_string());
                    if up {
                        attempt = 0;
                        self.changes.fetch_add(1, Ordering::Relaxed);
                        if !self.inbox.deliver(BackplaneEvent::Down) {
                            return;
                        }
                    }
                }
            }
            if !self.pause(RETRY.delay(attempt)) {
                return;
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// Sleeps `delay` in steps of [`POLL`]; `false` if the node left meanwhile.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while !self.left.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            thread::sleep((until - now).min(POLL));
        }
        false
    }

    /// One connection: subscribe, report up, hand on every message until it fails.
    fn session(&self, up: &mut bool) -> Ended {
        let mut conn = match self.client.get_connection_with_timeout(IO_TIMEOUT) {
            Ok(conn) => conn,
            Err(e) => return Ended::Lost(e),
        };
        let configured = conn
            .set_write_timeout(Some(IO_TIMEOUT))
            .and_then(|()| conn.set_read_timeout(Some(POLL)));
        if let Err(e) = configured {
            return Ended::Lost(e);
        }
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub.subscribe(&self.channels[..]) {
            return Ended::Lost(e);
        }
        *up = true;
        self.changes.fetch_add(1, Ordering::Relaxed);
        if !self.inbox.deliver(BackplaneEvent::Up) {
            return Ended::Left;
        }
        let mut heard = Instant::now();
        loop {
            if self.left.load(Ordering::Relaxed) {
                return Ended::Left;
            }
            match pubsub.get_message() {
                Ok(message) => {
                    heard = Instant::now();
                    let bytes = message.get_payload_bytes().to_vec();
                    if !self.inbox.deliver(BackplaneEvent::Message(bytes)) {
                        return Ended::Left;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if heard.elapsed() >= IDLE_PING {
                        // The answer to PING must come within IO_TIMEOUT.
                        if let Err(e) = pubsub
                            .set_read_timeout(Some(IO_TIMEOUT))
                            .and_then(|()| pubsub.ping::<redis::Value>())
                            .and_then(|_| pubsub.set_read_timeout(Some(POLL)))
                        {
                            return Ended::Lost(e);
                        }
                        heard = Instant::now();
                    }
                }
                Err(e) => return Ended::Lost(e),
            }
        }
    }
}

struct Publisher {
    backplane: Redis,
    rx: Receiver<(Channel, Vec<u8>)>,
    changes: Arc<AtomicU64>,
}

impl Publisher {
    fn run(self) {
        let mut conn: Option<Connection> = None;
        let mut attempt = 0;
        let mut retry_at = Instant::now();
        let mut seen = 0;
        while let Ok((channel, bytes)) = self.rx.recv() {
            let changes = self.changes.load(Ordering::Relaxed);
            if changes != seen {
                // The subscription went down or came back: so did Redis for this
                // connection, most likely. Start afresh now.
                seen = changes;
                conn = None;
                attempt = 0;
                retry_at = Instant::now();
            }
            if conn.is_none() && Instant::now() >= retry_at {
                match self.connect() {
                    Ok(c) => {
                        conn = Some(c);
                        attempt = 0;
                    }
                    Err(e) => {
                        crate::trace::backplane_lost(&e.to_string());
                        retry_at = Instant::now() + RETRY.delay(attempt);
                        attempt = attempt.saturating_add(1);
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
                retry_at = Instant::now();
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<Connection> {
        let conn = self
            .backplane
            .client
            .get_connection_with_timeout(IO_TIMEOUT)?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }
}
