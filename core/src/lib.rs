//! # heartline-core
//!
//! The sans-IO heart of heartline: the decisions that keep a WebSocket connection alive
//! and honest, with no clock, socket or runtime inside.
//!
//! A machine is fed events (a connection opened, a frame arrived, the connection
//! ended, a deadline passed), each with the current time, and answers with actions for
//! its driver, notices for the application, and the one next deadline. The same inputs
//! always give the same outputs, so every behaviour is testable in virtual time.
//!
//! The client ([`Client`]) pings, notices a dead server, reconnects with jittered
//! backoff, queues what is sent while disconnected and knows when to give up.
//!
//! The server ([`Server`]) pings quiet clients and evicts silent ones from one timer
//! source, keeps a registry of clients by name, answers browsers' application
//! heartbeats, bounds each client's backlog and validates upgrade requests.
//!
//! The cluster ([`Cluster`]) keeps one registry of names across server processes;
//! its backplane connection ([`BackplaneLink`]) decides when to connect to the
//! backplane server, how long IO may take, when to probe a silent server and when to
//! retry.
//!
//! ## What may grow
//!
//! Configurations, notices, reasons and errors are `#[non_exhaustive]`: a new setting
//! or a new kind of notice is not a breaking change. Build a configuration from its
//! `default()` (or `ClusterConfig::new`) and set fields; match notices with a `_` arm.
//! What a driver must carry out ([`Action`], [`ServerAction`], [`ClusterAction`],
//! [`LinkStep`]) and
//! the events it reports ([`Event`]) stay exhaustive on purpose: a new action is work
//! every driver has to do, so adding one is a breaking change the compiler points to.
//!
//! ## Driving a client
//!
//! ```
//! use std::time::{Duration, Instant};
//! use heartline_core::{Action, Client, ClientConfig, Event};
//!
//! let start = Instant::now();
//! let mut client = Client::new(ClientConfig::default(), 42, start).unwrap();
//! // The driver's loop: drain actions and execute them...
//! while let Some(action) = client.poll_action() {
//!     if let Action::Connect { conn, .. } = action {
//!         // ...here the socket connects at once.
//!         client.handle_event(start, Event::Connected(conn));
//!     }
//! }
//! // ...then wait for IO or the next deadline. Nothing arrives, so once the
//! // heartbeat interval (20 s by default) has passed in silence, the client pings.
//! let mut now = start;
//! let ping = loop {
//!     now = client.poll_timeout().expect("a deadline is always armed while open");
//!     client.handle_timeout(now);
//!     if let Some(action) = client.poll_action() {
//!         break action;
//!     }
//! };
//! assert!(matches!(ping, Action::SendPing { .. }));
//! assert_eq!(now - start, Duration::from_secs(20));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod backoff;
mod client;
mod cluster;
mod frame;
mod rng;
mod server;
mod timers;

use std::fmt;

pub use backoff::{Backoff, Jitter};
pub use client::{
    Action, AppHeartbeat, Client, ClientConfig, CloseError, ConnectError, ConnectFailure,
    DropCause, Event, GiveUpReason, HeartbeatConfig, HeartbeatKind, Notice, Overflow, QueueConfig,
    ReconnectConfig, ReplyMatcher, SendError, SendErrorKind,
};
pub use cluster::{
    BackplaneLink, Channel, Cluster, ClusterAction, ClusterConfig, ClusterNotice, DeliveryToken,
    LinkConfig, LinkStep, Route, SendId, SendOutcome, Wire, WireError,
};
pub use frame::{close_code, Frame, Message};
pub use rng::Rng;
pub use server::{
    percent_decode, Accepted, AuthorizeFn, EvictReason, FrameFn, HeartbeatAnswer, HeartbeatMatch,
    HeartbeatRule, NameFn, NameSource, OpenError, OriginRule, PathRule, QueryError, Rejection,
    Server, ServerAction, ServerConfig, ServerNotice, ServerSendError, ServerSendErrorKind,
    UpgradeRequest, UpgradeRules,
};

/// Identifies one connection (one attempt). Each attempt gets a new, larger id, so an
/// event or action that names an older connection is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a driver does with a frame it fed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// An application message: hand it to the application.
    Deliver,
    /// Heartbeat or control traffic the core has dealt with: do not deliver.
    Consumed,
    /// The event names a connection that is no longer current: drop it.
    Stale,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This side (the application, or the heartbeat declaring the peer dead).
    Local,
    /// The peer, with a Close frame.
    Remote,
    /// Neither: the transport failed or ended without a close handshake.
    Transport,
}

impl Initiator {
    /// `local`, `remote` or `transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Local => "local",
            Initiator::Remote => "remote",
            Initiator::Transport => "transport",
        }
    }
}

/// The browser's `readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// Connecting, or waiting to reconnect.
    Connecting,
    /// Open.
    Open,
    /// Closing for good.
    Closing,
    /// Closed for good.
    Closed,
}

/// The payload of a heartbeat Ping: an 8-byte big-endian sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PingPayload([u8; 8]);

impl PingPayload {
    /// The payload for sequence number `seq`.
    pub fn from_seq(seq: u64) -> Self {
        PingPayload(seq.to_be_bytes())
    }

    /// The bytes to put in the Ping frame.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A configuration that makes no sense, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The field, as a path from the configuration's root (`heartbeat.interval`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            field,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}
