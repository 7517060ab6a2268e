//! Command-line arguments of the `client` example (clap derive): what each flag does is
//! its doc comment, which `client --help` prints.

use std::time::Duration;

use clap::Parser;
use heartline_core::{AppHeartbeat, Backoff, ClientConfig, HeartbeatKind, Jitter, Message};

/// Which adapter drives the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// `heartline-async` on smol.
    Smol,
    /// `heartline-async` on tokio (a current-thread runtime).
    Tokio,
    /// `heartline-async` on async-std (discontinued upstream, still supported).
    AsyncStd,
    /// `heartline-blocking` on a thread of its own.
    Blocking,
}

/// The randomisation of the reconnect delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JitterArg {
    /// The delay as computed.
    None,
    /// Half the delay fixed, half random.
    Equal,
    /// Anywhere from zero to the delay.
    Full,
}

impl From<JitterArg> for Jitter {
    fn from(j: JitterArg) -> Jitter {
        match j {
            JitterArg::None => Jitter::None,
            JitterArg::Equal => Jitter::Equal,
            JitterArg::Full => Jitter::Full,
        }
    }
}

/// A WebSocket client with heartbeat and reconnect, like a small websocat.
///
/// Connects to URL, sends each line of stdin as a text message (queued while
/// disconnected) and prints every event as one JSON object per line on stdout, with
/// "event" and "t_ms" (milliseconds since start). EOF on stdin closes the connection
/// normally, after queued lines have gone out.
///
/// Exit status: 0 once closed, 1 if the client gave up (or, with --once, never got a
/// connection), 2 on bad arguments.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "client", version, max_term_width = 100)]
pub struct ClientArgs {
    /// The server, `ws://HOST[:PORT]/PATH` or wss://...
    #[arg(value_parser = ws_url)]
    pub url: String,
    /// Which adapter drives the client.
    #[arg(long, value_enum, default_value_t = Runtime::Smol)]
    pub runtime: Runtime,
    /// Quiet time before a heartbeat, such as 5s or 250ms [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ping_interval: Option<Duration>,
    /// --ping-interval in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis, conflicts_with = "ping_interval")]
    pub ping_interval_ms: Option<Duration>,
    /// How long to wait for the heartbeat's reply before the connection counts as dead
    /// [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ping_timeout: Option<Duration>,
    /// --ping-timeout in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis, conflicts_with = "ping_timeout")]
    pub pong_timeout_ms: Option<Duration>,
    /// Application heartbeat: send TEXT (with --app-pong) instead of a protocol Ping.
    #[arg(long, value_name = "TEXT", requires = "app_pong", value_parser = nonempty)]
    pub app_ping: Option<String>,
    /// The reply the --app-ping heartbeat expects.
    #[arg(long, value_name = "TEXT", requires = "app_ping", value_parser = nonempty)]
    pub app_pong: Option<String>,
    /// Application heartbeat the server echoes unchanged.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["app_ping", "app_pong"], value_parser = nonempty)]
    pub app_echo: Option<String>,
    /// The reconnect delays: fixed:MS (the same before every attempt) or
    /// exp:BASE_MS:MAX_MS (doubling from BASE_MS up to MAX_MS) [default: exp:1000:30000].
    #[arg(long, value_name = "SPEC", value_parser = backoff)]
    pub reconnect: Option<Backoff>,
    /// Randomisation of the reconnect delay [default: none for fixed, equal for exp].
    #[arg(long, value_enum)]
    pub jitter: Option<JitterArg>,
    /// Give up after N failed reconnects in a row [default: never].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// An extra handshake header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// Seed of the reconnect jitter, for reproducible runs [default: random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Largest message (and frame) the server may send, in bytes [default: 16777216].
    /// A larger one fails the connection with Close 1009.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_message_bytes: Option<u64>,
    /// Send every text and binary message back as it came (stdin is not read).
    #[arg(long)]
    pub echo: bool,
    /// Send each line of stdin as a text message (the default).
    #[arg(long, conflicts_with = "binary")]
    pub text: bool,
    /// Send each line of stdin (without its line ending) as a binary message.
    #[arg(long)]
    pub binary: bool,
    /// One connection only: no reconnect; exit once it has closed.
    #[arg(long, conflicts_with = "max_attempts")]
    pub once: bool,
    /// Print each heartbeat's round-trip time on stderr, as `RTT 1.234 ms` (like
    /// websocat's --print-ping-rtts); the JSON `rtt` events on stdout stay as they are.
    #[arg(long)]
    pub print_rtt: bool,
}

impl ClientArgs {
    /// The heartbeat interval asked for, in either unit.
    fn interval(&self) -> Option<Duration> {
        self.ping_interval.or(self.ping_interval_ms)
    }

    /// The heartbeat timeout asked for, in either unit.
    fn timeout(&self) -> Option<Duration> {
        self.ping_timeout.or(self.pong_timeout_ms)
    }

    /// `--max-message-bytes` as a size.
    pub fn max_message_size(&self) -> Option<usize> {
        self.max_message_bytes
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The core configuration these arguments describe, validated; the error names
    /// the option at fault.
    pub fn config(&self) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::default();
        config.heartbeat.kind = match (&self.app_ping, &self.app_pong, &self.app_echo) {
            (Some(ping), Some(pong), _) => HeartbeatKind::App(AppHeartbeat::text(ping, pong)),
            (_, _, Some(text)) => {
                HeartbeatKind::App(AppHeartbeat::echo(Message::Text(text.clone())))
            }
            _ => HeartbeatKind::Protocol,
        };
        if let Some(d) = self.interval() {
            config.heartbeat.interval = d;
        }
        if let Some(d) = self.timeout() {
            config.heartbeat.timeout = d;
        }
        if let Some(b) = self.reconnect {
            config.reconnect.backoff = b;
            // A fixed delay means that delay, as in the seed articles' `reconnectTime`.
            if matches!(b, Backoff::Fixed(_)) {
                config.reconnect.jitter = Jitter::None;
            }
        }
        if let Some(j) = self.jitter {
            config.reconnect.jitter = j.into();
        }
        config.reconnect.max_attempts = if self.once {
            Some(0)
        } else {
            self.max_attempts
        };
        if let Some(bytes) = self.max_message_size() {
            // Room to echo two of the largest messages back.
            config.queue.max_bytes = config.queue.max_bytes.max(bytes.saturating_mul(2));
        }
        // A connect timeout longer than the heartbeat's detection time would make a
        // frozen server's handshake hang longer than a frozen connection: keep them alike.
        let detect = config.heartbeat.interval + config.heartbeat.timeout;
        config.connect_timeout = config.connect_timeout.min(detect);
        config
            .validate()
            .map_err(|e| format!("{}: {}", option_of(e.field), e.problem))?;
        Ok(config)
    }
}

/// The option that sets a configuration field, for error messages.
fn option_of(field: &str) -> &str {
    match field {
        "heartbeat.interval" => "--ping-interval",
        "heartbeat.timeout" => "--ping-timeout",
        f if f.starts_with("reconnect.backoff") => "--reconnect",
        "reconnect.jitter" => "--jitter",
        other => other,
    }
}

fn ws_url(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("ws://") || lower.starts_with("wss://") {
        Ok(url.to_owned())
    } else {
        Err("must start with ws:// or wss://".to_owned())
    }
}

/// A positive duration with its unit: `5s`, `250ms`, `1m 30s`.
pub fn duration(v: &str) -> Result<Duration, String> {
    match humantime::parse_duration(v) {
        Ok(d) if d.is_zero() => Err("must be greater than 0".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (a duration such as 5s or 250ms)")),
    }
}

/// A positive whole number of milliseconds.
pub fn millis(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(0) => Err("must be greater than 0".to_owned()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err("needs a whole number of milliseconds".to_owned()),
    }
}

fn nonempty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(v.to_owned())
}

fn backoff(v: &str) -> Result<Backoff, String> {
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        ["fixed", ms] => Ok(Backoff::Fixed(millis(ms)?)),
        ["exp", base, max] => {
            let base = millis(base).map_err(|e| format!("BASE_MS {e}"))?;
            let max = millis(max).map_err(|e| format!("MAX_MS {e}"))?;
            if max < base {
                return Err("exp:BASE_MS:MAX_MS needs MAX_MS >= BASE_MS".to_owned());
            }
            Ok(Backoff::exponential(base, max))
        }
        _ => Err("must be fixed:MS or exp:BASE_MS:MAX_MS".to_owned()),
    }
}

fn header(v: &str) -> Result<(String, String), String> {
    let Some((name, value)) = v.split_once(':') else {
        return Err("must look like 'Name: value'".to_owned());
    };
    let name = name.trim();
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("has an invalid name {name:?}"));
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{name} has a control character in its value"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<ClientArgs, String> {
        ClientArgs::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn full_command_line() {
        let a = run(&[
            "ws://127.0.0.1:9/ws",
            "--runtime",
            "blocking",
            "--ping-interval",
            "300ms",
            "--ping-timeout",
            "0.6s",
            "--app-ping",
            "ping",
            "--app-pong",
            "pong",
            "--reconnect",
            "exp:200:2000",
            "--max-attempts",
            "5",
            "-H",
            "Authorization: Bearer a:b",
            "--seed",
            "7",
            "--max-message-bytes",
            "4194304",
        ])
        .unwrap();
        assert_eq!(a.runtime, Runtime::Blocking);
        assert_eq!(
            a.reconnect,
            Some(Backoff::exponential(
                Duration::from_millis(200),
                Duration::from_millis(2000)
            ))
        );
        assert_eq!(
            a.headers,
            vec![("Authorization".into(), "Bearer a:b".into())]
        );
        let c = a.config().unwrap();
        assert!(matches!(c.heartbeat.kind, HeartbeatKind::App(_)));
        assert_eq!(c.heartbeat.interval, Duration::from_millis(300));
        assert_eq!(c.heartbeat.timeout, Duration::from_millis(600));
        assert_eq!(c.reconnect.max_attempts, Some(5));
        assert_eq!(c.connect_timeout, Duration::from_millis(900));
        assert_eq!(c.queue.max_bytes, 8 << 20);
    }

    #[test]
    fn the_millisecond_flags_stay_as_aliases() {
        let a = run(&[
            "ws://h/",
            "--ping-interval-ms",
            "300",
            "--pong-timeout-ms",
            "600",
        ])
        .unwrap();
        let c = a.config().unwrap();
        assert_eq!(c.heartbeat.interval, Duration::from_millis(300));
        assert_eq!(c.heartbeat.timeout, Duration::from_millis(600));
    }

    #[test]
    fn fixed_reconnect_is_exact_unless_told() {
        let a = run(&["ws://h/", "--reconnect", "fixed:500"]).unwrap();
        assert_eq!(a.config().unwrap().reconnect.jitter, Jitter::None);
        let a = run(&["ws://h/", "--reconnect", "fixed:500", "--jitter", "full"]).unwrap();
        assert_eq!(a.config().unwrap().reconnect.jitter, Jitter::Full);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "<URL>"),
            (&["http://h/"], "ws://"),
            (&["ws://h/", "--ping-interval"], "a value is required"),
            (&["ws://h/", "--ping-interval", "5"], "duration"),
            (&["ws://h/", "--ping-interval", "0s"], "greater than 0"),
            (&["ws://h/", "--ping-interval-ms", "x"], "whole number"),
            (
                &[
                    "ws://h/",
                    "--ping-interval",
                    "1s",
                    "--ping-interval-ms",
                    "5",
                ],
                "cannot be used",
            ),
            (&["ws://h/", "--runtime", "glommio"], "--runtime"),
            (&["ws://h/", "--reconnect", "exp:5"], "--reconnect"),
            (
                &["ws://h/", "--reconnect", "exp:500:100"],
                "MAX_MS >= BASE_MS",
            ),
            (&["ws://h/", "--app-ping", "p"], "--app-pong"),
            (
                &["ws://h/", "--app-echo", "e", "--app-pong", "p"],
                "cannot be used",
            ),
            (&["ws://h/", "--header", "novalue"], "Name: value"),
            (&["ws://h/", "-H", "bad name: v"], "invalid name"),
            (&["ws://h/", "--frobnicate"], "--frobnicate"),
            (&["ws://h/", "ws://other/"], "unexpected argument"),
            (&["ws://h/", "--max-attempts", "-1"], "-1"),
            (
                &["ws://h/", "--max-message-bytes", "0"],
                "--max-message-bytes",
            ),
        ];
        for (args, want) in cases {
            let e = run(args).expect_err(&format!("{args:?} should fail"));
            assert!(e.contains(want), "{args:?}: {e} lacks {want:?}");
        }
    }

    #[test]
    fn config_errors_name_the_option() {
        let a = run(&["ws://h/", "--reconnect", "exp:1:5", "--jitter", "full"]).unwrap();
        let e = a.config().unwrap_err();
        assert!(e.starts_with("--jitter"), "{e}");
    }
}
