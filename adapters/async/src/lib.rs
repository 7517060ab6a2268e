//! heartline for async code: async-tungstenite over any futures-io stream, on smol,
//! tokio or async-std, driven by the [`heartline_core`] state machines.
//!
//! # Client
//!
//! [`build`] turns a [`ClientBuilder`] into a [`ClientHandle`] (cloneable, `Send +
//! Sync`: send, close, reconnect, state), a [`ClientEvents`] stream (the core's
//! [`Notice`]s and inbound messages) and a [`Driver`] future that does the IO. Spawn the driver on any executor
//! whose reactor is async-io, or use a helper that does it:
//!
//! - `smol::connect` (feature `smol`, on by default);
//! - `tokio::connect` (feature `tokio`: tokio's `TcpStream`, reactor and timer, and
//!   nothing of smol or async-io with `default-features = false`);
//! - `async_std::connect` (feature `async-std`; async-std is discontinued upstream,
//!   so this support is deprecated and kept for existing programs).
//!
//! Each only adds a connector and a spawn: the driver is the same generic loop over
//! any `AsyncRead + AsyncWrite` stream (see [`Connector`]), timed by the connector's
//! [`runtime`]. The default `TcpConnector` runs on async-io, the reactor smol and
//! async-std share; `tokio::TcpConnector` on tokio.
//!
//! Instead of the stream, an event handler can run on the driver's own task
//! ([`build_with_handler`], `smol::connect_with_handler`): it answers
//! through a [`Responder`] whose sends go out in the same turn, with no task switch.
//!
//! The events are a `Stream` ([`ClientEvents`]); the handle is cloneable and a
//! `futures::Sink` of messages (`client.send(msg).await` through `SinkExt`, or
//! `stream.forward(client)`): always ready, since the client's bounded queue is the
//! back-pressure, and a message it refuses is the sink's error.
//!
//! The builder, the handle and the events are the same types as in
//! `heartline-blocking` (all come from `heartline-tungstenite`), so code that builds a
//! client or handles its events works with either.
//!
//! Feature `rustls` adds `wss://` with rustls (ring), the web PKI roots, and
//! `ClientBuilder::tls_root_certificate` for self-signed servers, through futures-rustls
//! on any connector. Feature `tokio-rustls` gives the tokio connector the same through
//! tokio-rustls on tokio's own `TcpStream` (and needs neither futures-rustls nor
//! `rustls`).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod client;
mod handoff;
#[cfg(feature = "async-io")]
mod tcp;
mod tls;

#[cfg(feature = "async-std")]
pub mod async_std;
pub mod runtime;
#[cfg(feature = "smol")]
pub mod smol;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use async_tungstenite::tungstenite::protocol::WebSocketConfig;
#[cfg(feature = "async-io")]
pub use client::{build, build_handler, TcpConnector};
pub use client::{build_with, build_with_handler, ClientEvents, Connector, Driver, Responder};
pub use heartline_core::{
    ClientConfig, HeartbeatConfig, HeartbeatKind, Message, Notice, ReadyState, ReconnectConfig,
};
pub use heartline_tungstenite::client::{
    BoxError, BuildError, ClientBuilder, ClientEvent, ClientHandle, ConnectTarget,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE,
};
pub use heartline_tungstenite::cluster;
#[cfg(any(feature = "rustls", feature = "tokio-rustls"))]
pub use rustls;
#[cfg(feature = "async-io")]
pub use tcp::TcpStream;
pub use tls::MaybeTls;
pub mod server;
