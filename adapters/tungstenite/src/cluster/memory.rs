//! The in-memory backplane: the nodes are servers in one process.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use heartline_core::Channel;

use super::{Backplane, BackplaneEvent, Inbox, Link};
use crate::lock;

/// A backplane inside one process: every server joined to the same `Memory` (or a
/// clone of it) is a node of one cluster, and a message reaches its nodes before
/// [`Link::publish`] returns. Nodes can be cut off and reconnected
/// ([`Memory::set_reachable`]) to see what a cluster does when its backplane fails.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    nodes: Arc<Mutex<HashMap<String, Member>>>,
}

#[derive(Debug)]
struct Member {
    inbox: Inbox,
    reachable: bool,
    /// Which join this is: a node that rejoins under its id replaces its old link.
    serial: u64,
}

impl Memory {
    /// A backplane with no nodes yet.
    pub fn new() -> Self {
        Memory::default()
    }

    /// Cuts `node` off the backplane (`false`: it gets [`BackplaneEvent::Down`], and
    /// nothing it publishes or that is published for it arrives) or reconnects it
    /// (`true`: it gets [`BackplaneEvent::Up`]). Unknown nodes are ignored.
    pub fn set_reachable(&self, node: &str, reachable: bool) {
        let inbox = {
            let mut nodes = lock(&self.nodes);
            let Some(member) = nodes.get_mut(node) else {
                return;
            };
            if member.reachable == reachable {
                return;
            }
            member.reachable = reachable;
            member.inbox.clone()
        };
        inbox.deliver(if reachable {
            BackplaneEvent::Up
        } else {
            BackplaneEvent::Down
        });
    }

    /// The nodes joined now.
    pub fn nodes(&self) -> Vec<String> {
        lock(&self.nodes).keys().cloned().collect()
    }
}

impl Backplane for Memory {
    fn join(&self, node: &str, inbox: Inbox) -> io::Result<Box<dyn Link>> {
        let serial = {
            let mut nodes = lock(&self.nodes);
            let serial = nodes.get(node).map_or(0, |m| m.serial + 1);
            let member = Member {
                inbox: inbox.clone(),
                reachable: true,
                serial,
            };
            nodes.insert(node.to_owned(), member);
            serial
        };
        inbox.deliver(BackplaneEvent::Up);
        Ok(Box::new(MemoryLink {
            nodes: self.nodes.clone(),
            node: node.to_owned(),
            serial,
        }))
    }
}

#[derive(Debug)]
struct MemoryLink {
    nodes: Arc<Mutex<HashMap<String, Member>>>,
    node: String,
    serial: u64,
}

impl Link for MemoryLink {
    fn publish(&mut self, channel: &Channel, bytes: Vec<u8>) {
        // Collected first: an inbox may be a loop that publishes in turn.
        let inboxes: Vec<Inbox> = {
            let nodes = lock(&self.nodes);
            if !nodes.get(&self.node).is_some_and(|m| m.reachable) {
                return;
            }
            nodes
                .iter()
                .filter(|(id, m)| m.reachable && **id != self.node)
                .filter(|(id, _)| match channel {
                    Channel::All => true,
                    Channel::Node(to) => to == *id,
                })
                .map(|(_, m)| m.inbox.clone())
                .collect()
        };
        for inbox in inboxes {
            inbox.deliver(BackplaneEvent::Message(bytes.clone()));
        }
    }
}

impl Drop for MemoryLink {
    fn drop(&mut self) {
        let mut nodes = lock(&self.nodes);
        if nodes
            .get(&self.node)
            .is_some_and(|m| m.serial == self.serial)
        {
            nodes.remove(&self.node);
        }
    }
}
