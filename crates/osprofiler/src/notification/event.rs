//! What the collector hands to drivers.
//!
//! Events recorded by `start`/`stop` reach the driver as they were
//! recorded: integer ids, a time in microseconds, the caller's info. Text
//! is made only when a driver asks for it, straight into the driver's
//! buffer, so the collector thread formats nothing and a driver pays only
//! for the form it stores.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde_json::{Map, Value};

use super::{format_timestamp, Notification};
use crate::local::{ContextIds, Info, Phase, RawEvent};
use crate::notifier::collector::host;
use crate::profiler::id::{fill_uuid, LocalId};
use crate::profiler::Id;

/// One notification on its way to a driver: either recorded by
/// `start`/`stop` (and formatted on demand) or handed over ready-made
/// through [`notifier::notify`](crate::notifier::notify).
///
/// A view: it borrows what the collector holds, so handing a batch to a
/// driver copies no record and formats nothing. Whatever its origin, it
/// reads as the [`Notification`] that
/// [`to_notification`](Event::to_notification) returns: same name, ids,
/// timestamp and info (with `host`).
#[derive(Clone, Copy)]
pub struct Event<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// `phase` is the record's own, or `Stop` for the stop a start record
    /// carries (which has no info).
    Recorded {
        raw: &'a RawEvent,
        /// The ids the record shares with its context.
        context: &'a ContextIds,
        phase: Phase,
        unix_micros: i64,
    },
    Ready(&'a Notification),
}

impl<'a> Event<'a> {
    pub(crate) fn recorded(
        raw: &'a RawEvent,
        context: &'a ContextIds,
        phase: Phase,
        unix_micros: i64,
    ) -> Event<'a> {
        Event(Repr::Recorded {
            raw,
            context,
            phase,
            unix_micros,
        })
    }

    /// `<point name>-start` or `<point name>-stop`.
    pub fn name(&self) -> Cow<'a, str> {
        match self.0 {
            Repr::Recorded { raw, phase, .. } => {
                let mut name = String::with_capacity(raw.name.as_str().len() + 6);
                name.push_str(raw.name.as_str());
                name.push_str(suffix(phase));
                Cow::Owned(name)
            }
            Repr::Ready(n) => Cow::Borrowed(&n.name),
        }
    }

    /// The id shared by every element of the trace.
    pub fn base_id(&self) -> Text<'a> {
        match self.0 {
            Repr::Recorded { context, .. } => Text::id(&context.base_id),
            Repr::Ready(n) => Text::borrowed(&n.base_id),
        }
    }

    /// The id of this element.
    pub fn trace_id(&self) -> Text<'a> {
        match self.0 {
            Repr::Recorded { raw, .. } => Text::uuid(raw.trace_id),
            Repr::Ready(n) => Text::borrowed(&n.trace_id),
        }
    }

    /// The id of the enclosing element.
    pub fn parent_id(&self) -> Text<'a> {
        match self.0 {
            Repr::Recorded { raw, context, .. } => match raw.parent() {
                Some(parent) => Text::uuid(parent),
                None => Text::id(&context.parent_id),
            },
            Repr::Ready(n) => Text::borrowed(&n.parent_id),
        }
    }

    /// UTC time as `%Y-%m-%dT%H:%M:%S.%f`.
    pub fn timestamp(&self) -> Text<'a> {
        match self.0 {
            Repr::Recorded { unix_micros, .. } => Text::timestamp(unix_micros),
            Repr::Ready(n) => Text::borrowed(&n.timestamp),
        }
    }

    /// The caller's info of a recorded event (before `host` is added).
    fn recorded_info(raw: &'a RawEvent, phase: Phase) -> Option<&'a Info> {
        if phase == raw.phase {
            raw.info()
        } else {
            None
        }
    }

    /// Whether this is an error stop (its info has a non-null `etype`).
    pub fn is_error(&self) -> bool {
        let etype = match self.0 {
            Repr::Recorded { raw, phase, .. } => match Self::recorded_info(raw, phase) {
                Some(Info::Value(Value::Object(info))) => info.get("etype"),
                Some(info @ Info::Rendered(text)) if text.contains("\"etype\"") => {
                    return is_error_info(&info.to_value());
                }
                _ => None,
            },
            Repr::Ready(n) => n.info.as_ref().and_then(|i| i.get("etype")),
        };
        etype.is_some_and(|e| !e.is_null())
    }

    /// The event as an owned [`Notification`].
    pub fn to_notification(&self) -> Notification {
        match self.0 {
            Repr::Recorded {
                raw,
                context,
                phase,
                unix_micros,
            } => Notification {
                name: self.name().into_owned(),
                base_id: context.base_id.to_text(),
                trace_id: raw.trace_id.id().to_text(),
                parent_id: self.parent_id().to_string(),
                timestamp: format_timestamp(unix_micros),
                info: Some(info_with_host(
                    Self::recorded_info(raw, phase)
                        .map(Info::to_value)
                        .as_deref(),
                    host(),
                )),
            },
            Repr::Ready(n) => n.clone(),
        }
    }

    /// The payload as JSON with `project` and `service` added (what
    /// [`Notification::to_value`] gives).
    pub fn to_value(&self, project: Option<&str>, service: Option<&str>) -> Value {
        self.to_notification().to_value(project, service)
    }

    /// Appends the payload as compact JSON, with `project` and `service`
    /// added: the text of `serde_json::to_string(&self.to_value(..))`,
    /// written without building the value.
    pub fn write_json(&self, out: &mut Vec<u8>, project: Option<&str>, service: Option<&str>) {
        let Repr::Recorded {
            raw,
            context,
            phase,
            unix_micros,
        } = self.0
        else {
            // Ready-made payloads are rare (Python's `notifier.notify`).
            let value = self.to_value(project, service);
            let _ = serde_json::to_writer(out, &value);
            return;
        };
        out.extend_from_slice(b"{\"name\":\"");
        write_escaped(out, raw.name.as_str());
        out.extend_from_slice(suffix(phase).as_bytes());
        out.extend_from_slice(b"\",\"base_id\":");
        write_id(out, &context.base_id);
        out.extend_from_slice(b",\"trace_id\":\"");
        out.extend_from_slice(Text::uuid(raw.trace_id).bytes());
        out.push(b'"');
        out.extend_from_slice(b",\"parent_id\":");
        match raw.parent() {
            Some(parent) => {
                out.push(b'"');
                out.extend_from_slice(Text::uuid(parent).bytes());
                out.push(b'"');
            }
            None => write_id(out, &context.parent_id),
        }
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(Text::timestamp(unix_micros).bytes());
        out.extend_from_slice(b"\",\"info\":{");
        write_info_entries(out, Self::recorded_info(raw, phase), host());
        out.extend_from_slice(b"},\"project\":");
        write_optional(out, project);
        out.extend_from_slice(b",\"service\":");
        write_optional(out, service);
        out.push(b'}');
    }
}

impl<'a> From<&'a Notification> for Event<'a> {
    fn from(notification: &'a Notification) -> Event<'a> {
        Event(Repr::Ready(notification))
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("base_id", &&*self.base_id())
            .field("trace_id", &&*self.trace_id())
            .field("parent_id", &&*self.parent_id())
            .field("timestamp", &&*self.timestamp())
            .finish_non_exhaustive()
    }
}

fn suffix(phase: Phase) -> &'static str {
    match phase {
        Phase::Start => "-start",
        Phase::Stop => "-stop",
    }
}

/// Text of an id or a timestamp, borrowed when it is text already and
/// formatted on the stack when it is not.
#[derive(Clone)]
pub struct Text<'a>(TextRepr<'a>);

#[derive(Clone)]
enum TextRepr<'a> {
    Borrowed(&'a str),
    /// A uuid (36 bytes) or a timestamp (26 bytes).
    Inline([u8; 36], u8),
    /// A timestamp outside four-digit years.
    Owned(String),
}

impl<'a> Text<'a> {
    fn borrowed(text: &'a str) -> Text<'a> {
        Text(TextRepr::Borrowed(text))
    }

    fn id(id: &'a Id) -> Text<'a> {
        match id {
            Id::Uuid([hi, lo]) => Text::uuid_of((u128::from(*hi) << 64) | u128::from(*lo)),
            Id::Text(text) => Text::borrowed(text),
        }
    }

    fn uuid(id: LocalId) -> Text<'a> {
        Text::uuid_of(id.as_u128())
    }

    fn uuid_of(value: u128) -> Text<'a> {
        let mut buf = [0u8; 36];
        fill_uuid(value, &mut buf);
        Text(TextRepr::Inline(buf, 36))
    }

    /// The text's bytes, without the UTF-8 check that `&str` costs an
    /// inline text (for writers of JSON bytes).
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            TextRepr::Borrowed(text) => text.as_bytes(),
            TextRepr::Inline(buf, len) => &buf[..usize::from(*len)],
            TextRepr::Owned(text) => text.as_bytes(),
        }
    }

    fn timestamp(unix_micros: i64) -> Text<'a> {
        let mut buf = [0u8; 36];
        match write_timestamp(unix_micros, &mut buf) {
            Some(len) => Text(TextRepr::Inline(buf, len)),
            None => Text(TextRepr::Owned(format_timestamp(unix_micros))),
        }
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            TextRepr::Borrowed(text) => text,
            // Only ASCII is ever written inline.
            TextRepr::Inline(buf, len) => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            TextRepr::Owned(text) => text,
        }
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

/// Writes `%Y-%m-%dT%H:%M:%S.%f` into `buf`; `None` outside four-digit
/// years (left to [`format_timestamp`]).
fn write_timestamp(unix_micros: i64, buf: &mut [u8; 36]) -> Option<u8> {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000);
    let (year, month, day) = super::civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return None;
    }
    let secs_of_day = secs.rem_euclid(86_400);
    let mut at = 0;
    let mut digits = |value: i64, width: u32, separator: u8| {
        for i in (0..width).rev() {
            buf[at] = b'0' + (value / 10_i64.pow(i) % 10) as u8;
            at += 1;
        }
        if separator != 0 {
            buf[at] = separator;
            at += 1;
        }
    };
    digits(year, 4, b'-');
    digits(month, 2, b'-');
    digits(day, 2, b'T');
    digits(secs_of_day / 3600, 2, b':');
    digits(secs_of_day % 3600 / 60, 2, b':');
    digits(secs_of_day % 60, 2, b'.');
    digits(micros, 6, 0);
    Some(26)
}

fn write_id(out: &mut Vec<u8>, id: &Id) {
    out.push(b'"');
    match id {
        Id::Uuid(_) => out.extend_from_slice(Text::id(id).bytes()),
        Id::Text(text) => write_escaped(out, text),
    }
    out.push(b'"');
}

fn write_optional(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => {
            out.push(b'"');
            write_escaped(out, text);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Whether an info value has a non-null `etype`.
fn is_error_info(info: &Value) -> bool {
    info.get("etype").is_some_and(|e| !e.is_null())
}

/// [`write_value_entries`] for a record's info. A rendered object is
/// copied as it is, unless it has a `host` of its own (which `host`
/// replaces in place, as in Python).
fn write_info_entries(out: &mut Vec<u8>, info: Option<&Info>, host: &str) {
    match info {
        Some(Info::Rendered(text)) if !text.contains("\"host\"") => {
            let members = text
                .strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or("");
            out.extend_from_slice(members.as_bytes());
            if !members.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"host\":");
            write_optional(out, Some(host));
        }
        Some(Info::Value(value)) => write_value_entries(out, Some(value), host),
        Some(rendered) => write_value_entries(out, Some(&rendered.to_value()), host),
        None => write_value_entries(out, None, host),
    }
}

/// The entries of Python's info dict: the caller's info with `host` set
/// (in place when the caller gave one, last otherwise).
fn write_value_entries(out: &mut Vec<u8>, info: Option<&Value>, host: &str) {
    let mut first = true;
    let mut entry = |out: &mut Vec<u8>, key: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        write_escaped(out, key);
        out.extend_from_slice(b"\":");
    };
    let mut host_written = false;
    match info {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                entry(out, key);
                if key == "host" {
                    write_optional(out, Some(host));
                    host_written = true;
                } else {
                    let _ = serde_json::to_writer(&mut *out, value);
                }
            }
        }
        Some(other) => {
            entry(out, "value");
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
    if !host_written {
        entry(out, "host");
        write_optional(out, Some(host));
    }
}

/// JSON string contents, escaped as `serde_json` escapes them.
pub(crate) fn write_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Python adds `host` to the caller's info (replacing any `host` it had).
pub(crate) fn info_with_host(info: Option<&Value>, host: &str) -> Map<String, Value> {
    let mut map = match info {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) | None => Map::new(),
        // Python would fail on a non-dict info; keep the value visible.
        Some(other) => Map::from_iter([("value".to_string(), other.clone())]),
    };
    map.insert("host".into(), Value::from(host));
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Name;

    fn record(name: &str, info: Option<Value>, phase: Phase) -> RawEvent {
        record_with(name, info.map(Info::Value), phase)
    }

    fn record_with(name: &str, info: Option<Info>, phase: Phase) -> RawEvent {
        let trace_id = LocalId(u64::MAX - 7);
        RawEvent {
            name: Name::from(name.to_string()),
            trace_id,
            // The context's parent, which is text that needs escaping.
            parent_id: trace_id,
            at: crate::clock::Instant::now(),
            stop_at: crate::clock::Instant::ZERO,
            info: info.map(std::sync::Arc::new),
            site_info: 0,
            context: 0,
            phase,
            stopped: false,
        }
    }

    /// The context ids of every test record.
    fn context() -> &'static ContextIds {
        static CONTEXT: std::sync::OnceLock<ContextIds> = std::sync::OnceLock::new();
        CONTEXT.get_or_init(|| ContextIds {
            base_id: Id::from_u128(1),
            parent_id: Id::from_text("p\"\u{1}é"),
            service: 0,
        })
    }

    fn recorded(raw: &RawEvent) -> Event<'_> {
        Event::recorded(raw, context(), raw.phase, 1_795_253_491_298_649)
    }

    #[test]
    fn written_json_is_what_serde_writes_for_the_notification() {
        let infos = [
            None,
            Some(Value::Null),
            Some(serde_json::json!({"a": [1, "x\n"], "host": "mine", "z": {"k": null}})),
            Some(serde_json::json!({"db": {"statement": "SELECT \"1\"\t"}})),
            Some(serde_json::json!("not a dict")),
        ];
        for info in infos {
            for (phase, parent) in [(Phase::Start, None), (Phase::Stop, Some(LocalId(5)))] {
                let mut raw = record("n\\a\"me\u{7f}\u{1f}", info.clone(), phase);
                if let Some(parent) = parent {
                    raw.parent_id = parent;
                }
                let event = recorded(&raw);
                let mut out = Vec::new();
                event.write_json(&mut out, Some("pro\"ject"), None);
                let expected =
                    serde_json::to_string(&event.to_value(Some("pro\"ject"), None)).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), expected);
                // The same object rendered by its recorder reads the same.
                if let Some(Value::Object(_)) = &info {
                    let text = serde_json::to_string(info.as_ref().unwrap()).unwrap();
                    let mut rendered =
                        record_with("n\\a\"me\u{7f}\u{1f}", Some(Info::Rendered(text)), phase);
                    rendered.parent_id = raw.parent_id;
                    let event = recorded(&rendered);
                    let mut out = Vec::new();
                    event.write_json(&mut out, Some("pro\"ject"), None);
                    assert_eq!(String::from_utf8(out).unwrap(), expected);
                    assert_eq!(
                        event.to_value(Some("pro\"ject"), None),
                        serde_json::from_str::<Value>(&expected).unwrap()
                    );
                }
            }
        }
        let empty = record_with("n", Some(Info::Rendered("{}".into())), Phase::Start);
        let mut out = Vec::new();
        recorded(&empty).write_json(&mut out, None, None);
        let expected = serde_json::to_string(&recorded(&empty).to_value(None, None)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert!(expected.contains(r#""info":{"host":"#), "{expected}");
    }

    #[test]
    fn rendered_infos_tell_errors() {
        let info = |text: &str| Some(Info::Rendered(text.into()));
        let error = record_with("db", info(r#"{"etype":"E","message":"m"}"#), Phase::Stop);
        assert!(recorded(&error).is_error());
        let null = record_with("db", info(r#"{"etype":null}"#), Phase::Stop);
        assert!(!recorded(&null).is_error());
        let plain = record_with("db", info(r#"{"request":{"path":"/etype"}}"#), Phase::Stop);
        assert!(!recorded(&plain).is_error());
    }

    #[test]
    fn accessors_agree_with_the_notification() {
        let raw = record("db", Some(serde_json::json!({"etype": "E"})), Phase::Stop);
        let event = recorded(&raw);
        let n = event.to_notification();
        assert_eq!(event.name(), n.name);
        assert_eq!(event.name(), "db-stop");
        assert_eq!(event.base_id(), "00000000-0000-0000-0000-000000000001");
        assert_eq!(&*event.base_id(), n.base_id);
        assert_eq!(&*event.trace_id(), n.trace_id);
        assert_eq!(&*event.parent_id(), n.parent_id);
        assert_eq!(event.parent_id(), "p\"\u{1}é", "the context's parent");
        let mut child = record("db", None, Phase::Start);
        child.parent_id = LocalId(5);
        let child = recorded(&child);
        assert_eq!(&*child.parent_id(), LocalId(5).id().to_string());
        assert_eq!(
            child.to_notification().parent_id,
            LocalId(5).id().to_string()
        );
        assert_eq!(event.timestamp(), "2026-11-21T09:31:31.298649");
        assert_eq!(&*event.timestamp(), n.timestamp);
        assert!(event.is_error());
        assert!(n.is_error());
        let ready = Event::from(&n);
        assert_eq!(ready.to_notification(), n);
        assert_eq!(ready.base_id(), &*n.base_id);
        assert!(ready.is_error());
    }

    #[test]
    fn timestamps_outside_four_digit_years_fall_back() {
        for micros in [
            0,
            -1,
            253_402_300_799_999_999,
            253_402_300_800_000_000,
            i64::MIN / 2,
        ] {
            assert_eq!(
                &*Text::timestamp(micros),
                format_timestamp(micros),
                "{micros}"
            );
        }
    }
}
