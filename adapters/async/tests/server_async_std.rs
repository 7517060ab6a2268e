//! The async server on async-std's executor over real sockets on 127.0.0.1, started
//! with the runtime-independent `Server::start`, so it runs whether or not the
//! `async-std` feature is on (the scenarios in heartline-blocking's
//! `tests/common/server_scenarios.rs`).

mod common;

use common::async_server::{config, AsyncServer};
use heartline_async::server::Server;

fn start(core: heartline_core::ServerConfig) -> AsyncServer {
    start_with(config(core))
}

fn start_with(config: heartline_async::server::ServerConfig) -> AsyncServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (server, driver) = Server::start(listener, config).expect("server");
    async_std::task::spawn(driver);
    let addr = server.local_addr();
    AsyncServer { server, addr }
}

crate::server_tests!(start);
crate::cluster_tests!(start_with);
