//! Just enough JSON to recognise a heartbeat like `{"ModeCode":"heart_beat", ...}`
//! without a JSON dependency and without allocating.
//!
//! [`top_level_str_field_is`] walks the text once, comparing string contents with escapes
//! decoded on the fly; nested values are skipped with a depth counter, never recursion,
//! so hostile nesting cannot overflow the stack.

/// Whether `text` is a JSON object whose top-level member `key` is the string `value`.
/// Like `JSON.parse`, the last of duplicate members wins. Text that is not a JSON object
/// gives `false`.
pub(crate) fn top_level_str_field_is(text: &str, key: &str, value: &str) -> bool {
    scan(text.as_bytes(), key, value).unwrap_or(false)
}

fn scan(b: &[u8], key: &str, value: &str) -> Option<bool> {
    let mut i = ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = ws(b, i + 1);
    let mut found = false;
    if *b.get(i)? != b'}' {
        loop {
            let (is_key, end) = str_eq(b, i, key)?;
            i = ws(b, end);
            if *b.get(i)? != b':' {
                return None;
            }
            i = ws(b, i + 1);
            if is_key {
                if *b.get(i)? == b'"' {
                    let (eq, end) = str_eq(b, i, value)?;
                    found = eq;
                    i = end;
                } else {
                    found = false;
                    i = skip_value(b, i)?;
                }
            } else {
                i = skip_value(b, i)?;
            }
            i = ws(b, i);
            match *b.get(i)? {
                b',' => i = ws(b, i + 1),
                b'}' => break,
                _ => return None,
            }
        }
    }
    (ws(b, i + 1) == b.len()).then_some(found)
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Compares the JSON string starting at `b[i] == '"'` with `want`; returns whether they
/// are equal and the index after the closing quote.
fn str_eq(b: &[u8], i: usize, want: &str) -> Option<(bool, usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let mut want = want.chars();
    let mut eq = true;
    let mut i = i + 1;
    loop {
        let c = *b.get(i)?;
        let ch: char = match c {
            b'"' => return Some((eq && want.next().is_none(), i + 1)),
            b'\\' => {
                let e = *b.get(i + 1)?;
                i += 2;
                match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = hex4(b, i)?;
                        i += 4;
                        if (0xD800..0xDC00).contains(&hi)
                            && b.get(i) == Some(&b'\\')
                            && b.get(i + 1) == Some(&b'u')
                        {
                            let lo = hex4(b, i + 2)?;
                            if (0xDC00..0xE000).contains(&lo) {
                                i += 6;
                                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                char::from_u32(cp).unwrap_or('\u{FFFD}')
                            } else {
                                '\u{FFFD}'
                            }
                        } else {
                            char::from_u32(hi).unwrap_or('\u{FFFD}')
                        }
                    }
                    _ => return None,
                }
            }
            0..=0x1F => return None,
            _ => {
                // `b` came from a `str`, so a char starts here.
                let len = utf8_len(c);
                let bytes = b.get(i..i + len)?;
                i += len;
                let s = std::str::from_utf8(bytes).ok()?;
                s.chars().next()?
            }
        };
        if eq {
            eq = want.next() == Some(ch);
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u32;
    for d in digits {
        v = v << 4 | (*d as char).to_digit(16)?;
    }
    Some(v)
}

/// Skips the value starting at `b[i]`; returns the index after it.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *b.get(i)? {
            b'"' => i = skip_str(b, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b'}' | b']' => return None,
            b',' | b':' if depth > 0 => i += 1,
            b' ' | b'\t' | b'\n' | b'\r' => i = ws(b, i),
            _ => {
                // A number or literal: runs to the next delimiter.
                let start = i;
                while !matches!(
                    b.get(i),
                    None | Some(b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r' | b'"')
                ) {
                    i += 1;
                }
                if i == start {
                    return None;
                }
            }
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

fn skip_str(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::top_level_str_field_is as is;

    #[test]
    fn recognises_seed_002_heartbeat() {
        let hb = r#"{"ModeCode":"heart_beat","msg":"2021-03-09T12:00:00.000Z"}"#;
        assert!(is(hb, "ModeCode", "heart_beat"));
        assert!(is(
            r#" { "msg" : {"a":[1,2,{"ModeCode":"x"}]}, "ModeCode" : "heart_beat" } "#,
            "ModeCode",
            "heart_beat"
        ));
        assert!(is(
            r#"{"Mode\u0043ode":"heart\u005fbeat"}"#,
            "ModeCode",
            "heart_beat"
        ));
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            r#"{"ModeCode":"message","msg":"hello"}"#,
            r#"{"msg":{"ModeCode":"heart_beat"}}"#,
            r#"{"ModeCode":"heart_beat2"}"#,
            r#"{"ModeCode":"heart_beat","ModeCode":"message"}"#,
            r#"{"ModeCode":"heart_beat""#,
            r#"{"ModeCode":"heart_beat"} x"#,
            r#"{"ModeCode":1}"#,
            r#"["ModeCode","heart_beat"]"#,
            "ping",
            "",
            "{",
            "{\"a\":[[[[[[[[",
        ] {
            assert!(!is(text, "ModeCode", "heart_beat"), "{text}");
        }
    }

    /// JSON text for `s`, escaping what must be and, by `style`, some of what may be.
    fn encode(s: &str, style: u8) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || style % 3 == 1 && !c.is_ascii_alphanumeric() => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                '/' if style % 3 == 2 => out.push_str("\\/"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".*") {
            let _ = is(&text, "ModeCode", "heart_beat");
        }

        #[test]
        fn finds_the_last_top_level_member(
            members in proptest::collection::vec(("[a-cM\"\\\\é😀/]{0,3}", "[a-c\"\\\\\n é😀/]{0,3}", 0u8..6), 0..6),
            key in "[a-cM]{0,2}",
            value in "[a-c]{0,2}",
        ) {
            let mut text = String::from(" {");
            let mut expected = false;
            for (i, (k, v, style)) in members.iter().enumerate() {
                if i > 0 {
                    text.push_str(if style % 2 == 0 { "," } else { " ,\n" });
                }
                text.push_str(&encode(k, *style));
                text.push(':');
                if style % 4 == 3 {
                    // A nested value holding the same key does not count.
                    text.push_str(&format!("{{{}:{}}}", encode(&key, 0), encode(&value, 0)));
                    if *k == key {
                        expected = false;
                    }
                } else {
                    text.push_str(&encode(v, *style));
                    if *k == key {
                        expected = *v == value;
                    }
                }
            }
            text.push_str("} ");
            proptest::prop_assert_eq!(is(&text, &key, &value), expected, "{}", text);
        }
    }
}
