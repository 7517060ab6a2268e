//! Every deadline of a connection is the server's: an upgrade that does not finish
//! within `handshake_timeout`, and a socket that takes nothing for `write_timeout`,
//! each end with one self-describing eviction, at exactly their deadline.

mod common;

use common::server::{config, ms, Harness};
use heartline_core::{
    close_code, EvictReason, Frame, Initiator, OpenError, ServerAction, ServerConfig, ServerNotice,
};

fn short() -> ServerConfig {
    let mut built = config();
    built.handshake_timeout = ms(400);
    built.write_timeout = ms(700);
    built
}

#[test]
fn an_upgrade_that_does_not_finish_in_time_is_dropped_silently() {
    let mut h = Harness::new(short());
    let slow = h.incoming();
    assert_eq!(h.server.handshakes(), 1);
    assert_eq!(h.server.len(), 0, "not open yet");
    assert!(!h.server.is_open(slow));
    assert_eq!(h.server.poll_timeout(), Some(h.start + ms(400)));

    assert_eq!(h.step(), Some(ms(400)));
    assert_eq!(
        h.actions(),
        vec![ServerAction::Evict {
            conn: slow,
            reason: EvictReason::HandshakeTimeout
        }]
    );
    assert_eq!(EvictReason::HandshakeTimeout.close_code(), None, "no frame");
    assert!(h.notices().is_empty(), "it never opened: nothing to report");
    assert_eq!(h.server.handshakes(), 0);
    // The driver's late upgrade is refused: the socket is gone.
    assert_eq!(
        h.server.open(h.now, slow, Some("late".into())),
        Err(OpenError::NotPending)
    );
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn an_upgrade_in_time_opens_and_stops_the_handshake_clock() {
    let mut h = Harness::new(short());
    let conn = h.incoming();
    h.advance(ms(399));
    h.server.open(h.now, conn, Some("alice".into())).unwrap();
    assert!(h.server.is_open(conn));
    // The next deadline is the ping, 1 s after the open.
    assert_eq!(h.step(), Some(ms(1399)));
    assert!(matches!(
        h.actions().as_slice(),
        [ServerAction::SendPing { .. }]
    ));
    assert_eq!(
        h.server.open(h.now, conn, None),
        Err(OpenError::NotPending),
        "opened once"
    );
}

#[test]
fn a_rejected_upgrade_ends_with_its_socket_and_is_never_opened() {
    let mut h = Harness::new(short());
    let conn = h.incoming();
    h.server.handle_disconnected(h.now, conn, None);
    assert_eq!(h.server.handshakes(), 0);
    assert!(h.notices().is_empty());
    assert!(h.actions().is_empty());
}

#[test]
fn a_client_that_never_reads_is_evicted_at_the_write_timeout() {
    let mut h = Harness::new(short());
    let reader = h.open("reader");
    let stuck = h.open("stuck");
    h.notices();
    h.advance(ms(100));
    h.server.handle_write_blocked(h.now, stuck);
    h.server.handle_write_blocked(h.now, reader);
    h.advance(ms(200));
    // Still sending (so never idle), and reported blocked again: no new clock.
    h.frame(stuck, Frame::Text("still here"));
    h.server.handle_write_blocked(h.now, stuck);
    h.server.handle_write_flushed(reader);
    assert_eq!(h.server.poll_timeout(), Some(h.start + ms(800)));

    assert_eq!(h.step(), Some(ms(800)));
    assert_eq!(
        h.actions(),
        vec![ServerAction::Evict {
            conn: stuck,
            reason: EvictReason::WriteStall
        }]
    );
    assert_eq!(
        h.notices(),
        vec![ServerNotice::Closed {
            conn: stuck,
            name: Some("stuck".into()),
            code: close_code::BACKLOG,
            reason: "write timed out: the peer is not reading".into(),
            by: Initiator::Local,
            evicted: Some(EvictReason::WriteStall),
        }]
    );
    assert!(h.server.is_open(reader), "its stall ended in time");
    assert_eq!(h.server.lookup("stuck"), None);
}
