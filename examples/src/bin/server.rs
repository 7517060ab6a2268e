//! `server`: an echo server on the model of seed 002's Node server.
//!
//! It echoes every message back to its sender, answers the seeds' heartbeats (text
//! `ping` gets `pong`, a JSON `heart_beat` message is echoed), pings quiet clients and
//! evicts silent ones, keys clients by `?name=` (a second connection with a name
//! replaces the first), and serves at `GET /` a page with connect / send / close
//! buttons whose script heartbeats and reconnects. Browser pages of other sites are
//! refused (403) unless `--allow-origin` lists them or `--any-origin` is given;
//! `--anonymous` admits clients without a name under generated ids. `server --help`
//! lists every flag.
//!
//! With `--cluster redis://HOST:PORT` it is a node of a cluster: names, replacement
//! and `GET /clients` span every node, and a text message `{"to": NAME, "data": ANY}`
//! goes to NAME wherever it is (`"to": "*"`: to everyone else), the sender told
//! whether it was delivered. Other messages are echoed.
//!
//! Events are JSON lines on stdout with `"event"` and `"t_ms"`: `listening` (`addr`,
//! and `node` in a cluster), `connected` (`name`), `replaced` (`name`), `evicted`
//! (`name`, `reason`), `disconnected` (`name`, `code`), `rejected` (`path`, `status`),
//! and in a cluster `node_up` (`node`), `node_down` (`node`, `clients`), `backplane`
//! (`up`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use heartline_blocking::cluster::redis::Redis;
use heartline_blocking::cluster::ClusterSetup;
use heartline_blocking::hub::{HttpHandler, ServerConfig};
use heartline_blocking::wire::HttpResponse;
use heartline_core::{ClusterConfig, NameSource, OriginRule, PathRule};
use heartline_examples::args::{duration, millis};
use heartline_examples::jsonl::{quote, EventLog, Value};
use heartline_examples::relay::{self, Relay};

/// The page served at `/`, with the WebSocket path filled in at startup.
const PAGE: &str = include_str!("../../static/index.html");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    /// heartline-async on smol: one thread runs the reactor and the server.
    Smol,
    /// heartline-async on a current-thread tokio runtime.
    Tokio,
    /// heartline-async on async-std (discontinued upstream, still supported).
    AsyncStd,
    /// heartline-blocking: the server loop on a thread of its own.
    Blocking,
}

/// An echo server with heartbeat, eviction and a registry by name; events as JSON lines.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on (seed 002's port by default).
    #[arg(long, default_value = "127.0.0.1:1024")]
    listen: String,
    /// The WebSocket path; other paths get 404 (`/` serves the page).
    #[arg(long, default_value = "/ws/", value_parser = ws_path)]
    path: String,
    /// Which runtime runs the server loop.
    #[arg(long, value_enum, default_value_t = Runtime::Smol)]
    runtime: Runtime,
    /// Quiet time before a client is pinged, such as 30s or 500ms [default: 30s]. With
    /// only one of the two timings given, the other keeps the 2:5 ratio.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    ping_interval: Option<Duration>,
    /// --ping-interval in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis, conflicts_with = "ping_interval")]
    ping_interval_ms: Option<Duration>,
    /// Silence after which a client is evicted [default: 75s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    idle_timeout: Option<Duration>,
    /// --idle-timeout in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis, conflicts_with = "idle_timeout")]
    idle_timeout_ms: Option<Duration>,
    /// Let pages from this origin connect (`https://app.example`), besides the
    /// server's own pages. Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Let pages from any origin connect (by default a browser handshake whose
    /// `Origin` is another site gets 403; clients that send no `Origin` always may).
    #[arg(long, conflicts_with = "allow_origin")]
    any_origin: bool,
    /// Accept clients without `?name=`: each is registered under a generated id
    /// (`anon-1`, `anon-2`, ...). Without it such a request gets 400.
    #[arg(long)]
    anonymous: bool,
    /// Largest message (and frame) a client may send, in bytes (default 65536). A
    /// larger one is refused with Close 1009. The per-client backlog grows to hold two
    /// such messages echoed back.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_message_bytes: Option<u64>,
    /// Join a cluster on the Redis server at URL (`redis://127.0.0.1:6379`): names,
    /// `{"to": NAME}` messages, broadcasts and `GET /clients` span every node. With
    /// Redis unreachable the node serves its own clients and retries.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// This node's id in the cluster, unique among its nodes [default: generated from
    /// the process id and the time].
    #[arg(long, value_name = "ID", requires = "cluster")]
    node_id: Option<String>,
}

fn ws_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        Ok(path.to_owned())
    } else {
        Err("must start with '/'".to_owned())
    }
}

/// The core's configuration: seed 002's defaults, with the path, timings and admission
/// rules given.
fn core_config(args: &Args) -> heartline_core::ServerConfig {
    let mut config = heartline_core::ServerConfig::default();
    config.upgrade.path = PathRule::Exact(args.path.clone());
    config.upgrade.origin = if args.any_origin {
        OriginRule::Any
    } else {
        OriginRule::SameHost {
            allow: args.allow_origin.clone(),
        }
    };
    if args.anonymous {
        let next = Arc::new(AtomicU64::new(0));
        config.upgrade.name = NameSource::Custom(Arc::new(move |req| {
            let given = req.param("name").ok().flatten().filter(|n| !n.is_empty());
            Some(given.map_or_else(
                || format!("anon-{}", next.fetch_add(1, Ordering::Relaxed) + 1),
                |n| n.into_owned(),
            ))
        }));
    }
    if let Some(bytes) = args.max_message_bytes {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        config.max_message_size = bytes;
        config.max_frame_size = bytes;
        config.max_backlog_bytes = config.max_backlog_bytes.max(bytes.saturating_mul(2));
    }
    let ping = args.ping_interval.or(args.ping_interval_ms);
    let idle = args.idle_timeout.or(args.idle_timeout_ms);
    match (ping, idle) {
        (Some(ping), Some(idle)) => {
            config.ping_interval = ping;
            config.idle_timeout = idle;
        }
        // One given: keep the default ratio of the two (30 s ping, 75 s idle).
        (Some(ping), None) => {
            config.ping_interval = ping;
            config.idle_timeout = ping.saturating_mul(5) / 2;
        }
        (None, Some(idle)) => {
            config.idle_timeout = idle;
            config.ping_interval = idle * 2 / 5;
        }
        (None, None) => {}
    }
    config
}

/// Answers `GET /` (and `/index.html`) with the page and `GET /clients` with the
/// cluster's clients; anything else is left to the server (404).
fn http_handler(ws_path: &str, node: String) -> HttpHandler {
    let page = PAGE.replace("/*WS_PATH*/'/ws/'", &quote(ws_path));
    // Built once and served for the life of the program.
    let page: &'static str = Box::leak(page.into_boxed_str());
    Arc::new(move |request, directory| {
        if request.method() != "GET" {
            return None;
        }
        match request.uri().path() {
            "/" | "/index.html" => Some(HttpResponse::html(page)),
            "/clients" => Some(HttpResponse::json(relay::clients_json(directory, &node))),
            _ => None,
        }
    })
}

/// This node's id: given, or made from the process id and the time.
fn node_id(args: &Args) -> String {
    args.node_id.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("node-{}-{nanos:08x}", std::process::id())
    })
}

/// The server's configuration, the cluster's included.
fn server_config(args: &Args, node: &str) -> Result<ServerConfig, String> {
    let cluster = match &args.cluster {
        None => None,
        Some(url) => {
            let redis = Redis::open(url).map_err(|e| format!("--cluster: {e}"))?;
            Some(ClusterSetup::new(ClusterConfig::new(node), redis))
        }
    };
    Ok({
        let mut built = ServerConfig::default();
        built.core = core_config(args);
        built.http = Some(http_handler(&args.path, node.to_owned()));
        built.cluster = cluster;
        built
    })
}

fn run(args: &Args, log: EventLog) -> Result<(), String> {
    let node = node_id(args);
    let config = server_config(args, &node)?;
    let cannot = |e: std::io::Error| format!("cannot listen on {}: {e}", args.listen);
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(args.listen.as_str()).map_err(cannot)?;
    let listener = heartline_blocking::net::listener(addrs).map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let mut fields = vec![("addr", Value::from(addr.to_string()))];
    if args.cluster.is_some() {
        fields.push(("node", Value::from(node)));
    }
    log.emit("listening", &fields);
    // Events are handled on the server loop itself, and what they send goes out from
    // there at once: no round trip between threads per message.
    let mut relay = Relay::new(log);
    match args.runtime {
        Runtime::Blocking => {
            use heartline_blocking::server::{Responder, Server};
            let handler =
                move |event, responder: &mut Responder<'_>| relay.handle(event, responder);
            let server = Server::start_with_handler(listener, config, handler).map_err(cannot)?;
            // Nothing is queued with a handler: this returns once the server has stopped.
            while server.recv().is_some() {}
        }
        Runtime::Smol => {
            use heartline_async::server::{Responder, Server};
            let handler =
                move |event, responder: &mut Responder<'_>| relay.handle(event, responder);
            let (server, driver) =
                Server::start_with_handler(listener, config, handler).map_err(cannot)?;
            // One thread runs the reactor and the driver: no hand-offs between threads.
            let executor = smol::Executor::new();
            smol::block_on(executor.run(async {
                executor.spawn(driver).detach();
                while server.next_event().await.is_some() {}
            }));
        }
        Runtime::Tokio => {
            use heartline_async::runtime::Tokio;
            use heartline_async::server::{Responder, Server};
            let handler =
                move |event, responder: &mut Responder<'_>| relay.handle(event, responder);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start tokio: {e}"))?;
            rt.block_on(async {
                let (server, driver) =
                    Server::start_on_with_handler::<Tokio, _>(listener, config, handler)
                        .map_err(cannot)?;
                drop(tokio::spawn(driver));
                while server.next_event().await.is_some() {}
                Ok::<(), String>(())
            })?;
        }
        Runtime::AsyncStd => {
            use heartline_async::server::{Responder, Server};
            let handler =
                move |event, responder: &mut Responder<'_>| relay.handle(event, responder);
            let (server, driver) =
                Server::start_with_handler(listener, config, handler).map_err(cannot)?;
            async_std::task::spawn(driver);
            async_std::task::block_on(async { while server.next_event().await.is_some() {} });
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let log = EventLog::new();
    heartline_examples::init_tracing();
    let args = Args::parse();
    if let Err(e) = core_config(&args).validate() {
        eprintln!("server: {e}");
        return ExitCode::from(2);
    }
    match run(&args, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("server: {message}");
            ExitCode::FAILURE
        }
    }
}
