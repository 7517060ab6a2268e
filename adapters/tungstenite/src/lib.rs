//! What `heartline-blocking` and `heartline-async` share: the glue between the
//! [`heartline_core`] state machines and tungstenite's types, with no IO and no runtime.
//!
//! Applications use one of those adapters, which re-export what they need from here.
//! This crate is for the adapters themselves and for anyone writing another driver
//! over tungstenite:
//!
//! - [`client`]: the client handle and events, the builder options, the attempt
//!   target, and the core shared by handles and driver, with the core's actions turned
//!   into tungstenite messages;
//! - [`front`]: every connection of a server from accept to end, over non-blocking
//!   sockets, for whichever loop reports their readiness;
//! - [`cluster`]: the backplanes that carry a cluster's messages between servers
//!   (in memory, and Redis with the `redis` feature);
//! - [`hub`]: the one server front: the server's core machine, the answer to every
//!   request head, the connections' outboxes, what connections report and what the
//!   application asks;
//! - [`wire`]: the HTTP side of an upgrade, buffer defaults, and the one translation
//!   between the core's messages and frames and tungstenite's;
//! - [`tls`]: the TLS setup for `wss://` clients (feature `rustls`).
//!
//! Both adapters run tungstenite 0.30 (async-tungstenite wraps the same version), so
//! these types are the same in both.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod client;
pub mod cluster;
pub mod front;
pub mod hub;
pub mod net;
pub mod resolve;
pub mod tls;
pub mod trace;
pub mod wire;

/// The core this glue drives, for the client builder options macro.
pub use heartline_core;

/// How a driver waits next, as the core's deadline says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// For IO, or until this deadline, whichever comes first.
    Until(std::time::Instant),
    /// For IO: no deadline is set.
    Forever,
    /// Not at all: the machine is done (shut down, or closed for good), stop.
    Stop,
}

/// Locks `mutex`, also when a holder panicked: every mutex in heartline guards data that
/// each holder leaves consistent, so a poisoned lock is still usable.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
#[cfg(feature = "rustls")]
pub use rustls;
/// The tungstenite version every adapter shares.
pub use tungstenite;
