//! The async client on smol with an event handler (called on the driver's task) instead
//! of the event stream, through the same scenarios as every other client: reconnect
//! after the server dies, half-open detection, delivery of what was sent while down,
//! close, giving up on 401, fresh headers per attempt, Pongs while nothing reads,
//! stalled writes, `wss://` with a self-signed certificate.

#[macro_use]
mod common;

client_scenario_tests!(common::async_client::smol_handler);

/// What the handler sends through its responder goes out, in order: a counter that
/// answers every echo with the next number, until 100.
#[test]
fn the_handler_answers_through_its_responder() {
    use common::client_peer::{TestServer, PATIENCE};
    use heartline_async::{ClientBuilder, ClientEvent};

    let server = TestServer::start();
    let (done_tx, done) = std::sync::mpsc::channel();
    let client = heartline_async::smol::connect_with_handler(
        ClientBuilder::new(server.url()).config(common::client_scenarios::fast_config()),
        move |event, responder| {
            let ClientEvent::Text(text) = event else {
                return;
            };
            let n: u32 = text.as_str().parse().expect("a number");
            if n == 100 {
                let _ = done_tx.send(());
            } else {
                responder.send_text((n + 1).to_string()).expect("sent");
            }
        },
    )
    .expect("client starts");
    client.send_text("0").expect("queued until open");
    done.recv_timeout(PATIENCE).expect("the count reached 100");
    let expected: Vec<String> = (0..=100).map(|n| n.to_string()).collect();
    assert_eq!(server.received(), expected);
    client.close(1000, "").expect("close");
}
