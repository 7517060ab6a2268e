//! Shared helpers for this crate's integration tests.
#![allow(dead_code, unused_macros)]

// The peer and the scenarios of heartline-blocking's client tests: every client
// flavour is tested against the same server with the same scenarios.
#[path = "../../../blocking/tests/common/client_peer.rs"]
pub mod client_peer;
#[macro_use]
#[path = "../../../blocking/tests/common/client_scenarios.rs"]
pub mod client_scenarios;
#[path = "../../../blocking/tests/common/client_violations.rs"]
pub mod client_violations;

pub mod async_client;

// The raw clients and the scenarios of heartline-blocking's server tests: every
// server runtime is tested with the same clients and the same scenarios.
#[path = "../../../blocking/tests/common/cluster_scenarios.rs"]
pub mod cluster_scenarios;
#[path = "../../../blocking/tests/common/server.rs"]
pub mod server;
#[path = "../../../blocking/tests/common/server_scenarios.rs"]
pub mod server_scenarios;

pub mod async_server;

/// The tokio runtime of this test binary's tokio clients and servers: two worker
/// threads with IO and time, as `#[tokio::main]` starts.
pub fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}
