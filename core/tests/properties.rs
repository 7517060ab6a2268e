//! Property tests: random event sequences against the invariants a user relies on.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use heartline_core::{
    Action, AppHeartbeat, Backoff, Client, ClientConfig, ConnId, ConnectError, Event, Frame,
    HeartbeatKind, Jitter, Message, Notice,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Advance the clock by this many ms and handle timeouts.
    Advance(u16),
    /// Jump to the next deadline.
    Fire,
    /// Events for the current connection (or, with `old`, the one before it).
    Connected {
        old: bool,
    },
    Refused {
        old: bool,
    },
    Http {
        old: bool,
        status: u16,
        retry_after_ms: Option<u32>,
    },
    Text {
        old: bool,
    },
    PongForLastPing {
        old: bool,
    },
    ServerPing {
        old: bool,
    },
    RemoteClose {
        old: bool,
        code: u16,
    },
    Disconnected {
        old: bool,
    },
    Send(u8),
    Close,
    ReconnectNow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..3000).prop_map(Op::Advance),
        4 => Just(Op::Fire),
        3 => any::<bool>().prop_map(|old| Op::Connected { old }),
        2 => any::<bool>().prop_map(|old| Op::Refused { old }),
        1 => (any::<bool>(), prop::sample::select(vec![401u16, 404, 429, 500, 503]),
              prop::option::of(0u32..400_000))
            .prop_map(|(old, status, retry_after_ms)| Op::Http { old, status, retry_after_ms }),
        2 => any::<bool>().prop_map(|old| Op::Text { old }),
        2 => any::<bool>().prop_map(|old| Op::PongForLastPing { old }),
        1 => any::<bool>().prop_map(|old| Op::ServerPing { old }),
        1 => (any::<bool>(), prop::sample::select(vec![1000u16, 1001, 1008, 1012, 4409]))
            .prop_map(|(old, code)| Op::RemoteClose { old, code }),
        2 => any::<bool>().prop_map(|old| Op::Disconnected { old }),
        2 => any::<u8>().prop_map(Op::Send),
        1 => Just(Op::Close),
        1 => Just(Op::ReconnectNow),
    ]
}

fn config() -> impl Strategy<Value = ClientConfig> {
    (
        prop::sample::select(vec![0u8, 1, 2]),
        any::<bool>(),
        prop::sample::select(vec![Jitter::None, Jitter::Full, Jitter::Equal]),
        any::<bool>(),
        prop::option::of(0u32..5),
        10u64..3000,
    )
        .prop_map(|(kind, any_frame, jitter, exp, max_attempts, base)| {
            let mut c = ClientConfig::default();
            c.heartbeat.kind = match kind {
                0 => HeartbeatKind::Protocol,
                1 => HeartbeatKind::App(AppHeartbeat::text("ping", "pong")),
                _ => HeartbeatKind::Off,
            };
            c.heartbeat.any_frame_is_alive = any_frame;
            c.heartbeat.interval = Duration::from_millis(1000);
            c.heartbeat.timeout = Duration::from_millis(400);
            c.reconnect.backoff = if exp {
                Backoff::exponential(Duration::from_millis(base), Duration::from_millis(base * 8))
            } else {
                Backoff::Fixed(Duration::from_millis(base))
            };
            c.reconnect.jitter = jitter;
            c.reconnect.max_attempts = max_attempts;
            c.reconnect.stable_after = Duration::from_millis(2500);
            c.reconnect.retry_after_cap = Duration::from_millis(60_000);
            c.connect_timeout = Duration::from_millis(1500);
            c.close_timeout = Duration::from_millis(700);
            c
        })
}

/// The driver's view of connections, to check what the core asks of it.
#[derive(Default)]
struct World {
    /// Connections the core started and that have not ended (from either side's report).
    live: HashSet<ConnId>,
    last_ping: Option<Vec<u8>>,
    closed_by_app: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_event_sequence(config in config(), seed: u64, ops in prop::collection::vec(op(), 1..120)) {
        let start = Instant::now();
        let mut now = start;
        let rc = config.reconnect.clone();
        let mut client = Client::new(config, seed, start).unwrap();
        let mut world = World::default();
        let mut issued: Vec<ConnId> = Vec::new();

        let drain = |client: &mut Client, world: &mut World, issued: &mut Vec<ConnId>| -> Result<(), TestCaseError> {
            while let Some(action) = client.poll_action() {
                match action {
                    Action::Connect { conn, attempt, .. } => {
                        prop_assert!(!world.closed_by_app, "connect after close()");
                        prop_assert!(world.live.is_empty(), "two attempts in flight: {:?} and {conn}", world.live);
                        prop_assert!(issued.last().is_none_or(|l| conn > *l), "connection ids must grow");
                        if let Some(max) = rc.max_attempts {
                            prop_assert!(attempt <= max);
                        }
                        world.live.insert(conn);
                        issued.push(conn);
                    }
                    Action::Abort { conn } => { world.live.remove(&conn); }
                    Action::SendPing { payload, .. } => {
                        prop_assert!(!world.closed_by_app);
                        world.last_ping = Some(payload.as_bytes().to_vec());
                    }
                    Action::SendHeartbeat { .. } => prop_assert!(!world.closed_by_app),
                    Action::Send { conn, .. } => {
                        prop_assert!(world.live.contains(&conn), "send on a connection that is gone");
                    }
                    Action::Close { .. } => {}
                }
            }
            while let Some(notice) = client.poll_notice() {
                if let Notice::ReconnectScheduled { attempt, delay } = notice {
                    prop_assert!(attempt >= 1);
                    let capped = rc.backoff.delay(attempt);
                    let lo = rc.jitter.lower_bound(capped);
                    let hi = capped.max(rc.retry_after_cap);
                    prop_assert!(delay >= lo && delay <= hi, "delay {delay:?} outside [{lo:?}, {hi:?}]");
                    prop_assert!(!world.closed_by_app);
                }
            }
            Ok(())
        };
        drain(&mut client, &mut world, &mut issued)?;

        for op in ops {
            let pick = |old: bool, client: &Client| -> Option<ConnId> {
                if old {
                    issued.iter().rev().nth(1).copied()
                } else {
                    client.current_conn()
                }
            };
            match op {
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    client.handle_timeout(now);
                    prop_assert!(client.poll_timeout().is_none_or(|d| d > now), "deadline not moved past {now:?}");
                }
                Op::Fire => {
                    if let Some(d) = client.poll_timeout() {
                        now = now.max(d);
                        client.handle_timeout(now);
                        prop_assert!(client.poll_timeout().is_none_or(|d| d > now), "busy loop: deadline stuck");
                    }
                }
                Op::Connected { old } => if let Some(c) = pick(old, &client) {
                    if world.live.contains(&c) { client.handle_event(now, Event::Connected(c)); }
                },
                Op::Refused { old } => if let Some(c) = pick(old, &client) {
                    client.handle_event(now, Event::ConnectFailed(c, ConnectError::Io("refused")));
                    world.live.remove(&c);
                },
                Op::Http { old, status, retry_after_ms } => if let Some(c) = pick(old, &client) {
                    let retry_after = retry_after_ms.map(|m| Duration::from_millis(u64::from(m)));
                    client.handle_event(now, Event::ConnectFailed(c, ConnectError::Http { status, retry_after }));
                    world.live.remove(&c);
                },
                Op::Text { old } => if let Some(c) = pick(old, &client) {
                    client.handle_event(now, Event::Frame(c, Frame::Text("pong")));
                },
                Op::PongForLastPing { old } => if let (Some(c), Some(p)) = (pick(old, &client), world.last_ping.clone()) {
                    client.handle_event(now, Event::Frame(c, Frame::Pong(&p)));
                },
                Op::ServerPing { old } => if let Some(c) = pick(old, &client) {
                    client.handle_event(now, Event::Frame(c, Frame::Ping(b"s")));
                },
                Op::RemoteClose { old, code } => if let Some(c) = pick(old, &client) {
                    client.handle_event(now, Event::Frame(c, Frame::Close(Some((code, "")))));
                },
                Op::Disconnected { old } => if let Some(c) = pick(old, &client) {
                    client.handle_event(now, Event::Disconnected(c, None));
                    world.live.remove(&c);
                },
                Op::Send(n) => {
                    let r = client.send(now, Message::Binary(vec![n; usize::from(n)]));
                    if world.closed_by_app {
                        prop_assert!(r.is_err(), "send accepted after close()");
                    }
                }
                Op::Close => {
                    client.close(now, 1000, "").unwrap();
                    world.closed_by_app = true;
                }
                Op::ReconnectNow => client.reconnect_now(now),
            }
            drain(&mut client, &mut world, &mut issued)?;
            prop_assert!(client.current_conn().is_none_or(|c| Some(&c) == issued.last()));
        }
        // Whatever happened, after close() the client winds down within the close timeout.
        client.close(now, 1000, "").unwrap();
        world.closed_by_app = true;
        drain(&mut client, &mut world, &mut issued)?;
        now += Duration::from_secs(1);
        client.handle_timeout(now);
        drain(&mut client, &mut world, &mut issued)?;
        prop_assert!(client.is_closed());
        prop_assert_eq!(client.poll_timeout(), None);
    }
}
