//! The steady-state heartbeat paths allocate nothing: a client's ping goes out and its
//! pong comes back with a round-trip time; a server's quiet clients are pinged, their
//! pongs come back and ordinary messages arrive; the heap is never touched.
// A counting global allocator is the one place heartline needs `unsafe`; the library
// crates themselves `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use heartline_core::{
    Action, Client, ClientConfig, ConnId, Disposition, Event, Frame, Notice, Server, ServerAction,
    ServerConfig,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// One client heartbeat round: the deadline passes, a ping goes out, its pong comes back.
fn client_round(client: &mut Client, now: &mut Instant) -> Duration {
    // The first deadline after open may be the "connection is stable" mark.
    let (conn, payload) = loop {
        *now = client.poll_timeout().expect("a deadline");
        client.handle_timeout(*now);
        match client.poll_action() {
            Some(Action::SendPing { conn, payload }) => break (conn, payload),
            None => continue,
            Some(other) => panic!("expected a ping, got {other:?}"),
        }
    };
    *now += Duration::from_millis(3);
    client.handle_event(*now, Event::Frame(conn, Frame::Pong(payload.as_bytes())));
    match client.poll_notice() {
        Some(Notice::Rtt(rtt)) => rtt,
        other => panic!("expected an rtt, got {other:?}"),
    }
}

#[test]
fn heartbeat_rounds_do_not_allocate() {
    let mut now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), 9, now).unwrap();
    let Some(Action::Connect { conn, .. }) = client.poll_action() else {
        panic!("expected a connect");
    };
    client.handle_event(now, Event::Connected(conn));
    while client.poll_notice().is_some() {}
    // Warm up: queues reach their working capacity.
    for _ in 0..10 {
        client_round(&mut client, &mut now);
    }
    // The counter sees allocations on this thread (so a zero below means something).
    let before = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert_eq!(allocations() - before, 1);
    // Inbound application traffic is on the steady path too.
    let before = allocations();
    for _ in 0..1000 {
        assert_eq!(
            client_round(&mut client, &mut now),
            Duration::from_millis(3)
        );
        client.handle_event(now, Event::Frame(conn, Frame::Text("data")));
    }
    assert_eq!(allocations() - before, 0, "the heartbeat path allocated");
}

/// One liveness round: the next deadline passes, every due client is pinged, each
/// answers with its Pong and then sends a message. Returns the number of pings.
fn server_round(server: &mut Server, now: &mut Instant, conns: &[ConnId]) -> usize {
    *now = server.poll_timeout().expect("a deadline");
    server.handle_timeout(*now);
    *now += Duration::from_millis(2);
    let mut pings = 0;
    while let Some(action) = server.poll_action() {
        match action {
            ServerAction::SendPing { conn, payload } => {
                pings += 1;
                server.handle_frame(*now, conn, Frame::Pong(payload.as_bytes()));
                let d = server.handle_frame(*now, conn, Frame::Text(r#"{"ModeCode":"message"}"#));
                assert_eq!(d, Disposition::Deliver);
            }
            other => panic!("expected pings only, got {other:?}"),
        }
    }
    assert!(server.poll_notice().is_none());
    assert!(conns.iter().all(|c| server.is_open(*c)));
    pings
}

#[test]
fn ping_rounds_do_not_allocate() {
    let mut now = Instant::now();
    let mut server = Server::new(ServerConfig::default(), now).unwrap();
    // Clients opened a little apart, so deadlines are spread out.
    let conns: Vec<ConnId> = (0..200)
        .map(|i| {
            now += Duration::from_millis(7);
            let conn = server.incoming(now).unwrap();
            server.open(now, conn, Some(format!("client-{i}"))).unwrap();
            conn
        })
        .collect();
    while server.poll_notice().is_some() {}
    // Warm up: the action queue reaches its working capacity.
    let mut pings = 0;
    while pings < 2 * conns.len() {
        pings += server_round(&mut server, &mut now, &conns);
    }
    // The counter sees allocations on this thread (so a zero below means something).
    let before = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert_eq!(allocations() - before, 1);

    let before = allocations();
    let mut pings = 0;
    while pings < 20 * conns.len() {
        pings += server_round(&mut server, &mut now, &conns);
    }
    assert_eq!(allocations() - before, 0, "the ping path allocated");
}
