//! The async server on async-std's executor and sockets over real sockets on
//! 127.0.0.1, wired with the runtime-independent pieces (`Server::new`,
//! `accept_loop`), so it runs whether or not the `async-std` feature is on (the
//! scenarios in heartline-blocking's `tests/common/server_scenarios.rs`).

mod common;

use std::sync::Arc;

use common::async_server::{config, AsyncServer};
use heartline_async::server::{accept_loop, Server};

fn start(core: heartline_core::ServerConfig) -> AsyncServer {
    async_std::task::block_on(async {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (server, driver) = Server::new(config(core)).expect("server");
        async_std::task::spawn(driver);
        let listener = Arc::new(listener);
        async_std::task::spawn(accept_loop(
            server.handle(),
            move || {
                let listener = listener.clone();
                async move { listener.accept().await.map(|(s, _)| s) }
            },
            |handle, stream| {
                async_std::task::spawn(handle.serve(stream));
            },
        ));
        AsyncServer { server, addr }
    })
}

crate::server_tests!(start);
