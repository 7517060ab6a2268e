//! The blocking server over real sockets on 127.0.0.1: eviction of a frozen client,
//! replacement by name, rejection of a bad path, the handshake timeout and graceful
//! shutdown (the scenarios in `common/server_scenarios.rs`).

mod common;

use std::net::SocketAddr;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::server_scenarios::TestServer;
use heartline_blocking::hub::{ClientInfo, ClusterClient, Sent, ServerError, ServerEvent};
use heartline_blocking::server::{Server, ServerConfig};
use heartline_core::Message;

fn start(core: heartline_core::ServerConfig) -> Server {
    let config = {
        let mut built = ServerConfig::default();
        built.core = core;
        built
    };
    start_with(config)
}

fn start_with(config: ServerConfig) -> Server {
    Server::bind("127.0.0.1:0", config).expect("bind")
}

impl TestServer for Server {
    fn addr(&self) -> SocketAddr {
        self.local_addr()
    }

    fn next_event(&self, wait: Duration) -> Option<ServerEvent> {
        self.recv_timeout(wait).ok()
    }

    fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.handle().clients()
    }

    fn broadcast(&self, message: Message) -> Result<usize, ServerError> {
        self.handle().broadcast(message)
    }

    fn cluster_clients(&self) -> Option<Vec<ClusterClient>> {
        self.handle().cluster_clients().ok().flatten()
    }

    fn send(&self, name: &str, message: Message) -> Result<Sent, ServerError> {
        self.handle().send(name, message)
    }

    fn shutdown(&self) {
        self.handle().shutdown();
    }

    fn wait_stopped(&self, wait: Duration) -> bool {
        // The event channel ends when the driver thread does.
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_timeout(left) {
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
                Ok(_) => {}
            }
        }
    }
}

crate::server_tests!(start);
crate::cluster_tests!(start_with);
