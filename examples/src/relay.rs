//! What the `server` example does with its events, the same on every runtime: prints
//! them as JSON lines, echoes messages, and relays `{"to": NAME, "data": ANY}` to
//! NAME (on whatever node of the cluster it is) or, with `"to": "*"`, to everyone else.

use std::collections::HashMap;
use std::sync::Arc;

use heartline_core::{ClusterNotice, ConnId, Message, SendId, SendOutcome, ServerNotice};
use heartline_tungstenite::front::{Replies, Responder};
use heartline_tungstenite::hub::{Directory, Sent, ServerEvent};
use serde_json::{json, Value};

use crate::jsonl::EventLog;

/// The server example's event handler state.
#[derive(Debug)]
pub struct Relay {
    log: EventLog,
    /// Sends to another node waiting for their answer: who asked, and for whom.
    pending: HashMap<SendId, (ConnId, String)>,
}

impl Relay {
    /// A relay that prints to `log`.
    pub fn new(log: EventLog) -> Self {
        Relay {
            log,
            pending: HashMap::new(),
        }
    }

    /// Handles one server event on the server loop.
    pub fn handle<R: Replies>(&mut self, event: ServerEvent, responder: &mut Responder<'_, R>) {
        match event {
            ServerEvent::Message {
                conn,
                name,
                message,
            } => self.message(conn, name, message, responder),
            ServerEvent::Notice(notice) => self.notice(notice),
            ServerEvent::Cluster(ClusterNotice::SendResult { id, outcome }) => {
                if let Some((conn, to)) = self.pending.remove(&id) {
                    let reason = match outcome {
                        SendOutcome::Delivered => None,
                        SendOutcome::NoSuchClient => Some("no_such_client"),
                        SendOutcome::Timeout => Some("timeout"),
                        _ => Some("failed"),
                    };
                    answer(responder, conn, &to, reason);
                }
            }
            ServerEvent::Cluster(ClusterNotice::NodeUp { node }) => {
                self.log.emit("node_up", &[("node", node.into())]);
            }
            ServerEvent::Cluster(ClusterNotice::NodeDown { node, clients }) => {
                let fields = [("node", node.into()), ("clients", clients.into())];
                self.log.emit("node_down", &fields);
            }
            ServerEvent::Cluster(ClusterNotice::Backplane { up }) => {
                self.log.emit("backplane", &[("up", up.into())]);
            }
            // Events added to heartline later are not shown.
            _ => {}
        }
    }

    fn message<R: Replies>(
        &mut self,
        conn: ConnId,
        name: Option<Arc<str>>,
        message: Message,
        responder: &mut Responder<'_, R>,
    ) {
        let Some((to, data)) = addressed(&message) else {
            // The client may have gone since: then there is nobody to echo to.
            let _ = responder.send_to(conn, message);
            return;
        };
        let out = Message::Text(json!({"from": name.as_deref(), "data": data}).to_string());
        if to == "*" {
            responder.broadcast_except(conn, out);
            return;
        }
        match responder.send(&to, out) {
            Ok(Sent::Here) => answer(responder, conn, &to, None),
            Ok(Sent::Away(id)) => {
                self.pending.insert(id, (conn, to));
            }
            Err(_) => answer(responder, conn, &to, Some("no_such_client")),
        }
    }

    fn notice(&self, notice: ServerNotice) {
        let log = &self.log;
        let name = |n: &Option<Arc<str>>| Value::from(n.as_deref());
        match notice {
            ServerNotice::Opened { name: n, .. } => log.emit("connected", &[("name", name(&n))]),
            ServerNotice::Replaced { name: n, .. } => {
                log.emit("replaced", &[("name", Value::from(&*n))]);
            }
            ServerNotice::Closed {
                name: n,
                code,
                evicted,
                ..
            } => {
                if let Some(reason) = evicted {
                    let fields = [("name", name(&n)), ("reason", reason.as_str().into())];
                    log.emit("evicted", &fields);
                }
                log.emit("disconnected", &[("name", name(&n)), ("code", code.into())]);
            }
            ServerNotice::Rejected { path, status } => {
                let fields = [("path", Value::from(path)), ("status", status.into())];
                log.emit("rejected", &fields);
            }
            ServerNotice::ShutdownComplete => log.emit("stopped", &[]),
            ServerNotice::Resumed { lost } => {
                let lost_ms = u64::try_from(lost.as_millis()).unwrap_or(u64::MAX);
                log.emit("resumed", &[("lost_ms", lost_ms.into())]);
            }
            _ => {}
        }
    }
}

/// `{"to": NAME, "data": ANY}`: NAME and the data; anything else is not addressed.
fn addressed(message: &Message) -> Option<(String, Value)> {
    let Message::Text(text) = message else {
        return None;
    };
    if !text.starts_with('{') {
        return None;
    }
    let Value::Object(mut object) = serde_json::from_str(text).ok()? else {
        return None;
    };
    let Value::String(to) = object.remove("to")? else {
        return None;
    };
    let data = object.remove("data")?;
    Some((to, data))
}

/// Tells the sender how its message to `to` went.
fn answer<R: Replies>(
    responder: &mut Responder<'_, R>,
    conn: ConnId,
    to: &str,
    failed: Option<&str>,
) {
    let line = match failed {
        None => json!({"to": to, "delivered": true}),
        Some(reason) => json!({"to": to, "delivered": false, "reason": reason}),
    };
    // The sender may have gone meanwhile.
    let _ = responder.send_to(conn, Message::Text(line.to_string()));
}

/// `GET /clients`: every client of the cluster as `[{"name": ..., "node": ...}]`; a
/// server alone lists its own under `node`.
pub fn clients_json(directory: &Directory<'_>, node: &str) -> String {
    let list: Vec<Value> = match directory.cluster_clients() {
        Some(clients) => clients
            .into_iter()
            .map(|c| json!({"name": c.name, "node": c.node}))
            .collect(),
        None => directory
            .clients()
            .into_iter()
            .map(|c| json!({"name": c.name, "node": node}))
            .collect(),
    };
    Value::Array(list).to_string()
}
