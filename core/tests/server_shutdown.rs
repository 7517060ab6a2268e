//! Graceful shutdown: every client gets a Close with 1001, clients that do not finish
//! the close handshake within the close timeout are aborted, and the server reports
//! when every connection is gone.

mod common;

use common::server::{close, config, ms, Harness};
use heartline_core::{close_code, Frame, Initiator, OpenError, ServerAction, ServerNotice};

#[test]
fn every_client_gets_1001_and_stragglers_are_aborted() {
    let mut h = Harness::new(config());
    let polite = h.open("polite");
    let dead = h.open("dead");
    let closing = h.open("closing");
    // A socket whose upgrade is under way: nothing to close gracefully.
    let upgrading = h.incoming();
    h.server.close(h.now, closing, 1000, "bye").unwrap();
    h.actions();
    h.notices();

    h.advance(ms(100));
    h.server.shutdown(h.now);
    assert!(h.server.is_shutting_down());
    assert_eq!(
        h.actions(),
        vec![
            close(polite, close_code::GOING_AWAY, "server shutting down"),
            close(dead, close_code::GOING_AWAY, "server shutting down"),
            ServerAction::Abort { conn: upgrading },
        ],
        "one Close each; the one already closing keeps its handshake; the upgrade is dropped"
    );
    assert_eq!(h.server.incoming(h.now), Err(OpenError::ShuttingDown));
    assert_eq!(
        h.server.open(h.now, upgrading, Some("late".into())),
        Err(OpenError::ShuttingDown)
    );
    assert_eq!(
        h.server.lookup("polite"),
        None,
        "closing clients leave the registry"
    );

    // The polite client answers and goes.
    h.advance(ms(10));
    h.frame(polite, Frame::Close(Some((close_code::GOING_AWAY, ""))));
    h.server.handle_disconnected(h.now, polite, None);
    // The one closing since before the shutdown times out first (at 500 ms), then the
    // dead one, 500 ms after its Close.
    assert_eq!(h.step(), Some(ms(500)));
    assert_eq!(h.actions(), vec![ServerAction::Abort { conn: closing }]);
    assert!(!h.server.is_shut_down());
    assert_eq!(h.step(), Some(ms(600)));
    assert_eq!(h.actions(), vec![ServerAction::Abort { conn: dead }]);
    assert!(h.server.is_shut_down());
    let notices = h.notices();
    assert_eq!(notices.last(), Some(&ServerNotice::ShutdownComplete));
    let closed: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            ServerNotice::Closed { conn, code, by, .. } => Some((*conn, *code, *by)),
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        vec![
            (polite, close_code::GOING_AWAY, Initiator::Local),
            (closing, 1000, Initiator::Local),
            (dead, close_code::GOING_AWAY, Initiator::Local),
        ]
    );
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn an_empty_server_shuts_down_at_once() {
    let mut h = Harness::new(config());
    h.server.shutdown(h.now);
    assert!(h.server.is_shut_down());
    assert_eq!(h.notices(), vec![ServerNotice::ShutdownComplete]);
    h.server.shutdown(h.now);
    assert!(h.notices().is_empty(), "reported once");
}
