//! How the examples show a client's notices: one JSON object per line for programs
//! (the `client` example), one readable sentence for people (the `demo`).

use heartline_core::{ConnectFailure, DropCause, GiveUpReason, Notice};

use crate::json::Obj;

/// The JSON line for `notice`, `t_ms` milliseconds after the program started.
pub fn notice_json(t_ms: u64, notice: &Notice) -> String {
    match notice {
        Notice::Connecting { conn, attempt } => Obj::new("connecting")
            .num("t_ms", t_ms)
            .num("attempt", *attempt)
            .num("conn", conn.0)
            .finish(),
        Notice::Open { conn } => Obj::new("open")
            .num("t_ms", t_ms)
            .num("conn", conn.0)
            .finish(),
        Notice::Rtt(rtt) => Obj::new("rtt").num("t_ms", t_ms).ms("ms", *rtt).finish(),
        Notice::HeartbeatMissed { conn } => Obj::new("heartbeat_missed")
            .num("t_ms", t_ms)
            .num("conn", conn.0)
            .finish(),
        Notice::ConnectFailed { conn, error } => {
            let obj = Obj::new("connect_failed")
                .num("t_ms", t_ms)
                .num("conn", conn.0)
                .str("error", &error.to_string());
            match error {
                ConnectFailure::Http { status, .. } => obj.num("status", *status),
                _ => obj,
            }
            .finish()
        }
        Notice::Closed {
            conn,
            code,
            reason,
            by,
        } => Obj::new("closed")
            .num("t_ms", t_ms)
            .num("conn", conn.0)
            .num("code", *code)
            .str("reason", reason)
            .str("by", by.as_str())
            .finish(),
        Notice::ReconnectScheduled { attempt, delay } => Obj::new("reconnect_scheduled")
            .num("t_ms", t_ms)
            .num("attempt", *attempt)
            .num("delay_ms", millis(*delay))
            .finish(),
        Notice::GaveUp { reason } => {
            let obj = Obj::new("gave_up")
                .num("t_ms", t_ms)
                .str("reason", &reason.to_string());
            match reason {
                GiveUpReason::HttpStatus(s) => obj.num("status", *s),
                GiveUpReason::CloseCode { code, .. } => obj.num("code", *code),
                GiveUpReason::AttemptsExhausted { attempts } => obj.num("attempts", *attempts),
            }
            .finish()
        }
        Notice::Dropped {
            messages,
            bytes,
            cause,
        } => Obj::new("dropped")
            .num("t_ms", t_ms)
            .num("messages", *messages as u64)
            .num("bytes", *bytes as u64)
            .str("cause", cause_str(*cause))
            .finish(),
    }
}

/// The JSON line for an inbound text message.
pub fn text_json(t_ms: u64, text: &str) -> String {
    Obj::new("message")
        .num("t_ms", t_ms)
        .str("text", text)
        .finish()
}

/// The JSON line for an inbound binary message (its length: bytes are not printable).
pub fn binary_json(t_ms: u64, len: usize) -> String {
    Obj::new("message")
        .num("t_ms", t_ms)
        .num("binary_len", len as u64)
        .finish()
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
        Notice::Dropped {
            messages,
            bytes,
            cause,
        } => format!(
            "dropped {messages} queued messages ({bytes} bytes): {}",
            cause_str(*cause)
        ),
    }
}

fn cause_str(cause: DropCause) -> &'static str {
    match cause {
        DropCause::Overflow => "overflow",
        DropCause::Closed => "closed",
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartline_core::{ConnId, Initiator};
    use std::time::Duration;

    #[test]
    fn closed_carries_code_reason_and_initiator() {
        let line = notice_json(
            42,
            &Notice::Closed {
                conn: ConnId(3),
                code: 1006,
                reason: "connection \"reset\"".into(),
                by: Initiator::Transport,
            },
        );
        assert_eq!(
            line,
            r#"{"event":"closed","t_ms":42,"conn":3,"code":1006,"reason":"connection \"reset\"","by":"transport"}"#
        );
    }

    #[test]
    fn reconnect_and_give_up() {
        let line = notice_json(
            7,
            &Notice::ReconnectScheduled {
                attempt: 2,
                delay: Duration::from_millis(350),
            },
        );
        assert_eq!(
            line,
            r#"{"event":"reconnect_scheduled","t_ms":7,"attempt":2,"delay_ms":350}"#
        );
        let line = notice_json(
            8,
            &Notice::GaveUp {
                reason: GiveUpReason::HttpStatus(401),
            },
        );
        assert_eq!(
            line,
            r#"{"event":"gave_up","t_ms":8,"reason":"server answered HTTP 401","status":401}"#
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            text_json(1, "a\tb"),
            r#"{"event":"message","t_ms":1,"text":"a\tb"}"#
        );
        assert_eq!(
            binary_json(2, 32),
            r#"{"event":"message","t_ms":2,"binary_len":32}"#
        );
    }
}
