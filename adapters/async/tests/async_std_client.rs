//! The async client on async-std (deprecated upstream, still supported) against a real server on 127.0.0.1 (scenarios in
//! `common`): reconnect after the server dies, half-open detection, delivery of what was
//! sent while down, close, and giving up on 401.

mod common;

use common::Connect;

const CONNECT: Connect = heartline_async::async_std::connect;

#[test]
fn reconnects_after_the_server_dies_and_delivers_what_was_sent_meanwhile() {
    async_std::task::block_on(common::server_dies_and_returns(CONNECT));
}

#[test]
fn a_half_open_server_is_noticed_by_the_heartbeat_and_left() {
    async_std::task::block_on(common::half_open_server(CONNECT));
}

#[test]
fn close_stops_for_good() {
    async_std::task::block_on(common::close_stops_for_good(CONNECT));
}

#[test]
fn a_401_handshake_gives_up_and_says_why() {
    async_std::task::block_on(common::http_401_gives_up(CONNECT));
}

#[test]
fn each_attempt_takes_fresh_headers_from_the_callback() {
    async_std::task::block_on(common::fresh_headers_per_attempt(CONNECT));
}
