//! A server that breaks the protocol: the client fails the connection with the close
//! code RFC 6455 names for it, reports that code, and connects again (shared by every
//! client flavour through `client_scenario_tests!`).

use heartline_core::{Initiator, Notice};
use heartline_tungstenite::client::ClientEvent;

use super::client_peer::TestServer;
use super::client_scenarios::{wait_for, Setup, Start};

/// The limit the over-size case goes past.
const LIMIT: usize = 1024;

/// Raw server frames (servers send unmasked) and the close code each must earn.
fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let mut ping_200 = vec![0x89, 126, 0, 200];
    ping_200.resize(4 + 200, b'p');
    let mut too_big = vec![0x82, 126];
    too_big.extend_from_slice(&(LIMIT as u16 * 2).to_be_bytes());
    too_big.resize(4 + LIMIT * 2, b'x');
    vec![
        (
            "masked frame",
            vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2],
            1002,
        ),
        ("reserved bits", vec![0xC1, 0x02, b'h', b'i'], 1002),
        ("opcode 3", vec![0x83, 0x00], 1002),
        ("200-byte ping", ping_200, 1002),
        ("fragmented ping", vec![0x09, 0x00], 1002),
        ("invalid UTF-8", vec![0x81, 0x02, 0xff, 0xfe], 1007),
        ("over the limit", too_big, 1009),
    ]
}

/// Each violation is answered with its close code, reported to the application as a
/// close the client made, and followed by a fresh connection.
pub fn violations_get_their_close_codes(start: Start) {
    for (what, bytes, code) in cases() {
        let server = TestServer::start();
        let setup = Setup {
            max_message_size: Some(LIMIT),
            ..Setup::fast()
        };
        let (_client, mut events) = start(&server.url(), setup);
        let events = events.as_mut();
        let is_open = |e: &ClientEvent| matches!(e, ClientEvent::Notice(Notice::Open { .. }));
        wait_for(events, "open", is_open);
        server.send_raw(&bytes);
        let seen = wait_for(events, "closed", |e| {
            matches!(e, ClientEvent::Notice(Notice::Closed { .. }))
        });
        match seen.last() {
            Some(ClientEvent::Notice(Notice::Closed {
                code: got,
                by: Initiator::Local,
                reason,
                ..
            })) => {
                assert_eq!(*got, code, "{what}: {reason}");
                assert!(!reason.is_empty(), "{what}: the reason says why");
            }
            other => panic!("{what}: not a local close with a code: {other:?}"),
        }
        // The connection ended and the next one opens: the client is not stuck.
        wait_for(events, "open again", is_open);
        assert_eq!(server.closes().first(), Some(&code), "{what}: on the wire");
        assert!(
            !seen.iter().any(|e| matches!(e, ClientEvent::Text(_))),
            "{what}: nothing of the bad frame reaches the application: {seen:#?}"
        );
    }
}
