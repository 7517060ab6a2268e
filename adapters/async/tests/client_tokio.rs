//! The async client on tokio (`heartline_async::tokio::connect`: tokio's TcpStream,
//! reactor and timer) against a real server on 127.0.0.1, with the scenarios every
//! client flavour runs.

#[macro_use]
mod common;

client_scenario_tests!(common::async_client::tokio);

#[test]
fn outside_a_tokio_runtime_the_helpers_say_so_instead_of_panicking() {
    let built =
        heartline_async::tokio::connect(heartline_async::ClientBuilder::new("ws://127.0.0.1:9/"));
    assert!(
        matches!(built, Err(heartline_async::BuildError::Spawn(_))),
        "{built:?}"
    );
    // Polled by another executor, the tokio server helper refuses as well.
    let config = heartline_async::server::ServerConfig::default();
    let listening = heartline_async::server::tokio::listen("127.0.0.1:0", config);
    let err = futures_lite::future::block_on(listening).expect_err("no tokio runtime");
    assert!(err.to_string().contains("runtime"), "{err}");
}
