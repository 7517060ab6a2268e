//! `client URL --echo --once`, the Autobahn testee mode, on every runtime: every
//! message comes back as it came, the program exits once its one connection closed,
//! and `--max-message-bytes` fails a larger message with Close 1009.

mod common;

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::ClientProc;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

const RUNTIMES: [&str; 4] = ["smol", "tokio", "async-std", "blocking"];

/// A one-connection server on 127.0.0.1: runs `script` on the accepted socket.
fn serve_once<T: Send + 'static>(
    script: impl FnOnce(WebSocket<TcpStream>) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("address"));
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        script(tungstenite::accept(stream).expect("handshake"))
    });
    (url, server)
}

/// Reads until a data message or a Close arrives.
fn next_message(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        let message = ws.read().expect("read");
        if message.is_text() || message.is_binary() || message.is_close() {
            return message;
        }
    }
}

#[test]
fn echo_once_sends_every_message_back_and_exits_after_the_close() {
    for runtime in RUNTIMES {
        let big = vec![7u8; 300_000];
        let sent = big.clone();
        let (url, server) = serve_once(move |mut ws| {
            ws.send(Message::text("héllo")).expect("send");
            ws.send(Message::binary(sent)).expect("send");
            let echoes = [next_message(&mut ws), next_message(&mut ws)];
            ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            }))
            .expect("close");
            // The client's answer to the Close ends the handshake.
            while ws.read().is_ok() {}
            echoes
        });
        let mut client = ClientProc::spawn(&url, &["--runtime", runtime, "--echo", "--once"]);
        let status = client.wait_exit();
        assert!(status.success(), "{runtime}: {status:?}");
        let [text, binary] = server.join().expect("server");
        assert_eq!(text, Message::text("héllo"), "{runtime}");
        assert_eq!(binary, Message::binary(big), "{runtime}");
        assert_eq!(
            client.seen_named("open").len(),
            1,
            "{runtime}: one connection"
        );
        let closed = client.seen_named("closed");
        assert_eq!(closed.len(), 1, "{runtime}");
        assert_eq!(closed[0]["code"], 1000, "{runtime}");
        assert!(
            client.seen_named("reconnect_scheduled").is_empty(),
            "{runtime}"
        );
    }
}

#[test]
fn a_message_over_max_message_bytes_is_refused_with_1009() {
    for runtime in RUNTIMES {
        let (url, server) = serve_once(|mut ws| {
            ws.send(Message::binary(vec![1u8; 2000])).expect("send");
            next_message(&mut ws)
        });
        let mut client = ClientProc::spawn(
            &url,
            &[
                "--runtime",
                runtime,
                "--echo",
                "--once",
                "--max-message-bytes",
                "1000",
            ],
        );
        let status = client.wait_exit();
        assert!(status.success(), "{runtime}: {status:?}");
        match server.join().expect("server") {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009, "{runtime}"),
            other => panic!("{runtime}: the server got {other:?}, not a Close 1009"),
        }
        let closed = client.seen_named("closed");
        assert_eq!(closed.len(), 1, "{runtime}");
        assert_eq!(closed[0]["code"], 1009, "{runtime}");
        assert_eq!(closed[0]["by"], "local", "{runtime}");
        assert!(client.seen_named("message").is_empty(), "{runtime}");
    }
}
