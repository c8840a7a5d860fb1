//! Minimal JSON for the kit: a writer into a caller's buffer and a strict,
//! bounded reader for the small `cmd` messages.
//!
//! Hand-written rather than `serde-json-core` because the reader must hand out
//! an `ack`'s `seqs` array lazily (an ack may list any number of seqs; a
//! fixed-capacity `Vec` would either cap it or waste RAM) and must skip the
//! unknown fields of `config` without allocating. Both sides are small enough
//! to test exhaustively and property-test for panics.

use core::fmt;

/// Writes into a fixed buffer. On overflow it stops writing but keeps
/// counting, so the caller learns the exact size it would have needed.
pub(crate) struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> BufWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        BufWriter {
            buf,
            len: 0,
            overflow: false,
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.len.saturating_add(b.len());
        if !self.overflow {
            match self.buf.get_mut(self.len..end) {
                Some(dst) => dst.copy_from_slice(b),
                None => self.overflow = true,
            }
        }
        self.len = end;
    }

    pub(crate) fn raw(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A JSON string literal. Only used with the kit's own constant strings
    /// (codes, units, enumerations), but escapes anyway so it can never emit
    /// invalid JSON.
    pub(crate) fn string(&mut self, s: &str) {
        self.raw("\"");
        for c in s.chars() {
            match c {
                '"' => self.raw("\\\""),
                '\\' => self.raw("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = fmt::Write::write_fmt(self, format_args!("\\u{:04x}", c as u32));
                }
                c => {
                    let mut tmp = [0u8; 4];
                    self.raw(c.encode_utf8(&mut tmp));
                }
            }
        }
        self.raw("\"");
    }

    /// `Ok(len)`, or `Err(needed)` if the buffer was too small.
    pub(crate) fn finish(self) -> Result<usize, usize> {
        if self.overflow {
            Err(self.len)
        } else {
            Ok(self.len)
        }
    }
}

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Never fails: overflow is reported by `finish`, with the full size.
        self.raw(s);
        Ok(())
    }
}

/// Why a JSON text could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not well-formed JSON (at this byte offset).
    #[error("malformed JSON at byte {0}")]
    Syntax(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested too deeply")]
    TooDeep,
    /// Well-formed, but a field has the wrong type or is missing.
    #[error("field `{0}` missing or of the wrong type")]
    Field(&'static str),
}

/// Deepest nesting the reader follows; deeper input is refused, so hostile
/// input cannot exhaust a small device's stack.
pub const MAX_DEPTH: usize = 16;

/// A JSON value borrowed from the input text. Strings and numbers stay raw
/// (still escaped / still text) until asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonValue<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as its text.
    Number(&'a str),
    /// A string, contents between the quotes, escapes not yet resolved.
    String(JsonStr<'a>),
    /// An array, whole text including brackets.
    Array(JsonArray<'a>),
    /// An object, whole text including braces.
    Object(JsonObject<'a>),
}

impl<'a> JsonValue<'a> {
    /// The value as a `u32`, if it is a non-negative integer that fits.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            JsonValue::Number(t) => t.parse::<u32>().ok(),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<JsonStr<'a>> {
        match self {
            JsonValue::String(s) => Some(*s),
            _ => None,
        }
    }
}

/// A JSON string's raw contents (between the quotes, escapes unresolved).
/// Already validated: every escape is well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a>(&'a str);

impl<'a> JsonStr<'a> {
    /// The raw text between the quotes.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The text without allocation when it has no escapes.
    pub fn as_plain(&self) -> Option<&'a str> {
        if self.0.contains('\\') {
            None
        } else {
            Some(self.0)
        }
    }

    /// Resolves escapes into `out`; `None` if `out` is too small. Lone
    /// surrogate escapes become U+FFFD.
    pub fn unescape_into<'o>(&self, out: &'o mut [u8]) -> Option<&'o str> {
        let mut w = BufWriter::new(out);
        for c in self.chars() {
            let mut tmp = [0u8; 4];
            w.raw(c.encode_utf8(&mut tmp));
        }
        let n = w.finish().ok()?;
        out.get(..n).and_then(|b| core::str::from_utf8(b).ok())
    }

    /// The decoded characters.
    pub fn chars(&self) -> impl Iterator<Item = char> + 'a {
        Unescape {
            text: self.0,
            pos: 0,
        }
    }

    /// Whether the decoded text equals `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        self.chars().eq(s.chars())
    }
}

struct Unescape<'a> {
    text: &'a str,
    pos: usize,
}

impl Unescape<'_> {
    fn hex4(&mut self) -> Option<u32> {
        let h = self.text.get(self.pos..self.pos.checked_add(4)?)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        self.pos += 4;
        Some(v)
    }
}

impl Iterator for Unescape<'_> {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        let tail = self.text.get(self.pos..)?;
        let mut it = tail.chars();
        let c = it.next()?;
        self.pos += c.len_utf8();
        if c != '\\' {
            return Some(c);
        }
        let e = self.text.get(self.pos..)?.chars().next()?;
        self.pos += e.len_utf8();
        Some(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'u' => {
                let hi = self.hex4().unwrap_or(0xFFFD);
                if (0xD800..0xDC00).contains(&hi) {
                    let save = self.pos;
                    if self.text.get(self.pos..self.pos + 2) == Some("\\u") {
                        self.pos += 2;
                        if let Some(lo) = self.hex4()
                            && (0xDC00..0xE000).contains(&lo)
                        {
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            return Some(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                    }
                    self.pos = save;
                    '\u{FFFD}'
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            other => other, // '"', '\\', '/'
        })
    }
}

/// An array's text, validated; iterate its elements with [`JsonArray::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonArray<'a>(&'a str);

impl<'a> JsonArray<'a> {
    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = JsonValue<'a>> + 'a {
        let mut p = Parser::new(self.0);
        p.pos = 1; // past '['
        let mut first = true;
        core::iter::from_fn(move || {
            p.ws();
            if p.peek() == Some(b']') {
                return None;
            }
            if !first {
                p.expect(b',').ok()?;
            }
            first = false;
            p.value(1).ok()
        })
    }
}

/// An object's text, validated; look fields up with [`JsonObject::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonObject<'a>(&'a str);

impl<'a> JsonObject<'a> {
    /// The raw text including braces.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The members, in order, as (key, value).
    pub fn iter(&self) -> impl Iterator<Item = (JsonStr<'a>, JsonValue<'a>)> + 'a {
        let mut p = Parser::new(self.0);
        p.pos = 1; // past '{'
        let mut first = true;
        core::iter::from_fn(move || {
            p.ws();
            if p.peek() == Some(b'}') {
                return None;
            }
            if !first {
                p.expect(b',').ok()?;
            }
            first = false;
            p.ws();
            let k = p.string().ok()?;
            p.ws();
            p.expect(b':').ok()?;
            let v = p.value(1).ok()?;
            Some((k, v))
        })
    }

    /// The first member named `key` (an exact match after unescaping).
    pub fn get(&self, key: &str) -> Option<JsonValue<'a>> {
        self.iter().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }
}

/// Parses a complete JSON text whose top level must be an object.
pub fn parse_object(text: &str) -> Result<JsonObject<'_>, JsonError> {
    let mut p = Parser::new(text);
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.b.len() {
        return Err(JsonError::Syntax(p.pos));
    }
    match v {
        JsonValue::Object(o) => Ok(o),
        _ => Err(JsonError::Syntax(0)),
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s,
            b: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn err<T>(&self) -> Result<T, JsonError> {
        Err(JsonError::Syntax(self.pos))
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err()
        }
    }

    fn slice(&self, from: usize) -> Result<&'a str, JsonError> {
        // Every boundary we cut at is an ASCII structural byte, so this
        // cannot split a UTF-8 sequence; `get` makes sure anyway.
        self.s.get(from..self.pos).ok_or(JsonError::Syntax(from))
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.ws();
        match self.peek() {
            Some(b'{') => {
                let start = self.pos;
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        self.string()?;
                        self.expect(b':')?;
                        self.value(depth + 1)?;
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.err(),
                        }
                    }
                }
                Ok(JsonValue::Object(JsonObject(self.slice(start)?)))
            }
            Some(b'[') => {
                let start = self.pos;
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(depth + 1)?;
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.err(),
                        }
                    }
                }
                Ok(JsonValue::Array(JsonArray(self.slice(start)?)))
            }
            Some(b'"') => Ok(JsonValue::String(self.string()?)),
            Some(b't') => self.literal("true", JsonValue::Bool(true)),
            Some(b'f') => self.literal("false", JsonValue::Bool(false)),
            Some(b'n') => self.literal("null", JsonValue::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err(),
        }
    }

    fn literal(&mut self, word: &str, v: JsonValue<'a>) -> Result<JsonValue<'a>, JsonError> {
        if self
            .b
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(word.as_bytes()))
        {
            self.pos += word.len();
            Ok(v)
        } else {
            self.err()
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<JsonValue<'a>, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err(),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err();
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err();
            }
        }
        Ok(JsonValue::Number(self.slice(start)?))
    }

    fn string(&mut self) -> Result<JsonStr<'a>, JsonError> {
        if self.peek() != Some(b'"') {
            return self.err();
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return self.err(),
                Some(b'"') => {
                    let inner = self.slice(start)?;
                    self.pos += 1;
                    return Ok(JsonStr(inner));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                if !matches!(self.peek(), Some(c) if c.is_ascii_hexdigit()) {
                                    return self.err();
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return self.err(),
                    }
                }
                Some(c) if c < 0x20 => return self.err(),
                Some(_) => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_objects_and_arrays() {
        let o = parse_object(r#" {"a": [1, 2 ,3], "b": {"c": "d\"e"}, "n": null, "t": true} "#)
            .unwrap();
        let JsonValue::Array(a) = o.get("a").unwrap() else {
            panic!()
        };
        let v: heapless::Vec<u32, 4> = a.iter().filter_map(|v| v.as_u32()).collect();
        assert_eq!(v.as_slice(), &[1, 2, 3]);
        let JsonValue::Object(b) = o.get("b").unwrap() else {
            panic!()
        };
        assert!(b.get("c").unwrap().as_str().unwrap().eq_str("d\"e"));
        assert_eq!(o.get("n"), Some(JsonValue::Null));
        assert_eq!(o.get("t"), Some(JsonValue::Bool(true)));
        assert_eq!(o.get("zz"), None);
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1]",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{} x",
            "{\"a\":tru}",
            "{\"a\":-}",
            "{\"a\":\"\u{1}\"}",
        ] {
            assert!(parse_object(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_deep_nesting_without_recursing_forever() {
        let mut s = [0u8; 2 * 64 + 8];
        let mut w = BufWriter::new(&mut s);
        w.raw("{\"a\":");
        for _ in 0..40 {
            w.raw("[");
        }
        for _ in 0..40 {
            w.raw("]");
        }
        w.raw("}");
        let n = w.finish().unwrap();
        let text = core::str::from_utf8(&s[..n]).unwrap();
        assert_eq!(parse_object(text), Err(JsonError::TooDeep));
    }

    #[test]
    fn unescapes_unicode_and_surrogates() {
        let o = parse_object(r#"{"s":"caf\u00e9 \ud83d\ude00 \ud800x"}"#).unwrap();
        let s = o.get("s").unwrap().as_str().unwrap();
        let mut out = [0u8; 32];
        assert_eq!(s.unescape_into(&mut out), Some("café 😀 \u{FFFD}x"));
        let mut small = [0u8; 3];
        assert_eq!(s.unescape_into(&mut small), None);
    }

    #[test]
    fn writer_reports_overflow() {
        let mut b = [0u8; 4];
        let mut w = BufWriter::new(&mut b);
        w.raw("abcde");
        w.raw("fg");
        assert_eq!(w.finish(), Err(7));
        let mut b = [0u8; 16];
        let mut w = BufWriter::new(&mut b);
        w.string("a\"\\\n");
        let n = w.finish().unwrap();
        assert_eq!(&b[..n], br#""a\"\\\u000a""#);
    }
}
