//! One JSON object per line on stdout: how the example programs report events.
//!
//! Every line has `"event"` and `"t_ms"` (milliseconds since the program started),
//! followed by the event's own fields, so a test or a person can follow a run with
//! `jq` or a line reader.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

/// A field value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A JSON string (escaped on output).
    Str(&'a str),
    /// A JSON number.
    Num(u64),
    /// A JSON boolean.
    Bool(bool),
    /// JSON `null`.
    Null,
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Str(s)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Value::Null, Value::Str)
    }
}

impl From<u64> for Value<'_> {
    fn from(n: u64) -> Self {
        Value::Num(n)
    }
}

impl From<u16> for Value<'_> {
    fn from(n: u16) -> Self {
        Value::Num(n.into())
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

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
    pub fn emit(&self, event: &str, fields: &[(&str, Value<'_>)]) {
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

/// Formats one event line, ending with a newline.
pub fn line(event: &str, t_ms: u64, fields: &[(&str, Value<'_>)]) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"event\":");
    push_str(&mut out, event);
    let _ = write!(out, ",\"t_ms\":{t_ms}");
    for (key, value) in fields {
        out.push(',');
        push_str(&mut out, key);
        out.push(':');
        match value {
            Value::Str(s) => push_str(&mut out, s),
            Value::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
        }
    }
    out.push_str("}\n");
    out
}

/// Prints a formatted line to stdout and flushes it, so a reader sees it at once.
pub fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) is not worth dying for.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// `line` (from [`line`]) with the numeric field `key` put first: how a program that
/// runs many clients says which one an event is about.
pub fn prefixed(key: &str, n: u64, line: &str) -> String {
    let rest = line.strip_prefix('{').unwrap_or(line);
    format!("{{{}:{n},{rest}", quote(key))
}

/// `s` as a JSON string literal (also a valid JavaScript string literal).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

/// Appends `s` as a JSON string literal.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
                ("name", Value::Str("a\"b\\c\nd\u{1}")),
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
