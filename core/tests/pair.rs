//! Client machines and a server machine wired together in virtual time (the `Pair`
//! harness in `common/pair.rs`): half-open connections in each direction, a server
//! restart under 1,000 clients, replacement by name, a slow consumer and a shutdown,
//! over a network with seeded latency and loss. The same seed gives the same trace.

mod common;

use std::time::Duration;

use common::ms;
use common::pair::{Net, Pair};
use heartline_core::{
    close_code, Backoff, ClientConfig, EvictReason, GiveUpReason, Initiator, Jitter, Message,
    Notice, ServerConfig, ServerNotice,
};

/// Clients that ping after 1 s of quiet and give the server 500 ms to answer, with
/// equal-jitter backoff from 200 ms to 5 s.
fn client_config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.heartbeat.interval = ms(1000);
    c.heartbeat.timeout = ms(500);
    c.reconnect.backoff = Backoff::exponential(ms(200), ms(5000));
    c.reconnect.jitter = Jitter::Equal;
    c.connect_timeout = ms(2000);
    c.close_timeout = ms(1000);
    c
}

/// A server that pings after 1 s of quiet and evicts after 3 s of silence.
fn server_config() -> ServerConfig {
    let mut built = ServerConfig::default();
    built.ping_interval = ms(1000);
    built.idle_timeout = ms(3000);
    built.handshake_timeout = ms(1000);
    built.close_timeout = ms(500);
    built.write_timeout = ms(1000);
    built
}

/// A pair with `n` clients named `c0`, `c1`..., run until they are all open.
fn open_pair(seed: u64, n: usize) -> Pair {
    let mut pair = Pair::new(seed, Net::default(), server_config());
    for i in 0..n {
        pair.add_client(&format!("c{i}"), client_config());
    }
    pair.run_for(ms(1500));
    for i in 0..n {
        assert_eq!(pair.server_conns_of(i), 1, "client {i} is connected once");
    }
    pair
}

/// When client `i` first got `wanted` at or after `since`.
fn first_notice(
    pair: &Pair,
    i: usize,
    since: Duration,
    wanted: impl Fn(&Notice) -> bool,
) -> Option<Duration> {
    pair.clients[i]
        .notices
        .iter()
        .find(|(t, n)| *t >= since && wanted(n))
        .map(|(t, _)| *t)
}

/// The worst a packet takes here: the slowest latency plus one retransmission.
fn worst_trip() -> Duration {
    let net = Net::default();
    net.latency.1 + net.retransmit
}

#[test]
fn a_frozen_server_is_detected_by_the_heartbeat_and_left() {
    let mut pair = open_pair(1, 1);
    let frozen_at = pair.elapsed();
    pair.set_server_frozen(true);
    pair.run_for(ms(5000));

    // The client's last sign of life came before the freeze (or was on its way):
    // within one quiet interval it pings, and after the timeout it gives up.
    let missed = first_notice(&pair, 0, frozen_at, |n| {
        matches!(n, Notice::HeartbeatMissed { .. })
    })
    .expect("the client noticed the dead server");
    let bound = ms(1000) + ms(500) + worst_trip();
    assert!(
        missed - frozen_at <= bound,
        "noticed after {:?}, bound {bound:?}",
        missed - frozen_at
    );
    assert!(first_notice(&pair, 0, missed, |n| matches!(
        n,
        Notice::ReconnectScheduled { .. }
    ))
    .is_some());

    // The server comes back: its stale sockets are reset, the client is in once.
    pair.set_server_frozen(false);
    pair.run_for(ms(10_000));
    assert_eq!(pair.server_conns_of(0), 1);
    assert_eq!(
        pair.clients[0].client.state(),
        heartline_core::ReadyState::Open
    );
}

#[test]
fn a_partition_is_detected_on_both_sides_and_heals() {
    let mut pair = open_pair(2, 1);
    let cut_at = pair.elapsed();
    pair.set_partitioned(0, true);
    pair.run_for(ms(5000));

    let missed = first_notice(&pair, 0, cut_at, |n| {
        matches!(n, Notice::HeartbeatMissed { .. })
    })
    .expect("the client noticed the partition");
    assert!(missed - cut_at <= ms(1000) + ms(500) + worst_trip());
    // The server's side is half-open too: it evicts the silent client at its idle
    // deadline, which counts from the last frame that crossed before the cut.
    let evicted = pair
        .server_notices
        .iter()
        .find(|(_, n)| {
            matches!(
                n,
                ServerNotice::Closed {
                    evicted: Some(EvictReason::Idle),
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .expect("the server evicted the unreachable client");
    assert!(
        evicted - cut_at <= ms(3000) + ms(100),
        "evicted {:?} after the cut",
        evicted - cut_at
    );
    assert_eq!(pair.server.as_ref().map(|s| s.lookup("c0")), Some(None));

    pair.set_partitioned(0, false);
    pair.run_for(ms(15_000));
    assert_eq!(pair.server_conns_of(0), 1, "back, once");
}

#[test]
fn a_suspended_client_is_evicted_and_comes_back_once_it_wakes() {
    let mut pair = open_pair(3, 2);
    let frozen_at = pair.elapsed();
    pair.set_frozen(0, true);
    pair.run_for(ms(6000));
    let evicted = pair
        .server_notices
        .iter()
        .find(|(_, n)| {
            matches!(n, ServerNotice::Closed { name: Some(name), evicted: Some(EvictReason::Idle), .. } if &**name == "c0")
        })
        .map(|(t, _)| *t)
        .expect("the server evicted the frozen client");
    assert!(evicted - frozen_at <= ms(3000) + ms(100));
    assert_eq!(pair.server_conns_of(1), 1, "the other client is untouched");

    // The laptop wakes: it reads the eviction waiting in its socket and reconnects.
    pair.set_frozen(0, false);
    pair.run_for(ms(10_000));
    let closed = pair.clients[0].notices.iter().find_map(|(_, n)| match n {
        Notice::Closed { code, .. } => Some(*code),
        _ => None,
    });
    assert_eq!(closed, Some(close_code::IDLE_TIMEOUT));
    assert_eq!(pair.server_conns_of(0), 1);
}

/// Kills the server under 1,000 open clients, restarts it a second later, and checks
/// that every client is back exactly once; returns when each reopened and the most
/// reopens in one 100 ms window.
fn restart_herd(jitter: Jitter) -> (Vec<Duration>, usize) {
    const CLIENTS: usize = 1000;
    let mut config = client_config();
    config.reconnect.jitter = jitter;
    let mut pair = Pair::new(4, Net::default(), server_config());
    for i in 0..CLIENTS {
        pair.add_client(&format!("c{i}"), config.clone());
    }
    pair.run_for(ms(1500));
    pair.kill_server();
    let killed_at = pair.elapsed();
    pair.run_for(ms(1000));
    pair.start_server();
    let restarted_at = pair.elapsed();
    pair.run_for(ms(20_000));

    let server = pair.server.as_ref().expect("running");
    assert_eq!(server.len(), CLIENTS, "every client is back");
    for i in 0..CLIENTS {
        assert_eq!(pair.server_conns_of(i), 1, "client {i}: one connection");
        assert!(server.lookup(&format!("c{i}")).is_some());
        // Nobody hammered the dead server: a handful of attempts each.
        let attempts = pair.clients[i]
            .notices
            .iter()
            .filter(|(t, n)| *t >= killed_at && matches!(n, Notice::Connecting { .. }))
            .count();
        assert!(
            (1..=8).contains(&attempts),
            "client {i}: {attempts} attempts"
        );
    }
    let reopened: Vec<Duration> = pair
        .server_notices
        .iter()
        .filter(|(t, n)| *t >= restarted_at && matches!(n, ServerNotice::Opened { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(reopened.len(), CLIENTS, "no client opened twice");
    let mut windows = std::collections::BTreeMap::<u128, usize>::new();
    for t in &reopened {
        *windows.entry(t.as_millis() / 100).or_default() += 1;
    }
    let peak = windows.values().max().copied().unwrap_or_default();
    (reopened, peak)
}

#[test]
fn after_a_server_restart_a_thousand_clients_come_back_once_each_and_jitter_spreads_them() {
    let (reopened, peak) = restart_herd(Jitter::Equal);
    let spread = reopened.iter().max().copied().unwrap_or_default()
        - reopened.iter().min().copied().unwrap_or_default();
    assert!(spread >= ms(1000), "all back within {spread:?}");
    // Without jitter the same herd comes back nearly at once.
    let (_, peak_without) = restart_herd(Jitter::None);
    assert!(
        peak <= 300,
        "{peak} of 1,000 reconnects in one 100 ms window"
    );
    assert!(
        peak_without >= 2 * peak,
        "jitter does not spread the herd: {peak} in the busiest window, {peak_without} without"
    );
}

#[test]
fn a_second_client_with_the_same_name_replaces_the_first_which_stops() {
    let mut pair = open_pair(5, 1);
    let dup = pair.add_client("c0", client_config());
    pair.run_for(ms(30_000));

    assert_eq!(pair.server_conns_of(dup), 1);
    assert_eq!(pair.server_conns_of(0), 0);
    let replaced = pair
        .server_notices
        .iter()
        .any(|(_, n)| matches!(n, ServerNotice::Replaced { name, .. } if &**name == "c0"));
    assert!(replaced);
    // 4409 is terminal for a heartline client: the two do not keep replacing each other.
    let gave_up = pair.clients[0].notices.iter().find_map(|(t, n)| match n {
        Notice::GaveUp {
            reason: GiveUpReason::CloseCode { code, .. },
        } => Some((*t, *code)),
        _ => None,
    });
    let (at, code) = gave_up.expect("the replaced client gave up");
    assert_eq!(code, close_code::REPLACED);
    assert!(first_notice(&pair, 0, at, |n| matches!(n, Notice::Connecting { .. })).is_none());
    assert!(pair.clients[0].client.is_closed());
}

#[test]
fn a_slow_consumer_is_evicted_and_the_others_get_everything() {
    let mut pair = open_pair(6, 2);
    pair.set_reading(0, false);
    let chunk = "x".repeat(10 * 1024);
    let mut sent = 0;
    for _ in 0..200 {
        let now = pair.now;
        let server = pair.server.as_mut().expect("running");
        let _ = server.send_to(now, "c0", Message::Text(chunk.clone()));
        if server
            .send_to(now, "c1", Message::Text(format!("m{sent}")))
            .is_ok()
        {
            sent += 1;
        }
        pair.run_for(ms(10));
    }
    pair.run_for(ms(1000));
    let evicted = pair.server_notices.iter().find_map(|(_, n)| match n {
        ServerNotice::Closed {
            name: Some(name),
            evicted,
            ..
        } if &**name == "c0" => Some(*evicted),
        _ => None,
    });
    assert!(
        matches!(
            evicted,
            Some(Some(EvictReason::Backlog | EvictReason::WriteStall))
        ),
        "{evicted:?}"
    );
    assert_eq!(sent, 200);
    let expected: Vec<String> = (0..sent).map(|i| format!("m{i}")).collect();
    assert_eq!(pair.clients[1].received, expected, "in order, none lost");
}

#[test]
fn shutdown_closes_every_client_with_1001_and_completes() {
    let mut pair = open_pair(7, 10);
    let now = pair.now;
    pair.server.as_mut().expect("running").shutdown(now);
    let shut_at = pair.elapsed();
    pair.run_for(ms(3000));
    let complete = pair
        .server_notices
        .iter()
        .any(|(_, n)| *n == ServerNotice::ShutdownComplete);
    assert!(complete);
    for i in 0..10 {
        let closed = pair.clients[i].notices.iter().find_map(|(t, n)| match n {
            Notice::Closed { code, by, .. } if *t >= shut_at => Some((*code, *by)),
            _ => None,
        });
        assert_eq!(
            closed,
            Some((close_code::GOING_AWAY, Initiator::Remote)),
            "client {i}"
        );
        // 1001 is not terminal: the client retries, and a server shutting down takes
        // no new connection.
        assert_eq!(pair.server_conns_of(i), 0);
    }
}

#[test]
fn a_seed_gives_the_same_trace_forever() {
    let run = |seed| {
        let mut pair = open_pair(seed, 20);
        pair.set_partitioned(3, true);
        pair.kill_server();
        pair.run_for(ms(700));
        pair.start_server();
        pair.run_for(ms(3000));
        pair.set_partitioned(3, false);
        pair.run_for(ms(6000));
        pair.trace
    };
    let trace = run(11);
    assert!(trace.lines().count() > 100, "a trace worth comparing");
    assert_eq!(trace, run(11), "the same seed, another trace");
    assert_ne!(trace, run(12), "the seed drives latency, loss and jitter");
}

#[test]
#[ignore = "prints a trace to read"]
fn print_a_trace() {
    let mut pair = open_pair(2, 1);
    pair.set_partitioned(0, true);
    pair.run_for(ms(5000));
    pair.set_partitioned(0, false);
    pair.run_for(ms(3000));
    println!("{}", pair.trace);
}
