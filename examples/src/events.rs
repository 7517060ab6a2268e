//! How the examples show a client's notices: one JSON object per line for programs
//! (the `client` example), one readable sentence for people (the `demo`).

use heartline_core::{ConnectFailure, DropCause, GiveUpReason, Notice};

use crate::jsonl::{line, Value};

/// The JSON line (with its newline) for `notice`, `t_ms` milliseconds after the program
/// started.
pub fn notice_json(t_ms: u64, notice: &Notice) -> String {
    match notice {
        Notice::Connecting { conn, attempt } => line(
            "connecting",
            t_ms,
            &[
                ("attempt", u64::from(*attempt).into()),
                ("conn", conn.0.into()),
            ],
        ),
        Notice::Open { conn } => line("open", t_ms, &[("conn", conn.0.into())]),
        Notice::Rtt(rtt) => line(
            "rtt",
            t_ms,
            &[
                ("ms", millis(*rtt).into()),
                // Loopback round trips are well under a millisecond.
                ("us", micros(*rtt).into()),
            ],
        ),
        Notice::HeartbeatMissed { conn } => {
            line("heartbeat_missed", t_ms, &[("conn", conn.0.into())])
        }
        Notice::ConnectFailed { conn, error } => {
            let text = error.to_string();
            let mut fields = vec![("conn", conn.0.into()), ("error", text.as_str().into())];
            if let ConnectFailure::Http { status, .. } = error {
                fields.push(("status", Value::from(*status)));
            }
            line("connect_failed", t_ms, &fields)
        }
        Notice::Closed {
            conn,
            code,
            reason,
            by,
        } => line(
            "closed",
            t_ms,
            &[
                ("conn", conn.0.into()),
                ("code", (*code).into()),
                ("reason", reason.as_str().into()),
                ("by", by.as_str().into()),
            ],
        ),
        Notice::ReconnectScheduled { attempt, delay } => line(
            "reconnect_scheduled",
            t_ms,
            &[
                ("attempt", u64::from(*attempt).into()),
                ("delay_ms", millis(*delay).into()),
            ],
        ),
        Notice::GaveUp { reason } => {
            let text = reason.to_string();
            let (key, value) = match reason {
                GiveUpReason::HttpStatus(s) => ("status", Value::from(*s)),
                GiveUpReason::CloseCode { code, .. } => ("code", Value::from(*code)),
                GiveUpReason::AttemptsExhausted { attempts } => {
                    ("attempts", u64::from(*attempts).into())
                }
                other => ("detail", format!("{other:?}").into()),
            };
            line(
                "gave_up",
                t_ms,
                &[("reason", text.as_str().into()), (key, value)],
            )
        }
        Notice::Resumed { lost } => line("resumed", t_ms, &[("lost_ms", millis(*lost).into())]),
        Notice::Unconfirmed {
            conn,
            messages,
            bytes,
        } => line(
            "unconfirmed",
            t_ms,
            &[
                ("conn", conn.0.into()),
                ("messages", count(*messages).into()),
                ("bytes", count(*bytes).into()),
            ],
        ),
        Notice::Dropped {
            messages,
            bytes,
            cause,
        } => line(
            "dropped",
            t_ms,
            &[
                ("messages", count(*messages).into()),
                ("bytes", count(*bytes).into()),
                ("cause", cause_str(*cause).into()),
            ],
        ),
        // Notices added to heartline later: their debug form, under "notice".
        other => line("notice", t_ms, &[("debug", format!("{other:?}").into())]),
    }
}

/// The JSON line for an inbound text message.
pub fn text_json(t_ms: u64, text: &str) -> String {
    line("message", t_ms, &[("text", text.into())])
}

/// The JSON line for an inbound binary message (its length: bytes are not printable).
pub fn binary_json(t_ms: u64, len: usize) -> String {
    line("message", t_ms, &[("binary_len", count(len).into())])
}

/// A sentence describing `notice`, for a person reading a timeline.
pub fn describe(notice: &Notice) -> String {
    match notice {
        Notice::Connecting { conn, attempt: 0 } => format!("connecting (connection {conn})"),
        Notice::Connecting { conn, attempt } => {
            format!("connecting (connection {conn}, reconnect attempt {attempt})")
        }
        Notice::Open { conn } => format!("open (connection {conn}); queued messages follow"),
        Notice::Rtt(rtt) => format!("heartbeat answered, rtt {:.3} ms", rtt.as_secs_f64() * 1e3),
        Notice::HeartbeatMissed { conn } => {
            format!("heartbeat missed on {conn}: no reply within the pong timeout")
        }
        Notice::ConnectFailed { conn, error } => format!("connect failed ({conn}): {error}"),
        Notice::Closed {
            conn,
            code,
            reason,
            by,
        } => format!("closed {conn}: code {code}, by {}, {reason:?}", by.as_str()),
        Notice::ReconnectScheduled { attempt, delay } => {
            format!("reconnect attempt {attempt} in {} ms", millis(*delay))
        }
        Notice::GaveUp { reason } => format!("gave up: {reason}"),
        Notice::Resumed { lost } => format!(
            "woke after losing {} ms: probing the connection, backoff starts fresh",
            millis(*lost)
        ),
        Notice::Unconfirmed { conn, messages, .. } => format!(
            "{conn} ended with {messages} messages written after the last heartbeat answer: \
             they may not have arrived"
        ),
        Notice::Dropped {
            messages,
            bytes,
            cause,
        } => format!(
            "dropped {messages} queued messages ({bytes} bytes): {}",
            cause_str(*cause)
        ),
        other => format!("{other:?}"),
    }
}

fn cause_str(cause: DropCause) -> &'static str {
    match cause {
        DropCause::Overflow => "overflow",
        DropCause::Closed => "closed",
        _ => "other",
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartline_core::{ConnId, Initiator};
    use std::time::Duration;

    /// `s` without its newline, checking it is one line.
    fn one_line(s: String) -> String {
        assert!(s.ends_with('\n') && s.matches('\n').count() == 1, "{s:?}");
        s.trim_end().to_owned()
    }

    #[test]
    fn closed_carries_code_reason_and_initiator() {
        let line = notice_json(
            42,
            &Notice::Closed {
                conn: ConnId(3),
                code: 1006,
                reason: "connection \"reset\"\n".into(),
                by: Initiator::Transport,
            },
        );
        assert_eq!(
            one_line(line),
            r#"{"event":"closed","t_ms":42,"conn":3,"code":1006,"reason":"connection \"reset\"\n","by":"transport"}"#
        );
    }

    #[test]
    fn reconnect_give_up_and_rtt() {
        let line = notice_json(
            7,
            &Notice::ReconnectScheduled {
                attempt: 2,
                delay: Duration::from_millis(350),
            },
        );
        assert_eq!(
            one_line(line),
            r#"{"event":"reconnect_scheduled","t_ms":7,"attempt":2,"delay_ms":350}"#
        );
        let line = notice_json(
            8,
            &Notice::GaveUp {
                reason: GiveUpReason::HttpStatus(401),
            },
        );
        assert_eq!(
            one_line(line),
            r#"{"event":"gave_up","t_ms":8,"reason":"server answered HTTP 401","status":401}"#
        );
        let line = notice_json(9, &Notice::Rtt(Duration::from_micros(2_045)));
        assert_eq!(
            one_line(line),
            r#"{"event":"rtt","t_ms":9,"ms":2,"us":2045}"#
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            one_line(text_json(1, "a\tb")),
            r#"{"event":"message","t_ms":1,"text":"a\tb"}"#
        );
        assert_eq!(
            one_line(binary_json(2, 32)),
            r#"{"event":"message","t_ms":2,"binary_len":32}"#
        );
    }
}
