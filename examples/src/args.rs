//! Command-line arguments of the `client` example, parsed by hand: the grammar is small
//! and every error must be a clear sentence (the program exits with status 2 on it).

use std::fmt;
use std::time::Duration;

use heartline_core::{AppHeartbeat, Backoff, ClientConfig, HeartbeatKind, Jitter, Message};

/// The usage text printed with `--help` and after an argument error.
pub const USAGE: &str = "\
usage: client URL [options]

Connects to URL (ws://...), sends each line of stdin as a text message (queued while
disconnected) and prints every event as one JSON object per line on stdout.
EOF on stdin closes the connection normally (after queued lines have gone out) and
exits: 0 once closed, 1 if the client gave up, 2 on bad arguments.

options:
  --runtime smol|async-std|blocking   which adapter drives the client (default smol;
                                      async-std is discontinued upstream, deprecated)
  --ping-interval-ms N                quiet time before a heartbeat (default 20000)
  --pong-timeout-ms N                 wait for the heartbeat reply (default 10000)
  --app-ping TEXT --app-pong TEXT     application heartbeat: send TEXT, expect TEXT back
  --app-echo TEXT                     application heartbeat the server echoes unchanged
  --reconnect fixed:MS                the same delay before every reconnect
  --reconnect exp:BASE_MS:MAX_MS      doubling delays from BASE_MS up to MAX_MS
  --jitter none|equal|full            randomisation of the delay
                                      (default: none for fixed, equal for exp)
  --max-attempts N                    give up after N failed reconnects in a row
  --header 'Name: value'              extra handshake header (repeatable)
  --seed N                            seed of the jitter (default: random)
  --help                              this text
";

/// Which adapter drives the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `heartline-async` on smol.
    Smol,
    /// `heartline-async` on async-std (deprecated upstream, still supported).
    AsyncStd,
    /// `heartline-blocking` on a thread.
    Blocking,
}

/// The heartbeat asked for on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// Protocol Ping/Pong (the default).
    Protocol,
    /// `--app-ping` / `--app-pong`.
    Text {
        /// What is sent.
        ping: String,
        /// The expected reply.
        pong: String,
    },
    /// `--app-echo`.
    Echo(String),
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the client.
    Run(Box<ClientArgs>),
    /// Print the usage and exit successfully.
    Help,
}

/// The parsed arguments of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientArgs {
    /// The server's URL.
    pub url: String,
    /// The adapter.
    pub runtime: Runtime,
    /// The heartbeat.
    pub heartbeat: Heartbeat,
    /// `--ping-interval-ms`.
    pub ping_interval: Option<Duration>,
    /// `--pong-timeout-ms`.
    pub pong_timeout: Option<Duration>,
    /// `--reconnect`.
    pub backoff: Option<Backoff>,
    /// `--jitter`.
    pub jitter: Option<Jitter>,
    /// `--max-attempts`.
    pub max_attempts: Option<u32>,
    /// `--header`, in order.
    pub headers: Vec<(String, String)>,
    /// `--seed`.
    pub seed: Option<u64>,
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgError> {
    let mut args = args.into_iter();
    let mut url = None;
    let mut runtime = Runtime::Smol;
    let (mut app_ping, mut app_pong, mut app_echo) = (None, None, None);
    let mut parsed = ClientArgs {
        url: String::new(),
        runtime,
        heartbeat: Heartbeat::Protocol,
        ping_interval: None,
        pong_timeout: None,
        backoff: None,
        jitter: None,
        max_attempts: None,
        headers: Vec::new(),
        seed: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| match args.next() {
            Some(v) => Ok(v),
            None => err(format!("{name} needs a value")),
        };
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--runtime" => {
                runtime = match value("--runtime")?.as_str() {
                    "smol" => Runtime::Smol,
                    "async-std" => Runtime::AsyncStd,
                    "blocking" => Runtime::Blocking,
                    other => {
                        return err(format!(
                            "--runtime must be smol, async-std or blocking, not {other:?}"
                        ))
                    }
                }
            }
            "--ping-interval-ms" => {
                parsed.ping_interval = Some(millis("--ping-interval-ms", &value(&arg)?)?)
            }
            "--pong-timeout-ms" => {
                parsed.pong_timeout = Some(millis("--pong-timeout-ms", &value(&arg)?)?)
            }
            "--app-ping" => app_ping = Some(nonempty("--app-ping", value(&arg)?)?),
            "--app-pong" => app_pong = Some(nonempty("--app-pong", value(&arg)?)?),
            "--app-echo" => app_echo = Some(nonempty("--app-echo", value(&arg)?)?),
            "--reconnect" => parsed.backoff = Some(backoff(&value(&arg)?)?),
            "--jitter" => {
                parsed.jitter = Some(match value(&arg)?.as_str() {
                    "none" => Jitter::None,
                    "equal" => Jitter::Equal,
                    "full" => Jitter::Full,
                    other => {
                        return err(format!(
                            "--jitter must be none, equal or full, not {other:?}"
                        ))
                    }
                })
            }
            "--max-attempts" => {
                parsed.max_attempts = Some(number("--max-attempts", &value(&arg)?)?)
            }
            "--header" => parsed.headers.push(header(&value(&arg)?)?),
            "--seed" => parsed.seed = Some(number("--seed", &value(&arg)?)?),
            flag if flag.starts_with('-') => {
                return err(format!("unknown option {flag:?}"));
            }
            _ if url.is_some() => return err(format!("unexpected argument {arg:?}")),
            _ => url = Some(arg),
        }
    }
    let Some(url) = url else {
        return err("missing URL");
    };
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
        return err(format!("URL must start with ws:// or wss://, got {url:?}"));
    }
    parsed.url = url;
    parsed.runtime = runtime;
    parsed.heartbeat = match (app_ping, app_pong, app_echo) {
        (None, None, None) => Heartbeat::Protocol,
        (Some(ping), Some(pong), None) => Heartbeat::Text { ping, pong },
        (None, None, Some(echo)) => Heartbeat::Echo(echo),
        (Some(_), None, None) | (None, Some(_), None) => {
            return err("--app-ping and --app-pong go together")
        }
        _ => return err("--app-echo cannot be combined with --app-ping/--app-pong"),
    };
    Ok(Command::Run(Box::new(parsed)))
}

impl ClientArgs {
    /// The core configuration these arguments describe, validated.
    pub fn config(&self) -> Result<ClientConfig, ArgError> {
        let mut config = ClientConfig::default();
        config.heartbeat.kind = match &self.heartbeat {
            Heartbeat::Protocol => HeartbeatKind::Protocol,
            Heartbeat::Text { ping, pong } => HeartbeatKind::App(AppHeartbeat::text(ping, pong)),
            Heartbeat::Echo(text) => {
                HeartbeatKind::App(AppHeartbeat::echo(Message::Text(text.clone())))
            }
        };
        if let Some(d) = self.ping_interval {
            config.heartbeat.interval = d;
        }
        if let Some(d) = self.pong_timeout {
            config.heartbeat.timeout = d;
        }
        if let Some(b) = self.backoff {
            config.reconnect.backoff = b;
            // A fixed delay means that delay, as in the seed articles' `reconnectTime`.
            if matches!(b, Backoff::Fixed(_)) {
                config.reconnect.jitter = Jitter::None;
            }
        }
        if let Some(j) = self.jitter {
            config.reconnect.jitter = j;
        }
        config.reconnect.max_attempts = self.max_attempts;
        // A connect timeout longer than the heartbeat's detection time would make a
        // frozen server's handshake hang longer than a frozen connection: keep them alike.
        let detect = config.heartbeat.interval + config.heartbeat.timeout;
        config.connect_timeout = config.connect_timeout.min(detect);
        config
            .validate()
            .map_err(|e| ArgError(format!("{}: {}", option_of(e.field), e.problem)))?;
        Ok(config)
    }
}

/// The option that sets a configuration field, for error messages.
fn option_of(field: &str) -> &str {
    match field {
        "heartbeat.interval" => "--ping-interval-ms",
        "heartbeat.timeout" => "--pong-timeout-ms",
        f if f.starts_with("reconnect.backoff") => "--reconnect",
        "reconnect.jitter" => "--jitter",
        other => other,
    }
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ArgError> {
    v.parse()
        .or_else(|_| err(format!("{name} needs a whole number, got {v:?}")))
}

fn millis(name: &str, v: &str) -> Result<Duration, ArgError> {
    let ms: u64 = number(name, v)?;
    if ms == 0 {
        return err(format!("{name} must be greater than 0"));
    }
    Ok(Duration::from_millis(ms))
}

fn nonempty(name: &str, v: String) -> Result<String, ArgError> {
    if v.is_empty() {
        return err(format!("{name} must not be empty"));
    }
    Ok(v)
}

fn backoff(v: &str) -> Result<Backoff, ArgError> {
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        ["fixed", ms] => Ok(Backoff::Fixed(millis("--reconnect fixed:MS", ms)?)),
        ["exp", base, max] => {
            let base = millis("--reconnect exp:BASE_MS:MAX_MS (BASE_MS)", base)?;
            let max = millis("--reconnect exp:BASE_MS:MAX_MS (MAX_MS)", max)?;
            if max < base {
                return err("--reconnect exp:BASE_MS:MAX_MS needs MAX_MS >= BASE_MS");
            }
            Ok(Backoff::exponential(base, max))
        }
        _ => err(format!(
            "--reconnect must be fixed:MS or exp:BASE_MS:MAX_MS, got {v:?}"
        )),
    }
}

fn header(v: &str) -> Result<(String, String), ArgError> {
    let Some((name, value)) = v.split_once(':') else {
        return err(format!("--header must look like 'Name: value', got {v:?}"));
    };
    let name = name.trim();
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return err(format!("--header has an invalid name {name:?}"));
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return err(format!(
            "--header {name} has a control character in its value"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<ClientArgs, ArgError> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(a) => Ok(*a),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn full_command_line() {
        let a = run(&[
            "ws://127.0.0.1:9/ws",
            "--runtime",
            "blocking",
            "--ping-interval-ms",
            "300",
            "--pong-timeout-ms",
            "600",
            "--app-ping",
            "ping",
            "--app-pong",
            "pong",
            "--reconnect",
            "exp:200:2000",
            "--max-attempts",
            "5",
            "--header",
            "Authorization: Bearer a:b",
            "--seed",
            "7",
        ])
        .unwrap();
        assert_eq!(a.runtime, Runtime::Blocking);
        assert_eq!(
            a.heartbeat,
            Heartbeat::Text {
                ping: "ping".into(),
                pong: "pong".into()
            }
        );
        assert_eq!(
            a.backoff,
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
        assert_eq!(c.heartbeat.interval, Duration::from_millis(300));
        assert_eq!(c.heartbeat.timeout, Duration::from_millis(600));
        assert_eq!(c.reconnect.max_attempts, Some(5));
        assert_eq!(c.connect_timeout, Duration::from_millis(900));
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
            (&[], "missing URL"),
            (&["http://h/"], "ws://"),
            (&["ws://h/", "--ping-interval-ms"], "needs a value"),
            (&["ws://h/", "--ping-interval-ms", "x"], "whole number"),
            (&["ws://h/", "--ping-interval-ms", "0"], "greater than 0"),
            (&["ws://h/", "--runtime", "tokio"], "--runtime"),
            (&["ws://h/", "--reconnect", "exp:5"], "--reconnect"),
            (
                &["ws://h/", "--reconnect", "exp:500:100"],
                "MAX_MS >= BASE_MS",
            ),
            (&["ws://h/", "--app-ping", "p"], "go together"),
            (
                &["ws://h/", "--app-echo", "e", "--app-pong", "p"],
                "--app-echo",
            ),
            (&["ws://h/", "--header", "novalue"], "Name: value"),
            (&["ws://h/", "--header", "bad name: v"], "invalid name"),
            (&["ws://h/", "--frobnicate"], "unknown option"),
            (&["ws://h/", "ws://other/"], "unexpected argument"),
            (&["ws://h/", "--max-attempts", "-1"], "whole number"),
        ];
        for (args, want) in cases {
            let e = run(args).expect_err(&format!("{args:?} should fail"));
            assert!(e.0.contains(want), "{args:?}: {e} lacks {want:?}");
        }
    }

    #[test]
    fn config_errors_name_the_option() {
        let a = run(&["ws://h/", "--reconnect", "exp:1:5", "--jitter", "full"]).unwrap();
        let e = a.config().unwrap_err();
        assert!(e.0.starts_with("--jitter"), "{e}");
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(["--help".to_string()]).unwrap(), Command::Help);
    }
}
