//! `tracing` events for what the machines decide, with the `tracing` feature (on by
//! default): targets `heartline::client`, `heartline::server` and `heartline::cluster`. Without the feature
//! every function here is empty and inlined away.
//!
//! Levels: `info` for a connection's life (open, closed, replaced, reconnect
//! scheduled, upgrade refused, shutdown), `warn` for what went wrong on the way
//! (heartbeat missed, evicted, connect failed, suspended, messages dropped or
//! unconfirmed), `error` for a client that gave up, `trace` for every heartbeat sent
//! and answered.

use heartline_core::{ClusterNotice, ConnId, Notice, ServerNotice};

/// A client's notice.
#[inline]
pub fn client_notice(notice: &Notice) {
    #[cfg(feature = "tracing")]
    {
        use tracing::{debug, error, info, trace, warn};
        const T: &str = "heartline::client";
        match notice {
            Notice::Connecting { conn, attempt } => {
                info!(target: T, conn = conn.0, attempt, "connecting")
            }
            Notice::Open { conn } => info!(target: T, conn = conn.0, "open"),
            Notice::Rtt(rtt) => {
                trace!(target: T, rtt_us = rtt.as_micros() as u64, "heartbeat answered")
            }
            Notice::HeartbeatMissed { conn } => {
                warn!(target: T, conn = conn.0, "heartbeat missed: the server is not answering")
            }
            Notice::ConnectFailed { conn, error } => {
                warn!(target: T, conn = conn.0, %error, "connect failed")
            }
            Notice::Closed {
                conn,
                code,
                reason,
                by,
            } => {
                info!(target: T, conn = conn.0, code, reason = %reason, by = by.as_str(), "closed")
            }
            Notice::ReconnectScheduled { attempt, delay } => info!(
                target: T,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "reconnect scheduled"
            ),
            Notice::GaveUp { reason } => error!(target: T, %reason, "gave up"),
            Notice::Resumed { lost } => warn!(
                target: T,
                lost_ms = lost.as_millis() as u64,
                "resumed after a suspension: probing the connection"
            ),
            Notice::Dropped {
                messages,
                bytes,
                cause,
            } => warn!(target: T, messages, bytes, cause = ?cause, "messages dropped"),
            Notice::Unconfirmed {
                conn,
                messages,
                bytes,
            } => warn!(
                target: T,
                conn = conn.0,
                messages,
                bytes,
                "connection ended with messages the server was not seen to read"
            ),
            // Kinds added to the core later are logged once named here.
            _ => debug!(target: T, ?notice, "notice"),
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = notice;
}

/// A client sent a heartbeat on `conn`.
#[inline]
pub fn client_heartbeat(conn: ConnId) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: "heartline::client", conn = conn.0, "heartbeat sent");
    #[cfg(not(feature = "tracing"))]
    let _ = conn;
}

/// A server's notice.
#[inline]
pub fn server_notice(notice: &ServerNotice) {
    #[cfg(feature = "tracing")]
    {
        use tracing::{debug, info, warn};
        const T: &str = "heartline::server";
        match notice {
            ServerNotice::Opened { conn, name } => {
                info!(target: T, conn = conn.0, name = name.as_deref(), "open")
            }
            ServerNotice::Replaced { name, old, new } => info!(
                target: T,
                name = &**name,
                old = old.0,
                new = new.0,
                "replaced: a newer connection took the name"
            ),
            ServerNotice::Closed {
                conn,
                name,
                code,
                reason,
                by,
                evicted: Some(why),
            } => warn!(
                target: T,
                conn = conn.0,
                name = name.as_deref(),
                code,
                reason = %reason,
                by = by.as_str(),
                evicted = why.as_str(),
                "evicted"
            ),
            ServerNotice::Closed {
                conn,
                name,
                code,
                reason,
                by,
                evicted: None,
            } => info!(
                target: T,
                conn = conn.0,
                name = name.as_deref(),
                code,
                reason = %reason,
                by = by.as_str(),
                "closed"
            ),
            ServerNotice::Rejected { path, status } => {
                info!(target: T, path = %path, status, "upgrade refused")
            }
            ServerNotice::ShutdownComplete => info!(target: T, "shutdown complete"),
            ServerNotice::Resumed { lost } => warn!(
                target: T,
                lost_ms = lost.as_millis() as u64,
                "suspended: every deadline moved by the time lost"
            ),
            // Kinds added to the core later are logged once named here.
            _ => debug!(target: T, ?notice, "notice"),
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = notice;
}

/// A server pinged `conn`.
#[inline]
pub fn server_ping(conn: ConnId) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: "heartline::server", conn = conn.0, "heartbeat sent");
    #[cfg(not(feature = "tracing"))]
    let _ = conn;
}

/// A cluster's notice.
#[inline]
pub fn cluster_notice(notice: &ClusterNotice) {
    #[cfg(feature = "tracing")]
    {
        use tracing::{debug, info, warn};
        const T: &str = "heartline::cluster";
        match notice {
            ClusterNotice::SendResult { id, outcome } => {
                debug!(target: T, id = id.0, outcome = ?outcome, "send answered")
            }
            ClusterNotice::NodeUp { node } => info!(target: T, node = %node, "node up"),
            ClusterNotice::NodeDown { node, clients } => {
                warn!(target: T, node = %node, clients, "node down: its clients left")
            }
            ClusterNotice::Backplane { up: true } => info!(target: T, "backplane up"),
            ClusterNotice::Backplane { up: false } => {
                warn!(target: T, "backplane down: serving this node's clients alone")
            }
            // Kinds added to the core later are logged once named here.
            _ => debug!(target: T, ?notice, "notice"),
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = notice;
}

/// A backplane connection failed (it is retried).
#[inline]
pub fn backplane_lost(error: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "heartline::cluster", %error, "backplane connection lost");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}

/// A message for the backplane was dropped, and why.
#[inline]
pub fn backplane_dropped(why: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "heartline::cluster", why, "backplane message dropped");
    #[cfg(not(feature = "tracing"))]
    let _ = why;
}

/// A message from the backplane did not decode.
#[inline]
pub fn backplane_garbled(error: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "heartline::cluster", %error, "backplane message does not decode");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}
