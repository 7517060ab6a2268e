//! One-line JSON objects for event output.
//!
//! The client example prints one flat JSON object per event. That needs strings escaped
//! correctly and nothing else, so a few lines here replace a serialization crate.

use std::fmt::Write as _;

/// A flat JSON object under construction, written straight into a `String`.
///
/// ```
/// use heartline_examples::json::Obj;
/// let line = Obj::new("message").num("t_ms", 5u64).str("text", "a \"quoted\"\nline").finish();
/// assert_eq!(line, r#"{"event":"message","t_ms":5,"text":"a \"quoted\"\nline"}"#);
/// ```
#[derive(Debug, Clone)]
pub struct Obj {
    buf: String,
}

impl Obj {
    /// An object whose first field is `"event": event`.
    pub fn new(event: &str) -> Self {
        let mut buf = String::with_capacity(64);
        buf.push('{');
        let mut obj = Obj { buf };
        obj.key("event");
        push_str(&mut obj.buf, event);
        obj
    }

    /// Adds a string field.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_str(&mut self.buf, value);
        self
    }

    /// Adds a number field.
    pub fn num(mut self, key: &str, value: impl Into<u64>) -> Self {
        self.key(key);
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{}", value.into());
        self
    }

    /// Adds a duration field in milliseconds, with microsecond precision (`0.213`).
    pub fn ms(mut self, key: &str, value: std::time::Duration) -> Self {
        self.key(key);
        let us = value.as_micros();
        let _ = write!(self.buf, "{}.{:03}", us / 1000, us % 1000);
        self
    }

    /// Adds a boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.buf.push_str(if value { "true" } else { "false" });
        self
    }

    /// The finished object, without a trailing newline.
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }

    fn key(&mut self, key: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_str(&mut self.buf, key);
        self.buf.push(':');
    }
}

/// Appends `s` to `out` as a JSON string literal (RFC 8259 section 7): quotes, backslash
/// and control characters escaped, everything else (including non-ASCII) as is.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c < '\u{20}' => {
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

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        out
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("\n\r\t\u{08}\u{0c}"), r#""\n\r\t\b\f""#);
        assert_eq!(quoted("\u{0}\u{1f}"), r#""\u0000\u001f""#);
    }

    #[test]
    fn keeps_unicode_and_slash_as_is() {
        assert_eq!(quoted("心跳 / ok \u{7f}"), "\"心跳 / ok \u{7f}\"");
    }

    #[test]
    fn builds_fields_in_order() {
        let line = Obj::new("closed")
            .num("t_ms", 12u64)
            .num("code", 1006u16)
            .str("by", "transport")
            .bool("clean", false)
            .ms("rtt", std::time::Duration::from_micros(2_045))
            .finish();
        assert_eq!(
            line,
            r#"{"event":"closed","t_ms":12,"code":1006,"by":"transport","clean":false,"rtt":2.045}"#
        );
    }
}
