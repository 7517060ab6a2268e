//! The cost of the core's decisions: one heartbeat round and one backoff decision.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use heartline_core::{
    Action, Backoff, Client, ClientConfig, ConnId, ConnectError, Event, Frame, Jitter, Rng, Server,
    ServerAction, ServerConfig,
};

/// An open client and its connection.
fn open_client() -> (Client, ConnId, Instant) {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), 1, now).expect("default config");
    let Some(Action::Connect { conn, .. }) = client.poll_action() else {
        panic!("a new client connects first");
    };
    client.handle_event(now, Event::Connected(conn));
    while client.poll_notice().is_some() {}
    (client, conn, now)
}

fn heartbeat_round(c: &mut Criterion) {
    let (mut client, conn, mut now) = open_client();
    c.bench_function("heartbeat round (timeout, ping out, pong in, rtt)", |b| {
        b.iter(|| {
            // Deadline passes: the ping goes out (skipping the stable-connection mark).
            let (conn_p, payload) = loop {
                now = client.poll_timeout().expect("armed");
                client.handle_timeout(now);
                if let Some(Action::SendPing { conn, payload }) = client.poll_action() {
                    break (conn, payload);
                }
            };
            now += Duration::from_millis(1);
            let d = client.handle_event(now, Event::Frame(conn_p, Frame::Pong(payload.as_bytes())));
            black_box(d);
            black_box(client.poll_notice());
        })
    });
    c.bench_function("inbound message (frame in, disposition out)", |b| {
        b.iter(|| {
            now += Duration::from_micros(1);
            black_box(client.handle_event(now, Event::Frame(conn, Frame::Text(black_box("hello")))))
        })
    });
}

fn backoff_decision(c: &mut Criterion) {
    let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30));
    let mut rng = Rng::new(7);
    let mut attempt = 0u32;
    c.bench_function("backoff delay (curve + equal jitter)", |b| {
        b.iter(|| {
            attempt = attempt % 12 + 1;
            Jitter::Equal.delay(&backoff, black_box(attempt), rng.next_u64())
        })
    });
    let mut config = ClientConfig::default();
    config.reconnect.max_attempts = None;
    let mut now = Instant::now();
    let mut client = Client::new(config, 3, now).expect("default config");
    c.bench_function(
        "connect failure to reconnect scheduled (whole machine)",
        |b| {
            b.iter(|| {
                // The failing attempt, then its scheduled reconnect.
                let conn = loop {
                    match client.poll_action() {
                        Some(Action::Connect { conn, .. }) => break conn,
                        Some(_) => {}
                        None => {
                            now = client.poll_timeout().expect("reconnect armed");
                            client.handle_timeout(now);
                        }
                    }
                };
                client.handle_event(now, Event::ConnectFailed(conn, ConnectError::Io("refused")));
                while let Some(n) = client.poll_notice() {
                    black_box(n);
                }
            })
        },
    );
}

/// One server-wide ping round over 10,000 quiet clients: the deadline fires, every client
/// is pinged, every pong comes back. Reported per round; divide by 10,000 per client.
fn server_ping_round(c: &mut Criterion) {
    const CLIENTS: usize = 10_000;
    let mut now = Instant::now();
    let mut server = Server::new(ServerConfig::default(), now).expect("default config");
    for i in 0..CLIENTS {
        let conn = server.incoming(now).expect("room for the clients");
        server
            .open(now, conn, Some(format!("client-{i}")))
            .expect("an accepted upgrade");
    }
    while server.poll_notice().is_some() {}
    let mut pings = Vec::with_capacity(CLIENTS);
    let mut group = c.benchmark_group("server");
    group.throughput(criterion::Throughput::Elements(CLIENTS as u64));
    group.bench_function(
        "ping round, 10k clients (timeout, pings out, pongs in)",
        |b| {
            b.iter(|| {
                pings.clear();
                while pings.len() < CLIENTS {
                    now = server.poll_timeout().expect("armed");
                    server.handle_timeout(now);
                    while let Some(a) = server.poll_action() {
                        if let ServerAction::SendPing { conn, payload } = a {
                            pings.push((conn, payload));
                        }
                    }
                }
                now += Duration::from_millis(1);
                for (conn, payload) in &pings {
                    black_box(server.handle_frame(now, *conn, Frame::Pong(payload.as_bytes())));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(
    benches,
    heartbeat_round,
    backoff_decision,
    server_ping_round
);
criterion_main!(benches);
