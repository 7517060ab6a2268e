//! Who the `server` example lets in, on every runtime: a page of another site is
//! refused with 403 unless its origin is allowed, a client without `Origin` is not a
//! browser and connects, and `--anonymous` registers a nameless client under a
//! generated id.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use async_tungstenite::tungstenite::{self, client::IntoClientRequest};
use common::{server, PATIENCE};

const RUNTIMES: [&str; 4] = ["smol", "tokio", "async-std", "blocking"];

/// The HTTP status the server answers a handshake to `path` with `origin` (101 when it
/// upgrades).
fn status(addr: &str, path: &str, origin: Option<&str>) -> u16 {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a valid request");
    if let Some(origin) = origin {
        let value = origin.parse().expect("a header value");
        request.headers_mut().insert("Origin", value);
    }
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("set a read timeout");
    match tungstenite::client(request, stream) {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            response.status().as_u16()
        }
        Err(e) => panic!("handshake to {path} failed without an HTTP answer: {e}"),
    }
}

#[test]
fn cross_origin_pages_are_refused_unless_allowed() {
    for runtime in RUNTIMES {
        let (_default, addr) = server(&["--listen", "127.0.0.1:0", "--runtime", runtime]);
        let own = format!("http://{addr}");
        assert_eq!(
            status(&addr, "/ws/?name=a", None),
            101,
            "{runtime}: no Origin"
        );
        assert_eq!(
            status(&addr, "/ws/?name=b", Some(&own)),
            101,
            "{runtime}: own page"
        );
        let evil = Some("https://evil.example");
        assert_eq!(
            status(&addr, "/ws/?name=c", evil),
            403,
            "{runtime}: another site"
        );

        let allowing = [
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            runtime,
            "--allow-origin",
            "https://evil.example",
        ];
        let (_allowing, addr) = server(&allowing);
        assert_eq!(
            status(&addr, "/ws/?name=d", evil),
            101,
            "{runtime}: allowed"
        );
        let other = Some("https://other.example");
        assert_eq!(
            status(&addr, "/ws/?name=e", other),
            403,
            "{runtime}: not listed"
        );

        let any = [
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            runtime,
            "--any-origin",
        ];
        let (_any, addr) = server(&any);
        assert_eq!(
            status(&addr, "/ws/?name=f", other),
            101,
            "{runtime}: any origin"
        );
    }
}

#[test]
fn anonymous_clients_get_a_generated_id_only_when_asked_for() {
    for runtime in RUNTIMES {
        let (_named, addr) = server(&["--listen", "127.0.0.1:0", "--runtime", runtime]);
        assert_eq!(status(&addr, "/ws/", None), 400, "{runtime}: no name");

        let args = [
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            runtime,
            "--anonymous",
        ];
        let (anonymous, addr) = server(&args);
        assert_eq!(status(&addr, "/ws/", None), 101, "{runtime}: anonymous");
        assert_eq!(
            status(&addr, "/ws/?name=zoe", None),
            101,
            "{runtime}: named"
        );
        let mut names = Vec::new();
        while names.len() < 2 {
            let event = anonymous.next("two connections", Duration::from_secs(20));
            if event["event"] == "connected" {
                names.push(event["name"].as_str().unwrap_or_default().to_owned());
            }
        }
        assert_eq!(names, ["anon-1", "zoe"], "{runtime}");
    }
}
