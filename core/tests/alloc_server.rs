//! The server's steady-state liveness path allocates nothing: quiet clients are
//! pinged, their pongs come back, ordinary messages arrive, and the heap is never
//! touched.

// A counting global allocator is the one place heartline needs `unsafe`; the library
// crates themselves `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use heartline_core::{ConnId, Disposition, Frame, Server, ServerAction, ServerConfig};

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

/// One liveness round: the next deadline passes, every due client is pinged, each
/// answers with its Pong and then sends a message. Returns the number of pings.
fn round(server: &mut Server, now: &mut Instant, conns: &[ConnId]) -> usize {
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
            server.open(now, Some(format!("client-{i}"))).unwrap()
        })
        .collect();
    while server.poll_notice().is_some() {}
    // Warm up: the action queue reaches its working capacity.
    let mut pings = 0;
    while pings < 2 * conns.len() {
        pings += round(&mut server, &mut now, &conns);
    }
    // The counter sees allocations on this thread (so a zero below means something).
    let before = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert_eq!(allocations() - before, 1);

    let before = allocations();
    let mut pings = 0;
    while pings < 20 * conns.len() {
        pings += round(&mut server, &mut now, &conns);
    }
    assert_eq!(allocations() - before, 0, "the ping path allocated");
}
