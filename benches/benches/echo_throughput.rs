//! Echo throughput: small messages through the heartline smol client against raw
//! async-tungstenite, and through the heartline tokio client against raw
//! tokio-tungstenite, against the same echo server, in the same run. Each heartline
//! flavour is compared with the raw clients of its own runtime (smol's global executor,
//! or a current-thread tokio runtime).
//!
//! ```text
//! cargo bench -p heartline-benches --bench echo_throughput
//! ```
//!
//! Each connection keeps `WINDOW` messages of `SIZE` bytes in flight: it sends a new one
//! for every echo it receives. The clients of each runtime run their connection tasks on
//! the same executor (smol's global one, or a current-thread tokio runtime) with the
//! same WebSocket buffer sizes (heartline's defaults); the echo server
//! (`heartline_examples::echo`) runs on its own thread, pinned to a CPU other than the
//! clients' (`ECHO_PIN=0`: not pinned). Two raw clients set the bar: one
//! that sends and flushes each message (the obvious loop), one that answers every echo
//! already received and flushes once (what an event loop does, and what heartline's
//! driver does per turn). heartline runs twice: with the event stream (the application
//! reads events in its own task and answers through a handle) and with an event handler
//! (called on the driver's task, answering through its responder: no task switch). For
//! one connection and for 100 connections the bench runs the clients in alternation,
//! `ROUNDS` times, and prints the median messages per second of each, and each
//! heartline flavour's ratio to the better raw client in each round with the median of
//! those ratios.
//!
//! Environment: `ECHO_SECONDS` (measured time per run, default 0.5), `ECHO_ROUNDS`
//! (default 21), `ECHO_WINDOW` (default 16), `ECHO_SIZE` (bytes, default 32),
//! `ECHO_CONNS` (connection counts, default `1,100`), `ECHO_ONLY` (a comma-separated
//! list of `raw`, `raw-batched`, `heartline`, `heartline-handler` and their tokio
//! counterparts `raw-tokio`, `raw-tokio-batched`, `heartline-tokio`,
//! `heartline-tokio-handler`: run only those, for profiling or a longer comparison).

use std::net::SocketAddr;
use std::time::Instant;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Error as WsError;
use async_tungstenite::tungstenite::Message;
use futures_lite::StreamExt;
use futures_util::SinkExt;
use heartline_async::{
    BuildError, ClientBuilder, ClientEvent, ClientEvents, ClientHandle, Responder,
};
use heartline_benches::echo::{conns_from_env, median, pinned_apart, Settings};
use heartline_examples::echo::EchoServer;

/// What one connection did during the measured window.
struct Counted {
    echoes: u64,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(heartline_async::DEFAULT_READ_BUFFER_SIZE)
        .write_buffer_size(heartline_async::DEFAULT_WRITE_BUFFER_SIZE)
        .max_message_size(Some(heartline_async::DEFAULT_MAX_MESSAGE_SIZE))
}

/// Counts the echoes that arrive between `from` and `until`.
fn count(now: Instant, from: Instant, until: Instant, c: &mut Counted) {
    if now >= from && now < until {
        c.echoes += 1;
    }
}

/// A raw WebSocket client connection: async-tungstenite's or tokio-tungstenite's
/// stream, both a `Sink` and a `Stream` of tungstenite messages.
trait RawWs:
    futures_util::Sink<Message, Error = WsError>
    + futures_lite::Stream<Item = Result<Message, WsError>>
    + Unpin
{
}

impl<W> RawWs for W where
    W: futures_util::Sink<Message, Error = WsError>
        + futures_lite::Stream<Item = Result<Message, WsError>>
        + Unpin
{
}

/// A raw async-tungstenite connection on smol.
async fn raw_smol(addr: SocketAddr) -> impl RawWs {
    let tcp = smol::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (ws, _) = async_tungstenite::client_async_with_config(
        format!("ws://{addr}/"),
        tcp,
        Some(ws_config()),
    )
    .await
    .expect("handshake");
    ws
}

/// A raw tokio-tungstenite connection.
async fn raw_tokio(addr: SocketAddr) -> impl RawWs {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/"),
        tcp,
        Some(ws_config()),
    )
    .await
    .expect("handshake");
    ws
}

/// One raw connection that sends and flushes each message.
async fn raw_conn(mut ws: impl RawWs, s: Settings, from: Instant, until: Instant) -> Counted {
    let payload = vec![7u8; s.size];
    for _ in 0..s.window {
        ws.send(Message::Binary(payload.clone().into()))
            .await
            .expect("send");
    }
    let mut c = Counted { echoes: 0 };
    let mut in_flight = s.window;
    while in_flight > 0 {
        match ws.next().await {
            Some(Ok(Message::Binary(_))) => {
                in_flight -= 1;
                let now = Instant::now();
                count(now, from, until, &mut c);
                if now < until {
                    ws.send(Message::Binary(payload.clone().into()))
                        .await
                        .expect("send");
                    in_flight += 1;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("raw connection failed: {e}"),
            None => panic!("raw connection ended"),
        }
    }
    let _ = SinkExt::close(&mut ws).await;
    c
}

/// One raw connection that batches like an event loop would: it takes every echo
/// already received, queues the replies and flushes once.
async fn raw_batched_conn(
    mut ws: impl RawWs,
    s: Settings,
    from: Instant,
    until: Instant,
) -> Counted {
    let payload = vec![7u8; s.size];
    for _ in 0..s.window {
        ws.feed(Message::Binary(payload.clone().into()))
            .await
            .expect("send");
    }
    ws.flush().await.expect("flush");
    let mut c = Counted { echoes: 0 };
    let mut in_flight = s.window;
    while in_flight > 0 {
        let mut next = ws.next().await;
        let mut replies = 0;
        loop {
            match next {
                Some(Ok(Message::Binary(_))) => {
                    in_flight -= 1;
                    let now = Instant::now();
                    count(now, from, until, &mut c);
                    if now < until {
                        replies += 1;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("raw connection failed: {e}"),
                None => panic!("raw connection ended"),
            }
            // Whatever else is already here, without waiting.
            match futures_lite::future::poll_once(ws.next()).await {
                Some(item) => next = item,
                None => break,
            }
        }
        for _ in 0..replies {
            ws.feed(Message::Binary(payload.clone().into()))
                .await
                .expect("send");
        }
        ws.flush().await.expect("flush");
        in_flight += replies;
    }
    let _ = SinkExt::close(&mut ws).await;
    c
}

type Connect = fn(ClientBuilder) -> Result<(ClientHandle, ClientEvents), BuildError>;
type ConnectWithHandler = fn(ClientBuilder, Handler) -> Result<ClientHandle, BuildError>;
type Handler = Box<dyn FnMut(ClientEvent, &Responder<'_>) + Send>;

/// One heartline connection, started with `connect` (a runtime's helper).
async fn heartline_conn(
    connect: Connect,
    addr: SocketAddr,
    s: Settings,
    from: Instant,
    until: Instant,
) -> Counted {
    let (client, mut events) =
        connect(ClientBuilder::new(format!("ws://{addr}/"))).expect("build client");
    let payload = vec![7u8; s.size];
    // Queued until open, then sent in order.
    for _ in 0..s.window {
        client.send_binary(payload.clone()).expect("send");
    }
    let mut c = Counted { echoes: 0 };
    let mut in_flight = s.window;
    while in_flight > 0 {
        match events.next().await {
            Some(ClientEvent::Binary(_)) => {
                in_flight -= 1;
                let now = Instant::now();
                count(now, from, until, &mut c);
                if now < until {
                    client.send_binary(payload.clone()).expect("send");
                    in_flight += 1;
                }
            }
            Some(ClientEvent::Notice(heartline_core::Notice::Closed { reason, .. })) => {
                panic!("heartline connection closed: {reason}")
            }
            Some(_) => {}
            None => panic!("heartline client stopped"),
        }
    }
    let _ = client.close(1000, "");
    while events.next().await.is_some() {}
    c
}

/// One heartline connection whose event handler answers each echo on the driver's own
/// task, started with `connect` (a runtime's helper).
async fn heartline_handler_conn(
    connect: ConnectWithHandler,
    addr: SocketAddr,
    s: Settings,
    from: Instant,
    until: Instant,
) -> Counted {
    let (done_tx, done) = smol::channel::bounded(1);
    let payload = vec![7u8; s.size];
    let reply = payload.clone();
    let mut c = Counted { echoes: 0 };
    let mut in_flight = s.window;
    let mut finished = false;
    let client = connect(
        ClientBuilder::new(format!("ws://{addr}/")),
        Box::new(move |event, responder| match event {
            ClientEvent::Binary(_) if !finished => {
                in_flight -= 1;
                let now = Instant::now();
                count(now, from, until, &mut c);
                if now < until {
                    responder.send_binary(reply.clone()).expect("send");
                    in_flight += 1;
                } else if in_flight == 0 {
                    finished = true;
                    let _ = done_tx.try_send(c.echoes);
                }
            }
            ClientEvent::Notice(heartline_core::Notice::Closed { reason, .. }) if !finished => {
                panic!("heartline connection closed: {reason}")
            }
            _ => {}
        }),
    )
    .expect("build client");
    // Queued until open, then sent in order.
    for _ in 0..s.window {
        client.send_binary(payload.clone()).expect("send");
    }
    let echoes = done.recv().await.expect("the handler reports its count");
    let _ = client.close(1000, "");
    Counted { echoes }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Which {
    Raw,
    RawBatched,
    Heartline,
    HeartlineHandler,
    RawTokio,
    RawTokioBatched,
    HeartlineTokio,
    HeartlineTokioHandler,
}

impl Which {
    const ALL: [Which; 8] = [
        Which::Raw,
        Which::RawBatched,
        Which::Heartline,
        Which::HeartlineHandler,
        Which::RawTokio,
        Which::RawTokioBatched,
        Which::HeartlineTokio,
        Which::HeartlineTokioHandler,
    ];

    /// Its `ECHO_ONLY` name and its description.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Which::Raw => ("raw", "raw async-tungstenite, flush per message"),
            Which::RawBatched => ("raw-batched", "raw async-tungstenite, flush per batch"),
            Which::Heartline => ("heartline", "heartline smol, event stream"),
            Which::HeartlineHandler => ("heartline-handler", "heartline smol, event handler"),
            Which::RawTokio => ("raw-tokio", "raw tokio-tungstenite, flush per message"),
            Which::RawTokioBatched => (
                "raw-tokio-batched",
                "raw tokio-tungstenite, flush per batch",
            ),
            Which::HeartlineTokio => ("heartline-tokio", "heartline tokio, event stream"),
            Which::HeartlineTokioHandler => {
                ("heartline-tokio-handler", "heartline tokio, event handler")
            }
        }
    }

    fn name(self) -> &'static str {
        self.names().1
    }

    fn is_raw(self) -> bool {
        matches!(
            self,
            Which::Raw | Which::RawBatched | Which::RawTokio | Which::RawTokioBatched
        )
    }

    /// Runs on tokio (compared with the raw tokio clients), or on smol.
    fn is_tokio(self) -> bool {
        matches!(
            self,
            Which::RawTokio
                | Which::RawTokioBatched
                | Which::HeartlineTokio
                | Which::HeartlineTokioHandler
        )
    }

    /// One connection of this kind.
    async fn conn(self, addr: SocketAddr, s: Settings, from: Instant, until: Instant) -> Counted {
        match self {
            Which::Raw => raw_conn(raw_smol(addr).await, s, from, until).await,
            Which::RawBatched => raw_batched_conn(raw_smol(addr).await, s, from, until).await,
            Which::RawTokio => raw_conn(raw_tokio(addr).await, s, from, until).await,
            Which::RawTokioBatched => raw_batched_conn(raw_tokio(addr).await, s, from, until).await,
            Which::Heartline => {
                heartline_conn(heartline_async::smol::connect, addr, s, from, until).await
            }
            Which::HeartlineTokio => {
                heartline_conn(heartline_async::tokio::connect, addr, s, from, until).await
            }
            Which::HeartlineHandler => {
                let connect: ConnectWithHandler = heartline_async::smol::connect_with_handler;
                heartline_handler_conn(connect, addr, s, from, until).await
            }
            Which::HeartlineTokioHandler => {
                let connect: ConnectWithHandler = heartline_async::tokio::connect_with_handler;
                heartline_handler_conn(connect, addr, s, from, until).await
            }
        }
    }
}

/// Runs `conns` connections of one kind, each a task on its runtime (smol's global
/// executor, or a current-thread tokio runtime); returns messages per second.
fn run(which: Which, addr: SocketAddr, conns: usize, s: Settings) -> f64 {
    let from = Instant::now() + s.warmup;
    let until = from + s.measure;
    let echoes: u64 = if which.is_tokio() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let tasks: Vec<_> = (0..conns)
                .map(|_| tokio::spawn(which.conn(addr, s, from, until)))
                .collect();
            let mut echoes = 0;
            for t in tasks {
                echoes += t.await.expect("connection task").echoes;
            }
            echoes
        })
    } else {
        smol::block_on(async {
            let tasks: Vec<_> = (0..conns)
                .map(|_| smol::spawn(which.conn(addr, s, from, until)))
                .collect();
            let mut echoes = 0;
            for t in tasks {
                echoes += t.await.echoes;
            }
            echoes
        })
    };
    echoes as f64 / s.measure.as_secs_f64()
}

/// Per round, `which`'s figure over the better raw client's in that round; empty
/// unless `which` and a raw client both ran.
fn round_ratios(which: Which, only: &[Which], figures: &[Vec<f64>]) -> Vec<f64> {
    let Some(hl) = only.iter().position(|w| *w == which) else {
        return Vec::new();
    };
    (0..figures[hl].len())
        .filter_map(|round| {
            let best_raw = only
                .iter()
                .zip(figures)
                .filter(|(w, _)| w.is_raw() && w.is_tokio() == which.is_tokio())
                .map(|(_, f)| f[round])
                .fold(f64::NAN, f64::max);
            best_raw.is_finite().then(|| figures[hl][round] / best_raw)
        })
        .collect()
}

fn main() {
    let s = Settings::from_env();
    let only: Vec<Which> = match std::env::var("ECHO_ONLY") {
        Ok(list) => list
            .split(',')
            .filter_map(|name| {
                let found = Which::ALL.into_iter().find(|w| w.names().0 == name.trim());
                if found.is_none() {
                    eprintln!("ECHO_ONLY: unknown client {name:?}, ignored");
                }
                found
            })
            .collect(),
        Err(_) => Which::ALL.to_vec(),
    };
    let server =
        pinned_apart(|| EchoServer::start(([127, 0, 0, 1], 0).into())).expect("start echo server");
    let addr = server.addr();
    println!(
        "echo throughput: {}-byte binary messages, {} in flight per connection, \
         {:.1} s measured per run, median of {} rounds",
        s.size,
        s.window,
        s.measure.as_secs_f64(),
        s.rounds
    );
    let conns_list = conns_from_env("1,100");
    for conns in conns_list {
        // Alternate the clients within each round, so that load from elsewhere on the
        // machine spreads over all of them.
        let mut figures = vec![Vec::new(); only.len()];
        for _ in 0..s.rounds {
            for (i, which) in only.iter().enumerate() {
                figures[i].push(run(*which, addr, conns, s));
            }
        }
        let medians: Vec<f64> = figures.iter().cloned().map(median).collect();
        println!("{conns} connection(s):");
        for (which, m) in only.iter().zip(&medians) {
            println!("  {:<42} {m:>10.0} msg/s", which.name());
        }
        for (which, m) in only.iter().zip(&medians) {
            let best_raw = only
                .iter()
                .zip(&medians)
                .filter(|(w, _)| w.is_raw() && w.is_tokio() == which.is_tokio())
                .map(|(_, m)| *m)
                .fold(f64::NAN, f64::max);
            if which.is_raw() || !best_raw.is_finite() {
                continue;
            }
            // Each round compares runs made next to each other, so the median of the
            // rounds' ratios is steadier than the ratio of the medians.
            let ratios = round_ratios(*which, &only, &figures);
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
            println!(
                "  {}: ratio / best raw {:.3} (median of the rounds; of the medians {:.3})",
                which.name(),
                median(ratios),
                m / best_raw
            );
            println!("    in each round: {}", each.join(", "));
        }
    }
    server.kill();
}
