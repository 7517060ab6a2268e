//! One JSON object per line on stdout: how the example programs report events.
//!
//! Every line has `"event"` and `"t_ms"` (milliseconds since the program started),
//! followed by the event's own fields, so a test or a person can follow a run with
//! `jq` or a line reader.

use std::io::Write as _;
use std::time::Instant;

/// A field value: serde_json's, so every line is JSON by construction.
pub use serde_json::Value;

/// Writes event lines with `t_ms` measured from when it was created.
#[derive(Debug, Clone, Copy)]
pub struct EventLog {
    start: Instant,
}

impl EventLog {
    /// A log whose `t_ms` counts from now.
    pub fn new() -> Self {
        EventLog {
            start: Instant::now(),
        }
    }

    /// Prints one event line to stdout and flushes it, so a reader sees it at once.
    pub fn emit(&self, event: &str, fields: &[(&str, Value)]) {
        print(&line(event, self.t_ms(), fields));
    }

    /// Milliseconds since the log was created.
    pub fn t_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Formats one event line, ending with a newline: `event` and `t_ms` first, then the
/// fields in order.
pub fn line(event: &str, t_ms: u64, fields: &[(&str, Value)]) -> String {
    let mut map = serde_json::Map::with_capacity(fields.len() + 2);
    map.insert("event".to_owned(), event.into());
    map.insert("t_ms".to_owned(), t_ms.into());
    for (key, value) in fields {
        map.insert((*key).to_owned(), value.clone());
    }
    let mut out = Value::Object(map).to_string();
    out.push('\n');
    out
}

/// Prints a formatted line to stdout and flushes it, so a reader sees it at once.
pub fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) is not worth dying for.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// `line` (from [`line()`]) with the numeric field `key` put first: how a program that
/// runs many clients says which one an event is about.
pub fn prefixed(key: &str, n: u64, line: &str) -> String {
    let rest = line.strip_prefix('{').unwrap_or(line);
    format!("{{{}:{n},{rest}", quote(key))
}

/// `s` as a JSON string literal (also a valid JavaScript string literal).
pub fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_control_characters() {
        let got = line(
            "connected",
            7,
            &[
                ("name", Value::from("a\"b\\c\nd\u{1}")),
                ("code", 4409u16.into()),
            ],
        );
        assert_eq!(
            got,
            "{\"event\":\"connected\",\"t_ms\":7,\"name\":\"a\\\"b\\\\c\\nd\\u0001\",\"code\":4409}\n"
        );
    }

    #[test]
    fn a_prefixed_field_comes_first_and_keeps_the_line_whole() {
        let got = prefixed("client", 3, &line("open", 5, &[("conn", 1u64.into())]));
        assert_eq!(
            got,
            "{\"client\":3,\"event\":\"open\",\"t_ms\":5,\"conn\":1}\n"
        );
    }

    #[test]
    fn keeps_non_ascii_text_as_is() {
        let got = line("x", 0, &[("name", "测试".into()), ("ok", true.into())]);
        assert_eq!(
            got,
            "{\"event\":\"x\",\"t_ms\":0,\"name\":\"测试\",\"ok\":true}\n"
        );
    }
}
