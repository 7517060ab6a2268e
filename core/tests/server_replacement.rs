//! A newer connection with the same name replaces the older one, which is closed with
//! heartline's "replaced" code; the older one going away never removes its successor.

mod common;

use common::server::{close, config, ms, Harness};
use heartline_core::{close_code, Frame, Initiator, Message, ServerAction, ServerNotice};

#[test]
fn newer_connection_replaces_older_with_the_replaced_code() {
    let mut h = Harness::new(config());
    let old = h.connect("/ws/?name=alice");
    h.notices();
    h.advance(ms(100));
    let new = h.connect("/ws/?name=alice");
    assert_ne!(old, new);

    assert_eq!(
        h.actions(),
        vec![close(
            old,
            close_code::REPLACED,
            "replaced by a newer connection"
        )]
    );
    assert_eq!(
        h.notices(),
        vec![
            ServerNotice::Opened {
                conn: new,
                name: Some("alice".into()),
            },
            ServerNotice::Replaced {
                name: "alice".into(),
                old,
                new,
            },
        ]
    );
    assert_eq!(h.server.lookup("alice"), Some(new));
    assert!(!h.server.is_open(old), "the old one is closing");
    assert_eq!(h.server.name(old), Some("alice"));
    assert_eq!(h.server.len(), 2);

    // Sends by name reach the new connection only.
    h.server
        .send_to(h.now, "alice", Message::from("hi"))
        .unwrap();
    assert_eq!(
        h.actions(),
        vec![ServerAction::Send {
            conn: new,
            message: Message::from("hi"),
        }]
    );
}

#[test]
fn old_connection_finishing_its_close_leaves_the_successor_registered() {
    let mut h = Harness::new(config());
    let old = h.open("alice");
    let new = h.open("alice");
    h.notices();
    h.actions();

    // The old client answers the Close and the driver reports the socket gone.
    h.frame(old, Frame::Close(Some((close_code::REPLACED, ""))));
    h.server.handle_disconnected(h.now, old, None);
    assert_eq!(
        h.notices(),
        vec![ServerNotice::Closed {
            conn: old,
            name: Some("alice".into()),
            code: close_code::REPLACED,
            reason: "replaced by a newer connection".into(),
            by: Initiator::Local,
            evicted: None,
        }]
    );
    assert_eq!(h.server.lookup("alice"), Some(new));
    assert!(h.server.is_open(new));
    assert_eq!(h.server.clients().collect::<Vec<_>>(), vec![("alice", new)]);
}

#[test]
fn old_connection_aborted_after_close_timeout_leaves_the_successor_registered() {
    let mut h = Harness::new(config());
    let old = h.open("alice");
    h.advance(ms(200));
    let new = h.open("alice");
    h.actions();
    // The old client never answers: aborted 500 ms (the close timeout) after the Close.
    assert_eq!(h.step(), Some(ms(700)));
    assert_eq!(h.actions(), vec![ServerAction::Abort { conn: old }]);
    assert_eq!(h.server.lookup("alice"), Some(new));
    // A late report of the aborted socket changes nothing.
    h.server.handle_disconnected(h.now, old, Some("reset"));
    assert_eq!(h.server.lookup("alice"), Some(new));
    assert_eq!(h.server.len(), 1);
}

#[test]
fn replaced_connection_idle_or_disconnected_never_touches_the_successor() {
    let mut h = Harness::new(config());
    let first = h.open("bob");
    let second = h.open("bob");
    let third = h.open("bob");
    h.actions();
    // Each newer one replaced the one before: both older ones are closing now.
    assert!(!h.server.is_open(first) && !h.server.is_open(second));
    h.server.handle_disconnected(h.now, second, None);
    h.server.handle_disconnected(h.now, first, None);
    assert_eq!(h.server.lookup("bob"), Some(third));
    // The successor's own disconnect does remove the name.
    h.server.handle_disconnected(h.now, third, None);
    assert_eq!(h.server.lookup("bob"), None);
    assert!(h.server.is_empty());
}

#[test]
fn different_names_and_anonymous_clients_coexist() {
    let mut config = config();
    config.upgrade.name_required = false;
    let mut h = Harness::new(config);
    let a = h.connect("/ws/?name=a");
    let b = h.connect("/ws/?name=b");
    let anon = h.connect("/ws/");
    let empty = h.open_as(Some(String::new()));
    assert!(h.actions().is_empty(), "nobody replaced");
    let mut clients: Vec<_> = h.server.clients().collect();
    clients.sort();
    assert_eq!(clients, vec![("a", a), ("b", b)]);
    let mut all: Vec<_> = h.server.connections().collect();
    all.sort();
    assert_eq!(
        all,
        vec![(a, Some("a")), (b, Some("b")), (anon, None), (empty, None)]
    );
}
