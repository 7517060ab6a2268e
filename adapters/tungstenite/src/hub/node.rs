//! A hub's share of a cluster: the core's cluster machine, the link to the backplane,
//! and what the machine's actions mean for this server's connections.

use std::io;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use heartline_core::{
    close_code, Cluster, ClusterAction, ClusterNotice, ConfigError, ConnId, Message, Server,
    ServerNotice, Wire,
};
use tungstenite::Message as WsMessage;

use crate::cluster::{Backplane, BackplaneEvent, ClusterSetup, Inbox, Link};
use crate::wire;

/// The reason in the Close a client gets when a newer one took its name elsewhere.
const REPLACED_ELSEWHERE: &str = "replaced by a newer connection on another node";

/// This server as a node of a cluster.
pub(super) struct Node {
    pub(super) machine: Cluster,
    backplane: Arc<dyn Backplane>,
    link: Option<Box<dyn Link>>,
}

impl Node {
    /// The node, not yet joined: the backplane counts as down until it says up.
    pub(super) fn new(setup: &ClusterSetup, now: Instant) -> Result<Node, ConfigError> {
        let machine = Cluster::new(setup.config.clone(), now, SystemTime::now())?;
        Ok(Node {
            machine,
            backplane: setup.backplane.clone(),
            link: None,
        })
    }

    /// Joins the backplane; what it has for this node goes to `inbox`.
    pub(super) fn join(&mut self, inbox: Inbox) -> io::Result<()> {
        let link = self.backplane.join(&self.machine.config().node, inbox)?;
        self.link = Some(link);
        Ok(())
    }

    /// What the backplane said.
    pub(super) fn backplane(&mut self, now: Instant, event: BackplaneEvent) {
        match event {
            BackplaneEvent::Up => self.machine.handle_backplane(now, true),
            BackplaneEvent::Down => self.machine.handle_backplane(now, false),
            BackplaneEvent::Message(bytes) => match Wire::decode(&bytes) {
                Ok(wire) => self.machine.handle_wire(now, wire),
                Err(e) => crate::trace::backplane_garbled(&e),
            },
        }
    }

    /// A server notice about this node's clients: the cluster learns who is here.
    pub(super) fn noticed(&mut self, now: Instant, notice: &ServerNotice) {
        match notice {
            ServerNotice::Opened {
                conn,
                name: Some(name),
            } => self.machine.local_open(now, name, *conn),
            ServerNotice::Closed {
                conn,
                name: Some(name),
                ..
            } => self.machine.local_close(now, name, *conn),
            _ => {}
        }
    }

    /// Whether `name` is held on another node (then a send goes there).
    pub(super) fn is_elsewhere(&self, name: &str) -> bool {
        self.machine
            .lookup(name)
            .is_some_and(|(node, _)| node != self.machine.config().node)
    }

    /// Carries out the machine's actions on `core` and the backplane, and hands its
    /// notices to `notices`. Returns whether `core` was given something to do.
    pub(super) fn pump(
        &mut self,
        now: Instant,
        core: &mut Server<WsMessage>,
        mut notices: impl FnMut(ClusterNotice),
    ) -> bool {
        let mut acted = false;
        while let Some(action) = self.machine.poll_action() {
            match action {
                ClusterAction::Publish { channel, wire } => {
                    if let Some(link) = self.link.as_mut() {
                        link.publish(&channel, wire.encode());
                    }
                }
                ClusterAction::Deliver {
                    conn,
                    message,
                    token,
                    ..
                } => {
                    acted = true;
                    let sent = core.send(now, conn, wire::to_message(message)).is_ok();
                    self.machine.handle_delivered(now, token, sent);
                }
                ClusterAction::DeliverAll { message, .. } => {
                    acted = true;
                    core.broadcast(now, wire::to_message(message));
                }
                ClusterAction::Replace { conn, .. } => {
                    acted = true;
                    replace(now, core, conn);
                }
            }
        }
        while let Some(notice) = self.machine.poll_notice() {
            crate::trace::cluster_notice(&notice);
            notices(notice);
        }
        acted
    }

    /// Sends `message` to the other nodes' clients.
    pub(super) fn broadcast(&mut self, now: Instant, message: Message) {
        self.machine.broadcast(now, None, message);
    }
}

fn replace(now: Instant, core: &mut Server<WsMessage>, conn: ConnId) {
    // Not open any more (closing already): its close under way ends it.
    let _ = core.close(now, conn, close_code::REPLACED, REPLACED_ELSEWHERE);
}
