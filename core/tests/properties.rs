//! Property tests: random event sequences against the invariants a user relies on.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use heartline_core::{
    Action, AppHeartbeat, Backoff, Client, ClientConfig, ConnId, ConnectError, Event, Frame,
    HeartbeatKind, Jitter, Message, Notice, ReadyState,
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
    /// A write to the open connection stalls (the driver stops taking actions until it
    /// goes through or the core gives the connection up), or goes through.
    Stall(bool),
    /// The driver takes what is pending, its first write to the open connection fails:
    /// that message is lost with the connection, the rest of the batch is given back.
    FailWrite,
    /// On an open connection: a write stalls, the application sends `sends` messages
    /// meanwhile, then the connection is lost (a failed write if `fail_write`).
    StalledThenLost {
        sends: u8,
        fail_write: bool,
    },
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
        2 => any::<bool>().prop_map(Op::Stall),
        2 => Just(Op::FailWrite),
        2 => (0u8..6, any::<bool>()).prop_map(|(sends, fail_write)| Op::StalledThenLost { sends, fail_write }),
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
            // A stalled write is given up before most reconnect delays run out.
            c.write_timeout = Duration::from_millis(1500);
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
    /// The connection whose write is stalled: the driver takes no actions (notices
    /// still flow) until the write goes through or the core gives the connection up.
    stalled: Option<ConnId>,
    /// Messages the client accepted, handed to a connection, and reported dropped.
    accepted: usize,
    handed: usize,
    dropped: usize,
}

/// The driver takes what is pending for `c`; the first write fails and is lost with the
/// connection; the rest of the batch goes back to the core; the end is reported.
fn fail_write_on(client: &mut Client, world: &mut World, c: ConnId, now: Instant) {
    let mut taken = std::collections::VecDeque::new();
    client.take_actions(&mut taken);
    let first = taken
        .iter()
        .position(|a| matches!(a, Action::Send { conn, .. } if *conn == c));
    if let Some(first) = first {
        taken.remove(first);
        world.handed += 1;
    }
    client.give_back(c, &mut taken);
    client.handle_event(now, Event::Disconnected(c, Some("broken pipe")));
    world.live.remove(&c);
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
            if world.stalled.is_some() && world.stalled != client.current_conn() {
                world.stalled = None;
            }
            while let Some(action) = if world.stalled.is_some() { None } else { client.poll_action() } {
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
                        world.handed += 1;
                    }
                    Action::Close { .. } => {}
                }
            }
            while let Some(notice) = client.poll_notice() {
                if let Notice::Dropped { messages, .. } = notice {
                    world.dropped += messages;
                }
                if let Notice::ReconnectScheduled { attempt, delay } = notice {
                    prop_assert!(attempt >= 1);
                    let (lo, capped) = rc.jitter.range(&rc.backoff, attempt);
                    // Equal jitter keeps a schedule from the loss: a failure seen late
                    // leaves less of the wait, never under half the range's low end.
                    let lo = if rc.jitter == Jitter::Equal { lo / 2 } else { lo };
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
                    // A driver reports only on connections it started.
                    client.current_conn().filter(|c| issued.contains(c))
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
                    world.accepted += usize::from(r.is_ok());
                }
                Op::Close => {
                    client.close(now, 1000, "").unwrap();
                    world.closed_by_app = true;
                }
                Op::ReconnectNow => client.reconnect_now(now),
                Op::Stall(on) => {
                    if let Some(c) = world.stalled.take() {
                        client.handle_event(now, Event::WriteFlushed(c));
                    }
                    world.stalled = client
                        .current_conn()
                        .filter(|c| on && client.state() == ReadyState::Open && world.live.contains(c));
                    if let Some(c) = world.stalled {
                        client.handle_event(now, Event::WriteBlocked(c));
                    }
                }
                Op::StalledThenLost { sends, fail_write } => {
                    let open = client.current_conn().filter(|c| {
                        client.state() == ReadyState::Open && world.live.contains(c)
                    });
                    if let Some(c) = open {
                        world.stalled = Some(c);
                        for n in 0..sends {
                            let r = client.send(now, Message::Binary(vec![n; usize::from(n)]));
                            world.accepted += usize::from(r.is_ok());
                        }
                        if fail_write {
                            fail_write_on(&mut client, &mut world, c, now);
                        } else {
                            client.handle_event(now, Event::Disconnected(c, None));
                            world.live.remove(&c);
                        }
                    }
                }
                Op::FailWrite => if let Some(c) = client.current_conn().filter(|c| world.live.contains(c)) {
                    fail_write_on(&mut client, &mut world, c, now);
                },
            }
            drain(&mut client, &mut world, &mut issued)?;
            if world.stalled.is_none() {
                prop_assert!(client.current_conn().is_none_or(|c| Some(&c) == issued.last()));
            }
        }
        // Whatever happened, after close() the client winds down within the close timeout.
        world.stalled = None;
        client.close(now, 1000, "").unwrap();
        world.closed_by_app = true;
        drain(&mut client, &mut world, &mut issued)?;
        now += Duration::from_secs(1);
        client.handle_timeout(now);
        drain(&mut client, &mut world, &mut issued)?;
        prop_assert!(client.is_closed());
        prop_assert_eq!(client.poll_timeout(), None);
        // No message is lost silently: each one accepted went to a connection or was
        // reported dropped.
        prop_assert_eq!(world.accepted, world.handed + world.dropped, "accepted = handed + dropped");
    }
}
