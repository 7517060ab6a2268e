//! The send queue: messages sent while not open wait, bounded, and are never lost silently.

mod common;

use common::{config, Harness};
use heartline_core::{Action, DropCause, Event, Message, Notice, Overflow, SendErrorKind};

fn sends(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_sent_while_connecting_are_flushed_in_order_right_after_open() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.notices();
    for m in ["one", "two", "three"] {
        h.client.send(h.now, Message::from(m)).unwrap();
    }
    assert_eq!(h.client.buffered_amount(), 11);
    assert_eq!(h.client.queued_messages(), 3);
    h.event(Event::Connected(conn));
    assert_eq!(h.notices(), vec![Notice::Open { conn }]);
    let actions = h.actions();
    assert_eq!(
        sends(&actions),
        vec![
            Message::from("one"),
            Message::from("two"),
            Message::from("three")
        ]
    );
    assert_eq!(h.client.buffered_amount(), 0);
}

#[test]
fn messages_sent_while_waiting_to_reconnect_survive_the_outage() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.event(Event::Disconnected(conn, None));
    h.client.send(h.now, Message::Binary(vec![1, 2])).unwrap();
    h.fire_next();
    let next = h.expect_connect();
    h.event(Event::Connected(next));
    assert!(h.actions().contains(&Action::Send {
        conn: next,
        message: Message::Binary(vec![1, 2])
    }));
}

#[test]
fn open_connection_sends_at_once_and_counts_until_taken() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.send(h.now, Message::from("hello")).unwrap();
    assert_eq!(h.client.buffered_amount(), 5);
    assert_eq!(
        h.actions(),
        vec![Action::Send {
            conn,
            message: Message::from("hello")
        }]
    );
    assert_eq!(h.client.buffered_amount(), 0);
}

#[test]
fn overflow_rejects_the_new_message_by_default_and_returns_it() {
    let mut c = config();
    c.queue.max_messages = 2;
    let mut h = Harness::new(c);
    h.client.send(h.now, Message::from("a")).unwrap();
    h.client.send(h.now, Message::from("b")).unwrap();
    let err = h.client.send(h.now, Message::from("c")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::QueueFull);
    assert_eq!(err.message, Message::from("c"));
    assert_eq!(h.client.queued_messages(), 2);
}

#[test]
fn byte_bound_applies_too() {
    let mut c = config();
    c.queue.max_bytes = 10;
    let mut h = Harness::new(c);
    h.client.send(h.now, Message::from("123456")).unwrap();
    let err = h.client.send(h.now, Message::from("12345")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::QueueFull);
    let err = h
        .client
        .send(h.now, Message::from("12345678901"))
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::TooLarge);
}

#[test]
fn drop_oldest_makes_room_and_reports_what_it_dropped() {
    let mut c = config();
    c.queue.max_messages = 2;
    c.queue.overflow = Overflow::DropOldest;
    let mut h = Harness::new(c);
    let conn = h.expect_connect();
    h.notices();
    for m in ["a", "b", "c"] {
        h.client.send(h.now, Message::from(m)).unwrap();
    }
    assert_eq!(
        h.notices(),
        vec![Notice::Dropped {
            messages: 1,
            bytes: 1,
            cause: DropCause::Overflow
        }]
    );
    h.event(Event::Connected(conn));
    assert_eq!(
        sends(&h.actions()),
        vec![Message::from("b"), Message::from("c")]
    );
}

#[test]
fn a_zero_sized_queue_refuses_sends_while_disconnected() {
    let mut c = config();
    c.queue.max_messages = 0;
    let mut h = Harness::new(c);
    let err = h.client.send(h.now, Message::from("x")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::QueueFull);
}

#[test]
fn a_send_without_a_time_acts_like_one_with_the_clients_latest_time() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    h.client.send_untimed(Message::from("queued")).unwrap();
    assert_eq!(h.client.queued_messages(), 1);
    h.event(Event::Connected(conn));
    h.client.send_untimed(Message::from("direct")).unwrap();
    assert_eq!(
        sends(&h.actions()),
        vec![Message::from("queued"), Message::from("direct")]
    );
    // The heartbeat keeps the schedule the timed calls set: no time was read.
    let before = h.next_deadline();
    h.advance(common::ms(10));
    h.client.send_untimed(Message::from("later")).unwrap();
    assert_eq!(h.next_deadline(), before);
    h.client.close(h.now, 1000, "").unwrap();
    let err = h.client.send_untimed(Message::from("late")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
}

#[test]
fn taking_all_actions_at_once_gives_them_in_order_and_empties_the_buffer() {
    let mut h = Harness::new(config());
    let conn = h.open();
    for m in ["a", "bc"] {
        h.client.send(h.now, Message::from(m)).unwrap();
    }
    let mut taken = std::collections::VecDeque::new();
    h.client.take_actions(&mut taken);
    assert_eq!(h.client.buffered_amount(), 0);
    h.client.send(h.now, Message::from("d")).unwrap();
    // Into a queue that already holds actions: appended behind them.
    h.client.take_actions(&mut taken);
    assert_eq!(h.client.poll_action(), None);
    assert_eq!(
        taken.into_iter().collect::<Vec<_>>(),
        ["a", "bc", "d"]
            .map(|m| Action::Send {
                conn,
                message: Message::from(m)
            })
            .to_vec()
    );
}

#[test]
fn send_now_hands_a_message_back_only_when_nothing_waits_ahead_of_it() {
    let mut h = Harness::new(config());
    let conn = h.expect_connect();
    // Not open yet: queued like any send.
    assert_eq!(h.client.send_now(conn, Message::from("early")), Ok(None));
    h.event(Event::Connected(conn));
    // The queued message is now a pending action: a new one waits behind it.
    assert_eq!(h.client.send_now(conn, Message::from("second")), Ok(None));
    assert_eq!(
        sends(&h.actions()),
        vec![Message::from("early"), Message::from("second")]
    );
    // Nothing pending: the caller writes it itself, and nothing is counted as buffered.
    assert_eq!(
        h.client.send_now(conn, Message::from("third")),
        Ok(Some(Message::from("third")))
    );
    assert_eq!(h.client.buffered_amount(), 0);
    assert!(h.actions().is_empty());
    // For any other connection the message takes the usual way.
    let stale = heartline_core::ConnId(conn.0 + 7);
    assert_eq!(h.client.send_now(stale, Message::from("fourth")), Ok(None));
    assert_eq!(sends(&h.actions()), vec![Message::from("fourth")]);
}

/// `Send` actions for `conn`, as a driver took them.
fn sends_for(
    conn: heartline_core::ConnId,
    messages: &[&str],
) -> std::collections::VecDeque<Action> {
    messages
        .iter()
        .map(|m| Action::Send {
            conn,
            message: Message::from(*m),
        })
        .collect()
}

/// Opens a connection, sends `sent` while it is open without the driver taking them,
/// and returns the connection.
fn open_with_pending(h: &mut Harness, sent: &[&str]) -> heartline_core::ConnId {
    let conn = h.open();
    h.actions();
    h.notices();
    for m in sent {
        h.client.send(h.now, Message::from(*m)).unwrap();
    }
    conn
}

/// Runs the next reconnect and opens it; returns the messages it sends first.
fn reconnect_and_take_sends(h: &mut Harness) -> Vec<Message> {
    h.fire_next();
    let next = h.expect_connect();
    h.event(Event::Connected(next));
    sends(&h.actions())
}

#[test]
fn sends_the_driver_never_took_survive_a_lost_connection_in_order() {
    let mut h = Harness::new(config());
    let conn = open_with_pending(&mut h, &["one", "two"]);
    h.event(Event::Disconnected(conn, Some("reset")));
    assert_eq!(h.client.queued_messages(), 2);
    assert_eq!(h.client.buffered_amount(), 6);
    h.client.send(h.now, Message::from("three")).unwrap();
    assert_eq!(
        reconnect_and_take_sends(&mut h),
        vec![
            Message::from("one"),
            Message::from("two"),
            Message::from("three")
        ]
    );
}

#[test]
fn sends_pending_at_a_heartbeat_timeout_wait_for_the_next_connection() {
    let mut h = Harness::new(config());
    open_with_pending(&mut h, &[]);
    // The ping goes out; the pong never comes.
    h.fire_next();
    h.actions();
    h.client.send(h.now, Message::from("late")).unwrap();
    h.fire_next();
    assert!(h
        .notices()
        .iter()
        .any(|n| matches!(n, Notice::HeartbeatMissed { .. })));
    assert!(
        sends(&h.actions()).is_empty(),
        "nothing is written to the dead connection"
    );
    assert_eq!(
        reconnect_and_take_sends(&mut h),
        vec![Message::from("late")]
    );
}

#[test]
fn pending_sends_beyond_the_queue_bounds_are_reported_not_lost_silently() {
    let mut c = config();
    c.queue.max_messages = 2;
    let mut h = Harness::new(c);
    let conn = open_with_pending(&mut h, &["a", "b", "c"]);
    h.event(Event::Disconnected(conn, None));
    assert!(h.notices().contains(&Notice::Dropped {
        messages: 1,
        bytes: 1,
        cause: DropCause::Overflow
    }));
    assert_eq!(
        reconnect_and_take_sends(&mut h),
        vec![Message::from("a"), Message::from("b")]
    );
}

#[test]
fn a_local_close_still_writes_pending_sends_before_the_close_frame() {
    let mut h = Harness::new(config());
    let conn = open_with_pending(&mut h, &["last words"]);
    h.client.close(h.now, 1000, "bye").unwrap();
    let actions = h.actions();
    assert_eq!(
        actions,
        vec![
            Action::Send {
                conn,
                message: Message::from("last words")
            },
            Action::Close {
                conn,
                code: 1000,
                reason: "bye".to_owned()
            }
        ]
    );
}

#[test]
fn messages_a_driver_could_not_write_go_back_ahead_of_the_pending_ones() {
    let mut h = Harness::new(config());
    let conn = open_with_pending(&mut h, &["one", "two"]);
    // The driver takes both, fails writing "one", gives "two" back; meanwhile the
    // application sent "three".
    let mut taken = std::collections::VecDeque::new();
    h.client.take_actions(&mut taken);
    assert!(
        matches!(taken.pop_front(), Some(Action::Send { .. })),
        "one"
    );
    h.client.send(h.now, Message::from("three")).unwrap();
    h.client.give_back(conn, &mut taken);
    assert!(taken.is_empty(), "both sends taken back");
    assert_eq!(h.client.buffered_amount(), 8);
    h.event(Event::Disconnected(conn, Some("broken pipe")));
    assert_eq!(
        reconnect_and_take_sends(&mut h),
        vec![Message::from("two"), Message::from("three")]
    );
}

#[test]
fn messages_given_back_after_the_end_go_to_the_front_of_the_queue() {
    let mut h = Harness::new(config());
    let conn = open_with_pending(&mut h, &["two"]);
    h.event(Event::Disconnected(conn, None));
    h.client.give_back(conn, &mut sends_for(conn, &["one"]));
    assert_eq!(
        reconnect_and_take_sends(&mut h),
        vec![Message::from("one"), Message::from("two")]
    );
}

#[test]
fn messages_given_back_after_closing_for_good_are_reported_dropped() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.client.close(h.now, 1000, "").unwrap();
    h.event(Event::Disconnected(conn, None));
    h.notices();
    h.client.give_back(conn, &mut sends_for(conn, &["gone"]));
    assert_eq!(
        h.notices(),
        vec![Notice::Dropped {
            messages: 1,
            bytes: 4,
            cause: DropCause::Closed
        }]
    );
}
