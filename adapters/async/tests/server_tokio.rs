//! The async server on tokio over real sockets on 127.0.0.1, started with
//! `heartline_async::server::tokio::listen` (the scenarios in heartline-blocking's
//! `tests/common/server_scenarios.rs` and `cluster_scenarios.rs`).

mod common;

use common::async_server::{config, AsyncServer};

fn start(core: heartline_core::ServerConfig) -> AsyncServer {
    start_with(config(core))
}

fn start_with(config: heartline_async::server::ServerConfig) -> AsyncServer {
    let listening = heartline_async::server::tokio::listen("127.0.0.1:0", config);
    let (server, addr) = common::tokio_runtime().block_on(listening).expect("listen");
    AsyncServer { server, addr }
}

crate::server_tests!(start);
crate::cluster_tests!(start_with);
