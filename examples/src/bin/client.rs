//! A command-line WebSocket client with heartbeat and reconnect, like a small websocat.
//!
//! ```text
//! client ws://127.0.0.1:8080/ws --ping-interval 5s --reconnect exp:500:10000
//! ```
//!
//! Each line of stdin is sent as a text message (queued while disconnected); every event
//! is printed as one JSON object per line on stdout, with `"event"` and `"t_ms"`
//! (milliseconds since start). EOF on stdin closes the connection normally, after lines
//! still queued have gone out; the program exits 0 once it is closed, 1 if the client
//! gave up, 2 on bad arguments. `--help` lists the options.

use std::cell::Cell;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use heartline_blocking::{ClientEvent, ClientHandle};
use heartline_core::{close_code, Notice, ReadyState, SendError};
use heartline_examples::args::{ClientArgs, Runtime};
use heartline_examples::events::{binary_json, notice_json, text_json};
use heartline_examples::jsonl::line;

fn main() -> ExitCode {
    let args = ClientArgs::parse();
    heartline_examples::init_tracing();
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => ClientArgs::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    let out = Out::new(Instant::now());
    let ending: Result<Ending, String> = match args.runtime {
        Runtime::Smol => smol::block_on(run_async(&args, config, &out, Spawn::Smol)),
        Runtime::Tokio => {
            tokio_runtime().and_then(|rt| rt.block_on(run_async(&args, config, &out, Spawn::Tokio)))
        }
        Runtime::AsyncStd => {
            async_std::task::block_on(run_async(&args, config, &out, Spawn::AsyncStd))
        }
        Runtime::Blocking => run_blocking(&args, config, &out),
    };
    match ending {
        Ok(Ending::Closed) => ExitCode::SUCCESS,
        Ok(Ending::GaveUp) => ExitCode::from(1),
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::from(2)
        }
    }
}

/// How the client ended.
enum Ending {
    /// Closed after EOF on stdin (or, with `--once`, after its one connection).
    Closed,
    /// Stopped reconnecting (with `--once`: the connection never opened).
    GaveUp,
}

/// Prints events as JSON lines, timestamped from the program's start.
struct Out {
    start: Instant,
    gave_up: Cell<bool>,
    opened: Cell<bool>,
}

impl Out {
    fn new(start: Instant) -> Self {
        Out {
            start,
            gave_up: Cell::new(false),
            opened: Cell::new(false),
        }
    }

    /// How the client ended, once its events have ended.
    fn ending(&self, once: bool) -> Ending {
        // With `--once` the client gives up after its one connection by design.
        let failed = if once {
            !self.opened.get()
        } else {
            self.gave_up.get()
        };
        if failed {
            Ending::GaveUp
        } else {
            Ending::Closed
        }
    }

    fn t_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Writes one line (it ends with its newline) and flushes it.
    fn line(&self, line: &str) {
        let mut stdout = io::stdout().lock();
        // A reader that went away is not worth a panic; the client keeps its course.
        let _ = stdout.write_all(line.as_bytes());
        let _ = stdout.flush();
    }

    /// Prints an event of either adapter (they share the event and handle types), and
    /// echoes a message back with `--echo`.
    fn event(&self, event: ClientEvent, control: &Control) {
        let echoed = match event {
            ClientEvent::Notice(notice) => {
                self.notice(&notice);
                control.on_notice(&notice);
                return;
            }
            ClientEvent::Text(text) => {
                self.text(text.as_str());
                control
                    .echo
                    .then(|| control.handle.send_text(text.as_str()))
            }
            ClientEvent::Binary(data) => {
                self.binary(data.len());
                control
                    .echo
                    .then(|| control.handle.send_binary(data.to_vec()))
            }
            // Kinds of event added to heartline later.
            _ => None,
        };
        if let Some(Err(e)) = echoed {
            self.send_failed(&e);
        }
    }

    fn notice(&self, notice: &Notice) {
        match notice {
            Notice::GaveUp { .. } => self.gave_up.set(true),
            Notice::Open { .. } => self.opened.set(true),
            _ => {}
        }
        self.line(&notice_json(self.t_ms(), notice));
    }

    fn text(&self, text: &str) {
        self.line(&text_json(self.t_ms(), text));
    }

    fn binary(&self, len: usize) {
        self.line(&binary_json(self.t_ms(), len));
    }

    fn send_failed(&self, e: &SendError) {
        let error = e.to_string();
        let bytes = u64::try_from(e.message.len()).unwrap_or(u64::MAX);
        self.line(&line(
            "send_failed",
            self.t_ms(),
            &[("error", error.as_str().into()), ("bytes", bytes.into())],
        ));
    }
}

/// What ends the client (end of input; with `--once` the core stops after one
/// connection by itself), and whether messages are echoed.
///
/// End of input closes normally, but not before what was typed has gone out.
///
/// Lines typed while disconnected wait in the client's queue, and closing a client that
/// is not open discards its queue. So at EOF with messages queued the close waits for
/// the next `open` (the queued messages are then ahead of the Close frame); with
/// nothing queued, or when open, it happens at once. `echo hi | client URL` thus
/// delivers `hi` and exits.
#[derive(Clone)]
struct Control {
    seen: Arc<AtomicBool>,
    handle: ClientHandle,
    echo: bool,
    /// Stdin lines go out as binary messages (`--binary`).
    binary: bool,
    /// Round trips go to stderr too (`--print-rtt`).
    print_rtt: bool,
}

impl Control {
    fn new(handle: ClientHandle, args: &ClientArgs) -> Self {
        Control {
            seen: Arc::new(AtomicBool::new(false)),
            handle,
            echo: args.echo,
            binary: args.binary,
            print_rtt: args.print_rtt,
        }
    }

    /// Starts reading stdin, unless messages come from the server (`--echo`).
    fn start_input(&self, out_start: Instant) {
        if !self.echo {
            spawn_stdin_reader(self.clone(), out_start);
        }
    }

    /// Called by the stdin reader at EOF.
    fn reached(&self) {
        // Set before looking at the state: if the connection opens after the look,
        // the `open` event that follows finds the flag set.
        self.seen.store(true, Ordering::SeqCst);
        if self.handle.buffered_amount() == 0 || self.handle.state() == ReadyState::Open {
            self.close();
        }
    }

    /// Called for every notice, in order.
    fn on_notice(&self, notice: &Notice) {
        match notice {
            Notice::Open { .. } if self.seen.load(Ordering::SeqCst) => self.close(),
            Notice::Rtt(rtt) if self.print_rtt => {
                eprintln!("RTT {:.3} ms", rtt.as_secs_f64() * 1e3);
            }
            _ => {}
        }
    }

    fn close(&self) {
        // NORMAL with an empty reason is always a valid close; closing twice is harmless.
        let _ = self.handle.close(close_code::NORMAL, "");
    }
}

/// Reads stdin on its own thread: each line is sent (as text, or as binary with
/// `--binary`); at EOF the client closes (see `Control::reached`). As text, lines that are not
/// UTF-8 are sent with replacement characters rather than lost.
fn spawn_stdin_reader(eof: Control, out_start: Instant) {
    let out = Out::new(out_start);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match stdin.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let sent = if eof.binary {
                    eof.handle.send_binary(buf.clone())
                } else {
                    eof.handle
                        .send_text(String::from_utf8_lossy(&buf).into_owned())
                };
                if let Err(e) = sent {
                    out.send_failed(&e);
                }
            }
            eof.reached();
        });
    if let Err(e) = spawned {
        eprintln!("client: cannot read stdin: {e}");
    }
}

/// Applies the command line to either adapter's builder (same methods, two types).
macro_rules! builder {
    ($builder:ty, $args:expr, $config:expr) => {{
        let mut builder = <$builder>::new($args.url.clone()).config($config);
        if let Some(bytes) = $args.max_message_size() {
            builder = builder
                .max_message_size(Some(bytes))
                .max_frame_size(Some(bytes));
        }
        if let Some(seed) = $args.seed {
            builder = builder.seed(seed);
        }
        for (name, value) in &$args.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        builder
    }};
}

/// Which executor the async client's driver runs on.
#[derive(Clone, Copy)]
enum Spawn {
    Smol,
    Tokio,
    AsyncStd,
}

/// A current-thread tokio runtime with IO and time: the client's driver and the
/// event loop share the one thread, as on smol.
fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))
}

async fn run_async(
    args: &ClientArgs,
    config: heartline_core::ClientConfig,
    out: &Out,
    spawn: Spawn,
) -> Result<Ending, String> {
    use heartline_async::ClientBuilder;

    let builder = builder!(ClientBuilder, args, config);
    let connected = match spawn {
        Spawn::Smol => heartline_async::smol::connect(builder),
        Spawn::Tokio => heartline_async::tokio::connect(builder),
        Spawn::AsyncStd => heartline_async::async_std::connect(builder),
    };
    let (handle, mut events) = connected.map_err(|e| e.to_string())?;
    let control = Control::new(handle, args);
    control.start_input(out.start);
    while let Some(event) = events.recv().await {
        out.event(event, &control);
    }
    Ok(out.ending(args.once))
}

fn run_blocking(
    args: &ClientArgs,
    config: heartline_core::ClientConfig,
    out: &Out,
) -> Result<Ending, String> {
    use heartline_blocking::ClientBuilder;

    let builder = builder!(ClientBuilder, args, config);
    let (handle, events) = heartline_blocking::connect(builder).map_err(|e| e.to_string())?;
    let control = Control::new(handle, args);
    control.start_input(out.start);
    for event in events {
        out.event(event, &control);
    }
    Ok(out.ending(args.once))
}
