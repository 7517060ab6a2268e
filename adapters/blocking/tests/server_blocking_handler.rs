//! The blocking server with an event handler on its own thread: the same scenarios as
//! with the event queue (the handler passes each event on to the test), and what a
//! handler does through its responder: answer, look up, send by name, broadcast, shut
//! down.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::server::{connect, next_text, quiet, PATIENCE};
use common::server_scenarios::TestServer;
use heartline_blocking::hub::{ClientInfo, ClusterClient, Sent, ServerError, ServerEvent};
use heartline_blocking::server::{Responder, Server, ServerConfig};
use heartline_core::{Message, ServerNotice};

struct HandlerServer {
    server: Server,
    events: Receiver<ServerEvent>,
}

fn config(core: heartline_core::ServerConfig) -> ServerConfig {
    let mut built = ServerConfig::default();
    built.core = core;
    built
}

fn start(core: heartline_core::ServerConfig) -> HandlerServer {
    start_with(config(core))
}

fn start_with(config: ServerConfig) -> HandlerServer {
    let (tx, events) = mpsc::channel();
    let server = Server::bind_with_handler("127.0.0.1:0", config, move |event, _| {
        let _ = tx.send(event);
    })
    .expect("bind");
    HandlerServer { server, events }
}

impl TestServer for HandlerServer {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn next_event(&self, wait: Duration) -> Option<ServerEvent> {
        self.events.recv_timeout(wait).ok()
    }

    fn clients(&self) -> Result<Vec<ClientInfo>, ServerError> {
        self.server.handle().clients()
    }

    fn broadcast(&self, message: Message) -> Result<usize, ServerError> {
        self.server.handle().broadcast(message)
    }

    fn cluster_clients(&self) -> Option<Vec<ClusterClient>> {
        self.server.handle().cluster_clients().ok().flatten()
    }

    fn send(&self, name: &str, message: Message) -> Result<Sent, ServerError> {
        self.server.handle().send(name, message)
    }

    fn shutdown(&self) {
        self.server.handle().shutdown();
    }

    fn wait_stopped(&self, wait: Duration) -> bool {
        // With a handler the server's own queue stays empty and ends with the thread.
        matches!(
            self.server.recv_timeout(wait),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

crate::server_tests!(start);

/// A server whose handler runs `on_text` for every text message.
fn start_answering(
    on_text: impl Fn(&str, heartline_core::ConnId, &mut Responder<'_>) + Send + 'static,
) -> Server {
    Server::bind_with_handler("127.0.0.1:0", config(quiet()), move |event, responder| {
        if let ServerEvent::Message {
            conn,
            message: Message::Text(text),
            ..
        } = event
        {
            on_text(&text, conn, responder);
        }
    })
    .expect("bind")
}

#[test]
fn the_handler_answers_every_message_in_order() {
    let server = start_answering(|text, conn, responder| {
        responder
            .send_to(conn, Message::Text(format!("echo {text}")))
            .expect("the sender is connected");
    });
    let mut client = connect(server.local_addr(), "/ws/?name=a");
    for i in 0..200 {
        client.send(format!("{i}").into()).expect("send");
    }
    for i in 0..200 {
        assert_eq!(next_text(&mut client), format!("echo {i}"));
    }
}

#[test]
fn the_handler_looks_up_sends_by_name_and_broadcasts() {
    let server = start_answering(|text, _, responder| match text {
        "who" => {
            let mut names: Vec<String> = responder.clients().into_iter().map(|c| c.name).collect();
            names.sort();
            let reached = responder.broadcast(Message::Text(names.join(",")));
            assert_eq!(reached, 2);
        }
        "poke b" => {
            assert!(responder.lookup("b").is_some());
            responder
                .send("b", Message::Text("poked".into()))
                .expect("b is connected");
        }
        "poke nobody" => {
            assert_eq!(
                responder.send("nobody", Message::Text("x".into())),
                Err(ServerError::NotConnected)
            );
            responder
                .send("a", Message::Text("nobody is here".into()))
                .expect("a is connected");
        }
        _ => {}
    });
    let mut a = connect(server.local_addr(), "/ws/?name=a");
    let mut b = connect(server.local_addr(), "/ws/?name=b");
    a.send("who".into()).expect("send");
    assert_eq!(next_text(&mut a), "a,b");
    assert_eq!(next_text(&mut b), "a,b");
    a.send("poke b".into()).expect("send");
    assert_eq!(next_text(&mut b), "poked");
    a.send("poke nobody".into()).expect("send");
    assert_eq!(next_text(&mut a), "nobody is here");
}

#[test]
fn a_shutdown_from_the_handler_stops_the_server() {
    let (opened_tx, opened) = mpsc::channel();
    let server =
        Server::bind_with_handler("127.0.0.1:0", config(quiet()), move |event, responder| {
            match event {
                ServerEvent::Notice(ServerNotice::Opened { .. }) => {
                    let _ = opened_tx.send(());
                }
                ServerEvent::Message { .. } => responder.shutdown(),
                _ => {}
            }
        })
        .expect("bind");
    let mut client = connect(server.local_addr(), "/ws/?name=a");
    opened.recv_timeout(PATIENCE).expect("opened");
    client.send("stop".into()).expect("send");
    assert_eq!(common::server::close_code(&mut client), 1001);
    let deadline = Instant::now() + PATIENCE;
    assert!(
        matches!(
            server.recv_timeout(deadline - Instant::now()),
            Err(RecvTimeoutError::Disconnected)
        ),
        "the server stopped"
    );
}
crate::cluster_tests!(start_with);
