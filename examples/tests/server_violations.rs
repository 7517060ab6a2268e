//! A client that breaks the protocol is answered with the close code RFC 6455 gives it
//! (1002 protocol error, 1007 invalid UTF-8, 1009 too big) before the connection ends,
//! on every runtime, and the application's `disconnected` event carries that code. A
//! client that ends its half of the connection right behind its last frame is noticed
//! at once, not at the idle timeout.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use async_tungstenite::tungstenite::{self, Message, WebSocket};
use common::{server, Proc, PATIENCE};

const RUNTIMES: [&str; 4] = ["smol", "tokio", "async-std", "blocking"];
const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A client frame: `first` is FIN, RSV and opcode; the payload is masked with `MASK`
/// unless `masked` is false.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(bit | n as u8),
        n @ 126..=0xffff => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn open(addr: &str, name: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    let url = format!("ws://{addr}/ws/?name={name}");
    tungstenite::client(url, stream).expect("the upgrade").0
}

/// Sends `bytes` raw after the upgrade and returns the close code the server answers.
fn answer(addr: &str, name: &str, bytes: &[u8]) -> Option<u16> {
    let mut ws = open(addr, name);
    // The server may fail the connection before taking all of a large frame.
    let _ = ws.get_mut().write_all(bytes);
    loop {
        match ws.read() {
            Ok(Message::Close(close)) => return close.map(|c| u16::from(c.code)),
            Ok(_) => {}
            Err(e) => panic!("{name}: the connection ended without a Close frame: {e}"),
        }
    }
}

/// Waits for the server's `disconnected` event for `name` and returns its code.
fn disconnected(server: &Proc, name: &str) -> u64 {
    loop {
        let event = server.next(&format!("`disconnected` for {name}"), PATIENCE);
        if event["event"] == "disconnected" && event["name"] == name {
            return event["code"].as_u64().expect("a code");
        }
    }
}

#[test]
fn every_violation_is_answered_with_its_close_code() {
    let too_big = vec![b'x'; 200 << 10];
    let cases: [(&str, Vec<u8>, u16); 7] = [
        ("unmasked", frame(0x81, b"hi", false), 1002),
        ("reserved_bits", frame(0xC1, b"hi", true), 1002),
        ("opcode_3", frame(0x83, b"", true), 1002),
        ("ping_200_bytes", frame(0x89, &[0; 200], true), 1002),
        ("fragmented_ping", frame(0x09, b"", true), 1002),
        ("invalid_utf8", frame(0x81, &[0xff, 0xfe], true), 1007),
        ("message_200_kib", frame(0x82, &too_big, true), 1009),
    ];
    for runtime in RUNTIMES {
        let (events, addr) = server(&["--listen", "127.0.0.1:0", "--runtime", runtime]);
        for (name, bytes, code) in &cases {
            assert_eq!(answer(&addr, name, bytes), Some(*code), "{runtime}: {name}");
            assert_eq!(
                disconnected(&events, name),
                u64::from(*code),
                "{runtime}: {name}"
            );
        }
    }
}

#[test]
fn an_end_of_stream_right_behind_the_data_is_noticed() {
    for runtime in RUNTIMES {
        let (events, addr) = server(&["--listen", "127.0.0.1:0", "--runtime", runtime]);
        let mut ws = open(&addr, "half");
        let burst = frame(0x82, b"0123456789", true).repeat(5);
        ws.get_mut().write_all(&burst).expect("send the burst");
        ws.get_mut()
            .shutdown(Shutdown::Write)
            .expect("end our half");
        // The socket stays open here: only the FIN tells the server (its idle timeout,
        // 75 s, is far beyond the patience of `disconnected`).
        assert_eq!(disconnected(&events, "half"), 1006, "{runtime}");
        drop(ws);
    }
}
