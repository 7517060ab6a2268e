//! A connection's way in: accepted, judged, opened (or dropped at its handshake
//! deadline, which the table keeps).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use super::table::Stage;
use super::{at, Shutdown};
use crate::frame::close_code;
use crate::{
    Accepted, ConnId, Initiator, OpenError, Rejection, Server, ServerNotice, UpgradeRequest,
};

impl<P> Server<P> {
    /// A socket was accepted: the server tracks it from now on, and drops it (with
    /// [`ServerAction::Evict`](crate::ServerAction::Evict), [`EvictReason::HandshakeTimeout`](crate::EvictReason::HandshakeTimeout)) unless its upgrade is
    /// done within [`ServerConfig::handshake_timeout`](crate::ServerConfig::handshake_timeout). It is not open yet: it gets no
    /// pings, is in no registry, and is not counted by [`Server::len`].
    pub fn incoming(&mut self, now: Instant) -> Result<ConnId, OpenError> {
        let now = self.clamp(now);
        if self.shutdown != Shutdown::Running {
            return Err(OpenError::ShuttingDown);
        }
        self.table
            .insert(now, Stage::Handshake)
            .ok_or(OpenError::Full)
    }

    /// Accepting a socket failed (out of file descriptors, a connection reset before it
    /// was accepted): the listener is fine, but trying again at once would spin. The
    /// answer is when to try again ([`ServerConfig::accept_pause`](crate::ServerConfig::accept_pause) from now).
    pub fn handle_accept_failed(&mut self, now: Instant) -> Instant {
        let now = self.clamp(now);
        at(now, self.config.accept_pause).unwrap_or(now)
    }

    /// Judges an upgrade request with [`ServerConfig::upgrade`](crate::ServerConfig::upgrade) (and 503 while shutting
    /// down). A rejection is also reported as [`ServerNotice::Rejected`]; the driver
    /// writes it and drops the socket (the handshake deadline still bounds that write).
    pub fn accept(
        &mut self,
        now: Instant,
        req: &UpgradeRequest<'_>,
    ) -> Result<Accepted, Rejection> {
        self.clamp(now);
        let verdict = if self.shutdown != Shutdown::Running {
            Err(Rejection::unavailable("server is shutting down"))
        } else {
            self.config.upgrade.check(req)
        };
        if let Err(r) = &verdict {
            self.notices.push_back(ServerNotice::Rejected {
                path: req.path().to_owned(),
                status: r.status,
            });
        }
        verdict
    }

    /// `conn`'s 101 went out: it is open from now on and, with a name, registered (an
    /// empty name counts as none). An open connection with the same name is replaced: it
    /// gets a Close with [`close_code::REPLACED`] and leaves the registry.
    pub fn open(
        &mut self,
        now: Instant,
        conn: ConnId,
        name: Option<String>,
    ) -> Result<(), OpenError> {
        let now = self.clamp(now);
        if self.shutdown != Shutdown::Running {
            return Err(OpenError::ShuttingDown);
        }
        let idx = match self.table.find(conn) {
            Some(idx) if self.table.slot(idx).stage == Stage::Handshake => idx,
            _ => return Err(OpenError::NotPending),
        };
        let name: Option<Arc<str>> = name.filter(|n| !n.is_empty()).map(Arc::from);
        self.table.slot_mut(idx).name = name.clone();
        self.table.move_to(idx, Stage::Quiet, now);
        let replaced = name
            .as_ref()
            .and_then(|n| self.registry.insert(n.clone(), conn));
        self.notices.push_back(ServerNotice::Opened {
            conn,
            name: name.clone(),
        });
        if let (Some(old), Some(name)) = (replaced, name) {
            if let Some(idx) = self.table.find(old) {
                self.start_close(
                    now,
                    idx,
                    close_code::REPLACED,
                    Cow::Borrowed("replaced by a newer connection"),
                    Initiator::Local,
                );
            }
            self.notices.push_back(ServerNotice::Replaced {
                name,
                old,
                new: conn,
            });
        }
        Ok(())
    }
}
