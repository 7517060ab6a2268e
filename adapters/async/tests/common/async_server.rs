//! The async server as a [`TestServer`]: the server runs on the runtime's executor,
//! the test thread blocks on its event stream and handle.

use std::net::SocketAddr;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use heartline_async::server::{
    ClientInfo, ClusterClient, Sent, Server, ServerConfig, ServerError, ServerEvent,
};
use heartline_core::Message;

use super::server_scenarios::TestServer;

/// A running async server and its address.
#[derive(Debug)]
pub struct AsyncServer {
    /// The server.
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A server configuration around `core` for tests.
pub fn config(core: heartline_core::ServerConfig) -> ServerConfig {
    let mut built = ServerConfig::default();
    built.core = core;
    built
}

/// `f`, or `None` after `wait`.
fn within<T>(wait: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    async_io::block_on(future::or(async { Some(f.await) }, async {
        Timer::after(wait).await;
        None
    }))
}

impl TestServer for AsyncServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn next_event(&self, wait: Duration) -> Option<ServerEvent> {
        within(wait, self.server.next_event()).flatten()
    }

    fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        async_io::block_on(self.server.handle().clients())
    }

    fn broadcast(&self, message: Message) -> Result<usize, ServerError> {
        async_io::block_on(self.server.handle().broadcast(message))
    }

    fn cluster_clients(&self) -> Option<Vec<ClusterClient>> {
        async_io::block_on(self.server.handle().cluster_clients())
            .ok()
            .flatten()
    }

    fn send(&self, name: &str, message: Message) -> Result<Sent, ServerError> {
        async_io::block_on(self.server.handle().send(name, message))
    }

    fn shutdown(&self) {
        self.server.handle().shutdown();
    }

    fn wait_stopped(&self, wait: Duration) -> bool {
        within(wait, self.server.handle().stopped()).is_some()
    }
}
