//! Failures that stop the client for good, and servers that ask for a pause.

mod common;

use common::{config, ms, Harness};
use heartline_core::{
    close_code, ConnectError, ConnectFailure, Event, Frame, GiveUpReason, Initiator, Notice,
    ReadyState,
};

fn fail_handshake(
    h: &mut Harness,
    status: u16,
    retry_after: Option<std::time::Duration>,
) -> Vec<Notice> {
    let conn = h.expect_connect();
    h.notices();
    h.event(Event::ConnectFailed(
        conn,
        ConnectError::Http {
            status,
            retry_after,
        },
    ));
    h.notices()
}

#[test]
fn unauthorized_handshake_gives_up_with_the_status() {
    let mut h = Harness::new(config());
    let notices = fail_handshake(&mut h, 401, None);
    assert_eq!(
        notices.last(),
        Some(&Notice::GaveUp {
            reason: GiveUpReason::HttpStatus(401)
        })
    );
    assert_eq!(h.client.state(), ReadyState::Closed);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn every_default_terminal_status_is_terminal_and_others_are_not() {
    for status in [400, 401, 403, 404, 410] {
        let mut h = Harness::new(config());
        fail_handshake(&mut h, status, None);
        assert!(h.client.is_closed(), "{status} should be terminal");
    }
    for status in [500, 502, 503, 429, 408] {
        let mut h = Harness::new(config());
        fail_handshake(&mut h, status, None);
        assert!(!h.client.is_closed(), "{status} should be retried");
    }
}

#[test]
fn terminal_statuses_are_configurable() {
    let mut c = config();
    c.reconnect.terminal_http_statuses = vec![];
    let mut h = Harness::new(c);
    fail_handshake(&mut h, 401, None);
    assert!(!h.client.is_closed());
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let mut h = Harness::new(config());
    let notices = fail_handshake(&mut h, 429, Some(ms(7000)));
    assert!(notices.contains(&Notice::ConnectFailed {
        conn: heartline_core::ConnId(1),
        error: ConnectFailure::Http {
            status: 429,
            retry_after: Some(ms(7000))
        },
    }));
    assert!(notices.contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(7000)
    }));
}

#[test]
fn retry_after_is_capped_and_never_shortens_the_backoff() {
    let mut c = config();
    c.reconnect.retry_after_cap = ms(60_000);
    let mut h = Harness::new(c);
    let notices = fail_handshake(&mut h, 503, Some(ms(86_400_000)));
    assert!(notices.contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(60_000)
    }));
    let mut h = Harness::new(config());
    let notices = fail_handshake(&mut h, 503, Some(ms(10)));
    assert!(notices.contains(&Notice::ReconnectScheduled {
        attempt: 1,
        delay: ms(2000)
    }));
}

fn remote_close(code: u16) -> (Harness, Vec<Notice>) {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.frame(conn, Frame::Close(Some((code, "bye"))));
    assert!(
        h.actions().is_empty(),
        "the WebSocket library answers a Close itself"
    );
    h.event(Event::Disconnected(conn, None));
    let notices = h.notices();
    assert_eq!(
        notices[0],
        Notice::Closed {
            conn,
            code,
            reason: "bye".into(),
            by: Initiator::Remote
        }
    );
    (h, notices)
}

#[test]
fn do_not_come_back_close_codes_are_terminal() {
    for code in [1002, 1003, 1007, 1008, 1009, 1010, close_code::REPLACED] {
        let (h, notices) = remote_close(code);
        assert_eq!(
            notices.last(),
            Some(&Notice::GaveUp {
                reason: GiveUpReason::CloseCode {
                    code,
                    reason: "bye".into()
                }
            }),
            "code {code}"
        );
        assert!(h.client.is_closed());
    }
}

#[test]
fn going_away_and_restart_codes_reconnect() {
    for code in [1000, 1001, 1011, 1012, 1013, close_code::IDLE_TIMEOUT] {
        let (h, notices) = remote_close(code);
        assert!(
            matches!(
                notices.last(),
                Some(Notice::ReconnectScheduled { attempt: 1, .. })
            ),
            "code {code}: {notices:?}"
        );
        assert!(!h.client.is_closed());
    }
}

#[test]
fn close_frame_without_a_code_reports_1005_and_reconnects() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.frame(conn, Frame::Close(None));
    h.event(Event::Disconnected(conn, None));
    let notices = h.notices();
    assert!(matches!(
        notices[0],
        Notice::Closed {
            code: 1005,
            by: Initiator::Remote,
            ..
        }
    ));
    assert!(matches!(
        notices.last(),
        Some(Notice::ReconnectScheduled { .. })
    ));
}

#[test]
fn peer_that_never_finishes_its_close_is_aborted_after_the_close_timeout() {
    let mut h = Harness::new(config());
    let conn = h.open();
    h.frame(conn, Frame::Close(Some((1001, "restart"))));
    h.at(ms(1000));
    assert_eq!(h.actions(), vec![heartline_core::Action::Abort { conn }]);
    assert!(matches!(
        h.notices().last(),
        Some(Notice::ReconnectScheduled { .. })
    ));
}
