//! heartline for blocking code: tungstenite over `std::net`, driven by the
//! [`heartline_core`] state machines.
//!
//! # Client
//!
//! [`connect`] starts a client from a [`ClientBuilder`] on a thread of its own and gives a
//! [`ClientHandle`] (cloneable, `Send + Sync`: send, close, reconnect, state) and a
//! [`ClientEvents`] iterator (the core's [`Notice`]s and inbound messages).
//!
//! ```no_run
//! use heartline_blocking::{ClientBuilder, ClientEvent};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, events) = heartline_blocking::connect(ClientBuilder::new("ws://127.0.0.1:9001"))?;
//! client.send_text("hello")?;
//! for event in events {
//!     if let ClientEvent::Text(text) = event {
//!         println!("{text}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The client's thread connects with a connect timeout, then waits on the open socket,
//! the handles' wake-ups and the core's next deadline at once: what a handle sends goes
//! out immediately, an idle connection costs no wake-ups, and a peer that stops reading
//! is dropped after the core's write timeout. Feature `rustls` adds `wss://` with rustls (ring), the web
//! PKI roots, and `ClientBuilder::tls_root_certificate` for self-signed servers.
//!
//! # Server
//!
//! [`server`] is a WebSocket server that pings its clients, evicts the silent ones and
//! keeps a registry of clients by name: one event-loop thread over non-blocking
//! sockets, about 2 KB per connection, for tens of thousands of clients. [`hub`] and
//! [`wire`] are the pieces it shares with `heartline-async`'s server (from
//! `heartline-tungstenite`).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod client;
mod tls;

pub use client::{build, connect, ClientEvents, Driver};
pub use heartline_core::{
    ClientConfig, HeartbeatConfig, HeartbeatKind, Message, Notice, ReadyState, ReconnectConfig,
};
pub use heartline_tungstenite::client::{
    BoxError, BuildError, ClientBuilder, ClientEvent, ClientHandle, ConnectTarget,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE,
};
pub use heartline_tungstenite::{cluster, hub, net, wire};
#[cfg(feature = "rustls")]
pub use rustls;
pub use tls::MaybeTls;
pub use tungstenite::protocol::WebSocketConfig;
pub use tungstenite::{Bytes, Utf8Bytes};
pub mod server;
