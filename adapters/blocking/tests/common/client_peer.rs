//! The peer of the client tests: a WebSocket server on 127.0.0.1 that the test
//! controls (the async adapter's tests include this file too).
//!
//! The server echoes text and binary messages and records the texts it received (a
//! text `burst:N` is answered with N texts `b0`, `b1`, ... in one write instead); it
//! can be frozen (keeps the TCP connections open but stops reading, so Pings go
//! unanswered: a half-open peer), killed (listener and connections gone), restarted on
//! the same port, made to answer the upgrade with an HTTP status, or made to ping its
//! clients and count their Pongs.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::Message;

/// Upper bound for any wait in a test: far above what any step needs (tens of ms), so
/// a slow machine never fails a test, while a bug still ends it.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// Texts received, in order, across all connections.
    received: Mutex<Vec<String>>,
    /// Request headers of every upgrade, in order.
    requests: Mutex<Vec<Vec<(String, String)>>>,
    /// Live connections (clones), so a kill can shut them down.
    conns: Mutex<Vec<TcpStream>>,
    frozen: AtomicBool,
    stopped: AtomicBool,
    /// Non-zero: answer the upgrade with this HTTP status.
    reject: AtomicU16,
    /// With `reject`: a `Retry-After` header, in seconds (0: none).
    retry_after: AtomicU32,
    /// Send a Ping every 10 ms on every connection.
    pinging: AtomicBool,
    /// Pongs received.
    pongs: AtomicU32,
    /// Set: send a Close frame with this code and reason on every connection.
    close_with: Mutex<Option<(u16, String)>>,
    /// Set: the next connection to look gets these bytes written raw to its socket.
    raw: Mutex<Option<Vec<u8>>>,
    /// The code of every Close frame received, in order.
    closes: Mutex<Vec<u16>>,
}

/// A running test server. Dropping it kills it.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server on an ephemeral port.
    pub fn start() -> TestServer {
        TestServer::bind("127.0.0.1:0".parse().unwrap())
    }

    /// A new server on `addr` (the port of a killed one), keeping nothing of the old.
    pub fn restart_on(addr: SocketAddr) -> TestServer {
        TestServer::bind(addr)
    }

    fn bind(addr: SocketAddr) -> TestServer {
        let listener = TcpListener::bind(addr).expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    st.conns.lock().unwrap().push(clone);
                }
                let st = Arc::clone(&st);
                thread::spawn(move || serve(stream, st));
            }
        });
        TestServer {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The address (to restart on after a kill).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops reading and answering on every connection, keeping TCP open.
    pub fn freeze(&self) {
        self.state.frozen.store(true, Ordering::SeqCst);
    }

    /// Answers every upgrade from now on with `status`.
    pub fn reject_with(&self, status: u16) {
        self.state.reject.store(status, Ordering::SeqCst);
    }

    /// Answers every upgrade from now on with `status` and `Retry-After: seconds`.
    pub fn reject_with_retry_after(&self, status: u16, seconds: u32) {
        self.state.retry_after.store(seconds, Ordering::SeqCst);
        self.reject_with(status);
    }

    /// Closes every connection with a Close frame carrying `code` and `reason`.
    pub fn close_all(&self, code: u16, reason: &str) {
        *self.state.close_with.lock().unwrap() = Some((code, reason.to_owned()));
    }

    /// Writes `bytes` as they are, outside any frame, to the one connection that looks
    /// first: a server that breaks the protocol.
    pub fn send_raw(&self, bytes: &[u8]) {
        *self.state.raw.lock().unwrap() = Some(bytes.to_vec());
    }

    /// The codes of the Close frames received so far (1005 for one without a code).
    pub fn closes(&self) -> Vec<u16> {
        self.state.closes.lock().unwrap().clone()
    }

    /// Pings every connection every 10 ms from now on.
    pub fn start_pinging(&self) {
        self.state.pinging.store(true, Ordering::SeqCst);
    }

    /// Pongs received so far.
    pub fn pongs(&self) -> u32 {
        self.state.pongs.load(Ordering::SeqCst)
    }

    /// Texts received so far, in order.
    pub fn received(&self) -> Vec<String> {
        self.state.received.lock().unwrap().clone()
    }

    /// The request headers of each upgrade so far.
    pub fn requests(&self) -> Vec<Vec<(String, String)>> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Closes the listener and every connection (no close handshake), like a process
    /// that died. Returns the address, free to restart on.
    pub fn kill(mut self) -> SocketAddr {
        self.stop();
        self.addr
    }

    fn stop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        for conn in self.state.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stopped` and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: TcpStream, st: Arc<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(5)));
    let st2 = Arc::clone(&st);
    // The error type is tungstenite's, sized as it is.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        st2.requests.lock().unwrap().push(headers);
        let status = st2.reject.load(Ordering::SeqCst);
        if status != 0 {
            let mut err = ErrorResponse::new(Some("rejected".into()));
            *err.status_mut() = StatusCode::from_u16(status).unwrap();
            let seconds = st2.retry_after.load(Ordering::SeqCst);
            if seconds > 0 {
                err.headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            return Err(err);
        }
        Ok(resp)
    };
    let mut ws = match accept_patiently(stream, callback) {
        Some(ws) => ws,
        None => return,
    };
    let mut last_ping = Instant::now();
    let mut closing = false;
    loop {
        if st.stopped.load(Ordering::SeqCst) {
            return;
        }
        if !closing {
            if let Some((code, reason)) = st.close_with.lock().unwrap().clone() {
                closing = true;
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }));
            }
        }
        if let Some(bytes) = st.raw.lock().unwrap().take() {
            use std::io::Write;
            let _ = ws.get_mut().write_all(&bytes);
        }
        if st.pinging.load(Ordering::SeqCst) && last_ping.elapsed() >= Duration::from_millis(10) {
            last_ping = Instant::now();
            let _ = ws.send(Message::Ping(Vec::from(*b"server").into()));
        }
        if st.frozen.load(Ordering::SeqCst) {
            // Half-open: hold the connection, read nothing, answer nothing.
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                st.received.lock().unwrap().push(t.as_str().to_owned());
                match t.as_str().strip_prefix("burst:").map(str::parse::<u32>) {
                    // `burst:N`: N texts `b0`, `b1`, ... in one write.
                    Some(Ok(n)) => {
                        for i in 0..n {
                            let _ = ws.write(Message::Text(format!("b{i}").into()));
                        }
                        let _ = ws.flush();
                    }
                    _ => {
                        let _ = ws.send(Message::Text(t));
                    }
                }
            }
            Ok(Message::Binary(b)) => {
                let _ = ws.send(Message::Binary(b));
            }
            Ok(Message::Pong(_)) => {
                st.pongs.fetch_add(1, Ordering::SeqCst);
            }
            Ok(message) => {
                if let Message::Close(frame) = message {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    st.closes.lock().unwrap().push(code);
                }
                // Ping or Close: tungstenite queued the reply; send it now.
                let _ = ws.flush();
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                // A clone of the socket is kept for `kill`: shut it down explicitly
                // so the client sees the end of the connection.
                let _ = ws.get_ref().shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

type ServerWs = tungstenite::WebSocket<TcpStream>;

/// The server handshake over a socket with a short read timeout (retried until done).
fn accept_patiently<C>(stream: TcpStream, callback: C) -> Option<ServerWs>
where
    C: tungstenite::handshake::server::Callback,
{
    use tungstenite::handshake::HandshakeError;
    let deadline = Instant::now() + PATIENCE;
    let mut result = tungstenite::accept_hdr(stream, callback);
    loop {
        match result {
            Ok(ws) => return Some(ws),
            Err(HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                result = mid.handshake();
            }
            Err(_) => return None,
        }
    }
}

/// A `wss://` echo server on 127.0.0.1 with a self-signed certificate for that address.
pub struct TlsEchoServer {
    addr: SocketAddr,
    /// The certificate, DER: the root a client must trust.
    pub cert_der: Vec<u8>,
    stopped: Arc<AtomicBool>,
}

impl TlsEchoServer {
    /// Generates the certificate and starts serving.
    pub fn start() -> TlsEchoServer {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("generate a certificate");
        let cert_der = certified.cert.der().to_vec();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone().into()], key)
            .expect("server TLS configuration");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(PATIENCE));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let tls = rustls::StreamOwned::new(conn, tcp);
                    let Ok(mut ws) = tungstenite::accept(tls) else {
                        return;
                    };
                    while let Ok(message) = ws.read() {
                        if message.is_text() || message.is_binary() {
                            let _ = ws.send(message);
                        } else {
                            let _ = ws.flush();
                        }
                    }
                });
            }
        });
        TlsEchoServer {
            addr,
            cert_der,
            stopped,
        }
    }

    /// `wss://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("wss://{}/", self.addr)
    }
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}
