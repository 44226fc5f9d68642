//! JSON text exactly as Python's `json.dumps(obj)` writes it with default
//! arguments: `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`
//! (`ensure_ascii`), and floats in `repr` form (`1e-05`, `1e+16`, `2.0`).
//!
//! Used where upstream stores JSON text that other tools may compare byte
//! for byte (the `data` column of the SQL drivers) or sign (the trace
//! headers).

use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};
use serde_json::Value;

/// `json.dumps(value)`.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = Serializer::with_formatter(&mut out, PythonFormatter);
    // Writing into a Vec cannot fail, and a `Value` always serializes.
    if value.serialize(&mut ser).is_err() {
        return String::from("null");
    }
    // Every byte written is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// `json.dumps` of a string: the string as a JSON string literal.
pub(crate) fn quote(text: &str) -> String {
    to_string(&Value::String(text.to_owned()))
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
#[cfg_attr(not(any(feature = "otlp", feature = "sqlx")), allow(dead_code))]
pub(crate) fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[derive(Debug, Clone, Copy)]
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_ascii_fragment(writer, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        write_python_escape(writer, escape)
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Python escapes everything outside `' '..='~'`; serde_json has already
/// escaped the control characters, quotes and backslashes.
fn write_ascii_fragment<W: ?Sized + io::Write>(writer: &mut W, fragment: &str) -> io::Result<()> {
    let bytes = fragment.as_bytes();
    // Fast path: most report text is plain ASCII.
    if bytes.iter().all(|&b| b < 0x7f) {
        return writer.write_all(bytes);
    }
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        if (c as u32) < 0x7f {
            continue;
        }
        writer.write_all(&bytes[start..i])?;
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            write!(writer, "\\u{unit:04x}")?;
        }
        start = i + c.len_utf8();
    }
    writer.write_all(&bytes[start..])
}

fn write_python_escape<W: ?Sized + io::Write>(
    writer: &mut W,
    escape: CharEscape,
) -> io::Result<()> {
    let text: &[u8] = match escape {
        CharEscape::Quote => b"\\\"",
        CharEscape::ReverseSolidus => b"\\\\",
        CharEscape::Solidus => b"\\/",
        CharEscape::Backspace => b"\\b",
        CharEscape::FormFeed => b"\\f",
        CharEscape::LineFeed => b"\\n",
        CharEscape::CarriageReturn => b"\\r",
        CharEscape::Tab => b"\\t",
        CharEscape::AsciiControl(byte) => return write!(writer, "\\u{byte:04x}"),
    };
    writer.write_all(text)
}

/// `json.dumps(value, indent=2, separators=(",", ": "))`, as Python's
/// `osprofiler trace show --json` prints a report; streams into `writer`.
pub(crate) fn to_writer_pretty<W, T>(writer: W, value: &T) -> io::Result<()>
where
    W: io::Write,
    T: ?Sized + Serialize,
{
    let formatter = PrettyPythonFormatter {
        level: 0,
        has_value: false,
    };
    let mut ser = Serializer::with_formatter(writer, formatter);
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// [`to_writer_pretty`] of a value nested `level` deep in a document being
/// written by hand (its closing bracket is indented for that level).
pub(crate) fn to_writer_pretty_at<W, T>(writer: &mut W, value: &T, level: usize) -> io::Result<()>
where
    W: ?Sized + io::Write,
    T: ?Sized + Serialize,
{
    let formatter = PrettyPythonFormatter {
        level,
        has_value: false,
    };
    let mut ser = Serializer::with_formatter(writer, formatter);
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// A line break and the indentation of `level` (`indent=2`).
pub(crate) fn write_newline<W: ?Sized + io::Write>(writer: &mut W, level: usize) -> io::Result<()> {
    const SPACES: &[u8; 65] = b"\n                                                                ";
    let mut left = level * 2;
    let first = left.min(SPACES.len() - 1);
    writer.write_all(&SPACES[..first + 1])?;
    left -= first;
    while left > 0 {
        let n = left.min(SPACES.len() - 1);
        writer.write_all(&SPACES[1..n + 1])?;
        left -= n;
    }
    Ok(())
}

/// Bytes Python's `json.dumps` writes unchanged inside a string.
#[inline]
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// How many bytes at the start of `bytes` are plain (see [`is_plain`]).
/// Eight at a time: strings are most of a report's output, and nearly
/// all of their bytes are plain.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES << 7;
    // Whether some byte of `word` is below `n` (exact for n <= 128).
    let has_below =
        |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS != 0;
    let has = |word: u64, b: u8| has_below(word ^ (ONES * u64::from(b)), 1);
    let mut run = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_ne_bytes(chunk);
        if word & HIGH_BITS != 0
            || has_below(word, 0x20)
            || has(word, 0x7f)
            || has(word, b'"')
            || has(word, b'\\')
        {
            break;
        }
        run += 8;
    }
    run + bytes[run..].iter().take_while(|&&b| is_plain(b)).count()
}

/// One character as Python escapes it inside a JSON string.
fn write_python_char<W: ?Sized + io::Write>(writer: &mut W, c: char) -> io::Result<()> {
    match c {
        '"' => writer.write_all(b"\\\""),
        '\\' => writer.write_all(b"\\\\"),
        '\n' => writer.write_all(b"\\n"),
        '\r' => writer.write_all(b"\\r"),
        '\t' => writer.write_all(b"\\t"),
        '\u{8}' => writer.write_all(b"\\b"),
        '\u{c}' => writer.write_all(b"\\f"),
        c if (' '..='~').contains(&c) => writer.write_all(&[c as u8]),
        c => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write_unit(writer, *unit)?;
            }
            Ok(())
        }
    }
}

/// `\uXXXX` in lowercase hex.
fn write_unit<W: ?Sized + io::Write>(writer: &mut W, unit: u16) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |shift: u16| HEX[usize::from((unit >> shift) & 0xf)];
    writer.write_all(&[b'\\', b'u', digit(12), digit(8), digit(4), digit(0)])
}

/// `json.dumps(text)` of a Rust string.
pub(crate) fn write_python_str<W: ?Sized + io::Write>(
    writer: &mut W,
    text: &str,
) -> io::Result<()> {
    writer.write_all(b"\"")?;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = plain_run(&bytes[i..]);
        writer.write_all(&bytes[i..i + run])?;
        i += run;
        // Runs end before an ASCII byte or a UTF-8 lead byte: a boundary.
        if let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) {
            write_python_char(writer, c)?;
            i += c.len_utf8();
        } else {
            break;
        }
    }
    writer.write_all(b"\"")
}

/// Writes JSON `text` as `json.dumps(json.loads(text), indent=2,
/// separators=(",", ": "))` would, for a value nested `level` deep.
/// Meant for text serde_json has accepted (so nesting is bounded and
/// surrogates paired); on anything else it stops early, never panics and
/// never loops. Numbers are Python's: integers keep all their digits
/// (`-0` is `0`), floats are parsed and written as `repr`.
pub(crate) fn transcode_pretty<W: ?Sized + io::Write>(
    writer: &mut W,
    text: &str,
    level: usize,
) -> io::Result<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    // Open containers: (is an object, level of its members).
    let mut stack: Vec<(bool, usize)> = Vec::new();
    let mut level = level;
    loop {
        // A value at `i`.
        skip_ws(&mut i);
        let Some(&b) = bytes.get(i) else {
            return Ok(());
        };
        match b {
            b'{' | b'[' => {
                i += 1;
                skip_ws(&mut i);
                let close = if b == b'{' { b'}' } else { b']' };
                if bytes.get(i) == Some(&close) {
                    i += 1;
                    writer.write_all(if b == b'{' { b"{}" } else { b"[]" })?;
                } else {
                    writer.write_all(&[b])?;
                    level += 1;
                    stack.push((b == b'{', level));
                    write_newline(writer, level)?;
                    if b == b'{' && !transcode_key(writer, text, &mut i)? {
                        return Ok(());
                    }
                    continue;
                }
            }
            b'"' => transcode_string(writer, text, &mut i)?,
            b't' | b'n' => {
                writer.write_all(bytes.get(i..i + 4).unwrap_or_default())?;
                i += 4;
            }
            b'f' => {
                writer.write_all(bytes.get(i..i + 5).unwrap_or_default())?;
                i += 5;
            }
            _ => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
                if len == 0 {
                    return Ok(());
                }
                let number = &text[i..i + len];
                i += len;
                if number.contains(['.', 'e', 'E']) {
                    let value = number.parse::<f64>().unwrap_or(f64::NAN);
                    writer.write_all(float_repr(value).as_bytes())?;
                } else if number == "-0" {
                    writer.write_all(b"0")?;
                } else {
                    writer.write_all(number.as_bytes())?;
                }
            }
        }
        // After a value: separators and closing brackets.
        loop {
            let Some(&(is_object, member_level)) = stack.last() else {
                return Ok(());
            };
            skip_ws(&mut i);
            match bytes.get(i) {
                Some(b',') => {
                    i += 1;
                    writer.write_all(b",")?;
                    write_newline(writer, member_level)?;
                    if is_object && !transcode_key(writer, text, &mut i)? {
                        return Ok(());
                    }
                    break;
                }
                Some(b'}') | Some(b']') => {
                    i += 1;
                    stack.pop();
                    level = member_level - 1;
                    write_newline(writer, level)?;
                    writer.write_all(if is_object { b"}" } else { b"]" })?;
                }
                _ => return Ok(()),
            }
        }
    }
}

/// An object key and its `: `; false if the text has no key here.
fn transcode_key<W: ?Sized + io::Write>(
    writer: &mut W,
    text: &str,
    i: &mut usize,
) -> io::Result<bool> {
    let bytes = text.as_bytes();
    while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
    if bytes.get(*i) != Some(&b'"') {
        return Ok(false);
    }
    transcode_string(writer, text, i)?;
    while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\n' | b'\r' | b':') {
        *i += 1;
    }
    writer.write_all(b": ")?;
    Ok(true)
}

/// The JSON string at `*i` (on its opening quote), re-escaped as Python.
fn transcode_string<W: ?Sized + io::Write>(
    writer: &mut W,
    text: &str,
    i: &mut usize,
) -> io::Result<()> {
    let bytes = text.as_bytes();
    let mut pos = *i + 1;
    writer.write_all(b"\"")?;
    while pos < bytes.len() {
        let run = plain_run(&bytes[pos..]);
        writer.write_all(&bytes[pos..pos + run])?;
        pos += run;
        match bytes.get(pos) {
            None => break,
            Some(b'"') => {
                pos += 1;
                break;
            }
            Some(b'\\') => {
                let escape = bytes.get(pos + 1).copied().unwrap_or(b'\\');
                pos += 2;
                let c = match escape {
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'u' => {
                        let unit = hex4(text, pos).unwrap_or(0xfffd);
                        pos += 4;
                        if (0xD800..0xDC00).contains(&unit)
                            && bytes.get(pos..pos + 2) == Some(b"\\u")
                        {
                            if let Some(low @ 0xDC00..=0xDFFF) = hex4(text, pos + 2) {
                                pos += 6;
                                // A pair: Python writes both units again.
                                write_unit(writer, unit)?;
                                write_unit(writer, low)?;
                                continue;
                            }
                        }
                        match char::from_u32(u32::from(unit)) {
                            Some(c) => c,
                            // A lone surrogate: Python keeps it as is.
                            None => {
                                write_unit(writer, unit)?;
                                continue;
                            }
                        }
                    }
                    other => char::from(other),
                };
                write_python_char(writer, c)?;
            }
            Some(_) => match text.get(pos..).and_then(|rest| rest.chars().next()) {
                Some(c) => {
                    write_python_char(writer, c)?;
                    pos += c.len_utf8();
                }
                None => break,
            },
        }
    }
    *i = pos.min(bytes.len());
    writer.write_all(b"\"")
}

fn hex4(text: &str, at: usize) -> Option<u16> {
    let digits = text.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Python's layout with `indent=2`: one member per line, `,` at line ends,
/// `{}`/`[]` for empty containers; strings and floats as [`PythonFormatter`].
#[derive(Debug)]
struct PrettyPythonFormatter {
    level: usize,
    has_value: bool,
}

impl PrettyPythonFormatter {
    /// Line break (after a `,` unless first) and the current indentation.
    fn newline<W: ?Sized + io::Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        let mut left = self.level * 2;
        while left > 0 {
            let n = left.min(SPACES.len());
            writer.write_all(&SPACES[..n])?;
            left -= n;
        }
        Ok(())
    }

    fn open<W: ?Sized + io::Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + io::Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level = self.level.saturating_sub(1);
        if self.has_value {
            // The closing bracket goes on its own line at the outer level.
            self.newline(writer, true)?;
        }
        // A closed container is a value of its parent.
        self.has_value = true;
        writer.write_all(bracket)
    }
}

impl Formatter for PrettyPythonFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.newline(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.newline(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_ascii_fragment(writer, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        write_python_escape(writer, escape)
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, in
/// positional form when the decimal exponent is in `-4..16`, else
/// scientific with a signed exponent of at least two digits.
fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{value:e}");
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exponent + 1; // digits are 0.d1d2... * 10^point
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if !(-3..=16).contains(&point) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.unsigned_abs()));
    } else if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_end_where_a_byte_needs_escaping() {
        // Every byte value at every place of a word and around it.
        for b in 0..=u8::MAX {
            for at in 0..20 {
                let mut bytes = *b"abcdefghijklmnopqrstuvwxyz";
                bytes[at] = b;
                let expected = bytes.iter().take_while(|&&b| is_plain(b)).count();
                assert_eq!(plain_run(&bytes), expected, "byte {b:#x} at {at}");
            }
        }
        assert_eq!(plain_run(b""), 0);
        assert_eq!(plain_run(b"~~~~~~~~~"), 9);
    }
    use serde_json::json;

    #[test]
    fn separators_and_ascii_escapes_match_python() {
        let v = json!({"info": {"host": "x", "db": {"statement": "SELECT é 😀\u{7f}\n\"\\"}}, "l": [1, -2, null, true]});
        assert_eq!(
            to_string(&v),
            r#"{"info": {"host": "x", "db": {"statement": "SELECT \u00e9 \ud83d\ude00\u007f\n\"\\"}}, "l": [1, -2, null, true]}"#
        );
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        assert_eq!(to_string(&json!({})), "{}");
        assert_eq!(to_string(&json!("\u{1}")), r#""\u0001""#);
    }

    #[test]
    fn pretty_layout_matches_python_indent_2() {
        let v = json!({"a": [1, {"b": "\u{e9}", "c": 0.5}], "e": {}, "f": [], "g": null});
        let mut out = Vec::new();
        to_writer_pretty(&mut out, &v).unwrap();
        // json.dumps(v, indent=2, separators=(",", ": "))
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"\\u00e9\",\n      \"c\": 0.5\n    }\n  ],\n  \"e\": {},\n  \"f\": [],\n  \"g\": null\n}"
        );
    }

    #[test]
    fn floats_like_python_repr() {
        for (v, want) in [
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1.234567, "1.234567"),
            (12345.678, "12345.678"),
        ] {
            assert_eq!(float_repr(v), want, "{v}");
        }
    }
}
