//! Bound values as JSON, read back from their `Debug` text.
//!
//! Python's drivers hand SQLAlchemy the bound values themselves, and the
//! notifier serializes them with `jsonutils`: numbers stay numbers, strings
//! stay strings, `None` becomes `null`, and anything else becomes its text.
//! Rust integrations only see values through `Debug` (diesel's
//! `DebugQuery`, or a value bound through `sql::sqlx::query`), so this
//! module reads `Debug` output back into the same JSON shapes:
//!
//! - `1`, `-2`, `1.5` become numbers (integers beyond 64 bits, `NaN` and
//!   `inf` stay text);
//! - `"text"` and `'c'` become strings (escapes undone);
//! - `true`/`false` become booleans, `None` becomes `null`, `Some(x)` is `x`;
//! - `[a, b]` and `(a, b)` become arrays;
//! - anything else (structs, enum variants, dates, uuids) is kept as its
//!   `Debug` text.
//!
//! Parsing is total: malformed text is kept as text, never an error.

use std::fmt::{Debug, Write as _};

use serde_json::{Number, Value};

/// Renders one bound value the way the notifier shows it (see the module
/// docs). A `Debug` implementation that fails yields the type name.
pub fn param<T: Debug + ?Sized>(value: &T) -> Value {
    let mut text = String::new();
    if write!(text, "{value:?}").is_err() {
        return Value::String(std::any::type_name::<T>().to_owned());
    }
    from_debug(&text)
}

/// The JSON form of one value's `Debug` text.
pub(crate) fn from_debug(text: &str) -> Value {
    interpret(text.trim())
}

/// Renders a list of values: what to record as `params`.
pub fn params<I>(values: I) -> Value
where
    I: IntoIterator,
    I::Item: Debug,
{
    Value::Array(values.into_iter().map(|v| param(&v)).collect())
}

/// A `Debug` struct (`Name { a: x, b: y }`) split into its fields, each
/// still as text. `None` unless `text` is exactly one such struct named
/// `name`.
#[cfg_attr(not(feature = "diesel"), allow(dead_code))]
pub(crate) fn debug_struct_fields<'t>(
    text: &'t str,
    name: &str,
) -> Option<Vec<(&'t str, &'t str)>> {
    let rest = text.trim().strip_prefix(name)?.trim_start();
    let inner = rest.strip_prefix('{')?.strip_suffix('}')?;
    let mut fields = Vec::new();
    for item in split_top_level(inner)? {
        let (key, value) = item.split_once(':')?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        fields.push((key, value.trim()));
    }
    Some(fields)
}

fn interpret(text: &str) -> Value {
    if text.is_empty() {
        return Value::String(String::new());
    }
    match text {
        "None" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Some(s) = string_literal(text) {
        return Value::String(s);
    }
    if let Some(n) = number(text) {
        return Value::Number(n);
    }
    if let Some(inner) = text.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        if let Some(items) = split_top_level(inner) {
            if items.len() == 1 {
                return interpret(items[0]);
            }
        }
    }
    let delimited = text
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .or_else(|| text.strip_prefix('(').and_then(|r| r.strip_suffix(')')));
    if let Some(inner) = delimited {
        if let Some(items) = split_top_level(inner) {
            return Value::Array(items.into_iter().map(interpret).collect());
        }
    }
    Value::String(text.to_owned())
}

/// A JSON number for an integer or finite float literal, nothing else.
fn number(text: &str) -> Option<Number> {
    let first = text.chars().next()?;
    if !(first.is_ascii_digit() || first == '-') {
        return None;
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
    {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(u.into());
    }
    if text.contains(['.', 'e', 'E']) {
        return text.parse::<f64>().ok().and_then(Number::from_f64);
    }
    // An integer wider than 64 bits: a float would change it.
    None
}

/// The value of a Rust string or char literal spanning all of `text`.
fn string_literal(text: &str) -> Option<String> {
    let quote = text.chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let (value, end) = read_quoted(text, quote)?;
    (end == text.len()).then_some(value)
}

/// Reads the quoted literal at the start of `text`; returns its value and
/// the byte length of the literal.
fn read_quoted(text: &str, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((out, i + c.len_utf8()));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, escaped) = chars.next()?;
        match escaped {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            '\\' | '\'' | '"' => out.push(escaped),
            'u' => {
                if chars.next()?.1 != '{' {
                    return None;
                }
                let mut hex = String::new();
                loop {
                    let (_, h) = chars.next()?;
                    if h == '}' {
                        break;
                    }
                    hex.push(h);
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    None
}

/// Splits `text` at commas that are outside brackets and literals; each
/// part trimmed, a trailing comma allowed. `None` when the brackets or
/// quotes do not balance.
fn split_top_level(text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth: Vec<char> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next()?;
        match c {
            '"' => {
                let (_, len) = read_quoted(&text[i..], '"')?;
                i += len;
                continue;
            }
            '\'' => {
                // A char literal, or a lone apostrophe in free text.
                if let Some((_, len)) = char_literal(&text[i..]) {
                    i += len;
                    continue;
                }
            }
            '(' => depth.push(')'),
            '[' => depth.push(']'),
            '{' => depth.push('}'),
            ')' | ']' | '}' => match depth.pop() {
                Some(close) if close == c => {}
                _ => return None,
            },
            ',' if depth.is_empty() => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    if !depth.is_empty() {
        return None;
    }
    // Nothing after the last comma is a trailing comma (`(1,)`), not an
    // empty item.
    let last = text[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    Some(parts)
}

/// A char literal (`'a'`, `'\''`, `'\u{e9}'`) at the start of `text`.
fn char_literal(text: &str) -> Option<(String, usize)> {
    let (value, len) = read_quoted(text, '\'')?;
    (value.chars().count() == 1).then_some((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(param(&1), json!(1));
        assert_eq!(param(&-7i64), json!(-7));
        assert_eq!(param(&u64::MAX), json!(u64::MAX));
        assert_eq!(param(&1.5f64), json!(1.5));
        assert_eq!(param(&1.0f32), json!(1.0));
        assert_eq!(param(&f64::NAN), json!("NaN"));
        assert_eq!(param(&f64::INFINITY), json!("inf"));
        assert_eq!(param(&u128::MAX), json!(u128::MAX.to_string()));
        assert_eq!(param(&true), json!(true));
        assert_eq!(
            param("it's \"quoted\"\n\u{7}é"),
            json!("it's \"quoted\"\n\u{7}é")
        );
        assert_eq!(param(&'x'), json!("x"));
        assert_eq!(param(&'\''), json!("'"));
        assert_eq!(param(&String::new()), json!(""));
    }

    #[test]
    fn options_and_sequences() {
        assert_eq!(param(&None::<i32>), Value::Null);
        assert_eq!(param(&Some("a")), json!("a"));
        assert_eq!(param(&Some(Some(3))), json!(3));
        assert_eq!(param(&vec![1u8, 2, 3]), json!([1, 2, 3]));
        assert_eq!(
            param(&(1, "a,b", [None, Some(2.5)])),
            json!([1, "a,b", [null, 2.5]])
        );
        assert_eq!(param(&Vec::<i32>::new()), json!([]));
        assert_eq!(params([Some(1), None]), json!([1, null]));
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Date {
        y: i32,
        label: &'static str,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Kind {
        Unit,
        Wrapped(i32),
    }

    #[test]
    fn everything_else_is_text() {
        assert_eq!(
            param(&Date {
                y: 2024,
                label: "a}"
            }),
            json!("Date { y: 2024, label: \"a}\" }")
        );
        assert_eq!(param(&Kind::Unit), json!("Unit"));
        assert_eq!(param(&Kind::Wrapped(1)), json!("Wrapped(1)"));
        assert_eq!(
            from_debug("2024-01-02T03:04:05"),
            json!("2024-01-02T03:04:05")
        );
        assert_eq!(from_debug("1-2"), json!("1-2"));
        assert_eq!(from_debug("[1, (2]"), json!("[1, (2]"));
        assert_eq!(from_debug("\"unterminated"), json!("\"unterminated"));
        assert_eq!(from_debug("[it's, 2]"), json!(["it's", 2]));
        assert_eq!(from_debug("[1,, 2]"), json!([1, "", 2]));
    }

    #[test]
    fn struct_fields() {
        let text = format!(
            "{:?}",
            Date {
                y: 1,
                label: "x: y, z"
            }
        );
        assert_eq!(
            debug_struct_fields(&text, "Date"),
            Some(vec![("y", "1"), ("label", "\"x: y, z\"")])
        );
        assert_eq!(debug_struct_fields(&text, "Other"), None);
        assert_eq!(debug_struct_fields("Date { y }", "Date"), None);
    }

    proptest::proptest! {
        #[test]
        fn strings_round_trip(s in ".*") {
            proptest::prop_assert_eq!(param(&s), Value::String(s.clone()));
        }

        #[test]
        fn integers_round_trip(i in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(param(&i), json!(i));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = from_debug(&s);
            let _ = debug_struct_fields(&s, "Query");
        }
    }
}
