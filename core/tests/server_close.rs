//! How connections end: the peer's Close, a dropped socket, a message over the size
//! limit, the application's close; and what happens to events and actions for a
//! connection that is gone.

mod common;

use common::server::{close, config, ms, Harness};
use heartline_core::{
    close_code, CloseError, Disposition, Frame, Initiator, Message, ServerAction, ServerNotice,
};

fn closed(h: &mut Harness) -> Vec<(u16, String, Initiator)> {
    h.notices()
        .into_iter()
        .filter_map(|n| match n {
            ServerNotice::Closed {
                code, reason, by, ..
            } => Some((code, reason.into_owned(), by)),
            _ => None,
        })
        .collect()
}

#[test]
fn peer_close_is_reported_with_its_code_when_the_socket_ends() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    h.advance(ms(50));
    assert_eq!(
        h.frame(conn, Frame::Close(Some((1000, "bye")))),
        Disposition::Consumed
    );
    assert!(
        h.actions().is_empty(),
        "the WebSocket library answers the Close"
    );
    assert_eq!(h.server.lookup("alice"), None);
    assert!(closed(&mut h).is_empty(), "not gone until the socket ends");
    h.server.handle_disconnected(h.now, conn, None);
    assert_eq!(
        closed(&mut h),
        vec![(1000, "bye".into(), Initiator::Remote)]
    );

    // A peer that closes and then never lets go is aborted after the close timeout.
    let conn = h.open("bob");
    h.frame(conn, Frame::Close(None));
    assert_eq!(h.step(), Some(ms(550)));
    assert_eq!(h.actions(), vec![ServerAction::Abort { conn }]);
    assert_eq!(
        closed(&mut h),
        vec![(close_code::NO_STATUS, String::new(), Initiator::Remote)]
    );
}

#[test]
fn a_dropped_socket_is_an_abnormal_close() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    h.server
        .handle_disconnected(h.now, conn, Some("connection reset"));
    assert_eq!(
        closed(&mut h),
        vec![(
            close_code::ABNORMAL,
            "connection reset".into(),
            Initiator::Transport
        )]
    );
    assert_eq!(h.server.lookup("alice"), None);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn a_message_over_the_limit_is_not_delivered_and_closes_with_1009() {
    let mut h = Harness::new({
        let mut built = config();
        built.max_message_size = 8;
        built
    });
    let conn = h.open("alice");
    assert_eq!(h.text(conn, "12345678"), Disposition::Deliver);
    assert_eq!(h.text(conn, "123456789"), Disposition::Consumed);
    assert_eq!(
        h.actions(),
        vec![close(conn, close_code::TOO_BIG, "message too big")]
    );
    // Data arriving during the close handshake is still the application's, within the
    // limit.
    assert_eq!(h.text(conn, "late"), Disposition::Deliver);
    assert_eq!(h.frame(conn, Frame::Binary(&[0; 9])), Disposition::Consumed);
}

#[test]
fn application_close_runs_the_handshake() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    assert_eq!(
        h.server.close(h.now, conn, 1005, ""),
        Err(CloseError::InvalidCode(1005))
    );
    assert_eq!(
        h.server.close(h.now, conn, 1000, &"x".repeat(124)),
        Err(CloseError::ReasonTooLong(124))
    );
    assert!(h.server.is_open(conn));
    assert_eq!(h.server.close(h.now, conn, 4000, "kicked"), Ok(true));
    assert_eq!(h.server.close(h.now, conn, 4000, "again"), Ok(false));
    assert_eq!(h.actions(), vec![close(conn, 4000, "kicked")]);
    h.frame(conn, Frame::Close(Some((4000, ""))));
    h.server.handle_disconnected(h.now, conn, None);
    assert_eq!(
        closed(&mut h),
        vec![(4000, "kicked".into(), Initiator::Local)]
    );
}

#[test]
fn nothing_is_emitted_for_a_connection_that_is_gone() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    h.server.send(h.now, conn, Message::from("queued")).unwrap();
    h.text(conn, "ping");
    // The socket dies before the driver drained the queue.
    h.server.handle_disconnected(h.now, conn, None);
    assert!(h.actions().is_empty());
    // Late events for it are stale and change nothing.
    assert_eq!(h.text(conn, "hello"), Disposition::Stale);
    h.server.handle_written(conn, 100);
    h.server.handle_disconnected(h.now, conn, None);
    assert_eq!(closed(&mut h).len(), 1);
    assert_eq!(h.server.poll_timeout(), None);

    // Its slot is reused under a new id; the old id stays stale.
    let next = h.open("bob");
    assert_ne!(next, conn);
    assert_eq!(h.text(conn, "hello"), Disposition::Stale);
    assert_eq!(h.text(next, "hello"), Disposition::Deliver);
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut h = Harness::new(config());
    let conn = h.open("alice");
    h.advance(ms(800));
    h.text(conn, "hi");
    // A frame stamped earlier than the last one counts as arriving at the latest time.
    h.server.handle_frame(h.start, conn, Frame::Text("old"));
    assert_eq!(h.server.poll_timeout(), Some(h.start + ms(1800)));
    h.server.handle_timeout(h.start);
    assert!(h.actions().is_empty());
}
