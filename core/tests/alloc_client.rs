//! The steady-state heartbeat path allocates nothing: a ping goes out, the pong comes
//! back, the round-trip time is reported, and the heap is never touched.

// A counting global allocator is the one place heartline needs `unsafe`; the library
// crates themselves `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use heartline_core::{Action, Client, ClientConfig, Event, Frame, Notice};

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

/// One heartbeat round: the deadline passes, a ping goes out, its pong comes back.
fn round(client: &mut Client, now: &mut Instant) -> Duration {
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
        round(&mut client, &mut now);
    }
    // The counter sees allocations on this thread (so a zero below means something).
    let before = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert_eq!(allocations() - before, 1);
    // Inbound application traffic is on the steady path too.
    let before = allocations();
    for _ in 0..1000 {
        assert_eq!(round(&mut client, &mut now), Duration::from_millis(3));
        client.handle_event(now, Event::Frame(conn, Frame::Text("data")));
    }
    assert_eq!(allocations() - before, 0, "the heartbeat path allocated");
}
