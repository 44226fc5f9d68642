//! Notification payloads to span names, kinds, attributes and events,
//! exactly as upstream's `osprofiler/drivers/otlp.py` (4.4.0) with the
//! OpenTelemetry Python SDK (1.45) builds them.
//!
//! Where upstream would raise on a malformed payload (a missing key, a
//! `request` that is not a dict, ...) these functions carry on: a missing
//! value is left out, a field read from something that is not an object
//! is missing.

use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use serde_json::{Map, Value};

/// Upstream's `_kind`, on the whole notification name (`wsgi-start`).
pub(super) fn span_kind(notification_name: &str) -> SpanKind {
    if notification_name.contains("wsgi") {
        SpanKind::Server
    } else if ["db", "http", "api"]
        .iter()
        .any(|word| notification_name.contains(word))
    {
        SpanKind::Client
    } else {
        SpanKind::Internal
    }
}

/// Upstream's `_name`: `WSGI_<method>_<path>`, `SQL_<FIRST WORD>`,
/// `REQUESTS_<method>_<hostname>`, else the notification name with
/// Python's `rstrip("-start")`.
///
/// That `rstrip` removes trailing characters among `-`, `s`, `t`, `a`,
/// `r`, not the suffix: `driver-start` becomes `drive`. Kept as upstream
/// has it, so Python and Rust services name the same spans the same way.
pub(super) fn span_name(notification_name: &str, info: &Map<String, Value>) -> String {
    if truthy(info.get("request")) {
        let request = info.get("request");
        format!(
            "WSGI_{}_{}",
            py_str(field(request, "method")),
            py_str(field(request, "path"))
        )
    } else if truthy(info.get("db")) {
        let statement = py_str(field(info.get("db"), "statement"));
        let first = statement.split(' ').next().unwrap_or("");
        format!("SQL_{}", first.to_uppercase())
    } else if truthy(info.get("requests")) {
        let requests = info.get("requests");
        format!(
            "REQUESTS_{}_{}",
            py_str(field(requests, "method")),
            py_str(field(requests, "hostname"))
        )
    } else {
        notification_name
            .trim_end_matches(['-', 's', 't', 'a', 'r'])
            .to_string()
    }
}

/// Upstream's `create_span_tags`: the attributes a span starts with.
pub(super) fn start_attributes(info: &Map<String, Value>) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    if truthy(info.get("db")) {
        let db = info.get("db");
        copy(&mut attributes, "db.statement", db, "statement");
        if let Some(params) = field(db, "params") {
            let text = crate::pyjson::to_string(params);
            set_attribute(&mut attributes, "db.params", string_value(text));
        }
    } else if truthy(info.get("request")) {
        let request = info.get("request");
        for (key, name) in [
            ("http.path", "path"),
            ("http.query", "query"),
            ("http.method", "method"),
            ("http.scheme", "scheme"),
        ] {
            copy(&mut attributes, key, request, name);
        }
    } else if truthy(info.get("requests")) {
        let requests = info.get("requests");
        for (key, name) in [
            ("http.path", "path"),
            ("http.query", "query"),
            ("http.method", "method"),
            ("http.scheme", "scheme"),
            ("http.hostname", "hostname"),
            ("http.port", "port"),
        ] {
            copy(&mut attributes, key, requests, name);
        }
    } else if truthy(info.get("function")) {
        let function = info.get("function");
        for name in ["args", "kwargs", "name"] {
            copy(&mut attributes, name, function, name);
        }
    }
    attributes
}

/// `attributes[key] = from[name]` when `from` has `name`.
fn copy(attributes: &mut Vec<KeyValue>, key: &str, from: Option<&Value>, name: &str) {
    if let Some(value) = field(from, name) {
        set_attribute(attributes, key, any_value(value));
    }
}

/// What upstream's `notify` does with a stop: `result` of a `db` or
/// `function` stop, `status_code` of a `requests` stop, and for an error
/// (`etype`) the attribute `error = true` and an event `log` with
/// `error.kind` and `message` at `time_unix_nano`.
pub(super) fn apply_stop(
    attributes: &mut Vec<KeyValue>,
    events: &mut Vec<Event>,
    info: &Map<String, Value>,
    time_unix_nano: u64,
) {
    for call in ["db", "function"] {
        if let Some(result) = field(info.get(call), "result").filter(|r| truthy(Some(r))) {
            set_attribute(attributes, "result", any_value(result));
        }
    }
    if truthy(info.get("requests")) {
        if let Some(code) = field(info.get("requests"), "status_code") {
            set_attribute(attributes, "status_code", any_value(code));
        }
    }
    if let Some(etype) = info.get("etype").filter(|e| truthy(Some(e))) {
        set_attribute(
            attributes,
            "error",
            AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            },
        );
        let mut event_attributes = Vec::with_capacity(2);
        set_attribute(&mut event_attributes, "error.kind", any_value(etype));
        if let Some(message) = info.get("message") {
            set_attribute(&mut event_attributes, "message", any_value(message));
        }
        events.push(Event {
            time_unix_nano,
            name: "log".into(),
            attributes: event_attributes,
            dropped_attributes_count: 0,
        });
    }
}

/// The SDK's `span.set_attribute`: an existing key is removed first, so a
/// key set again moves to the end; an empty key is dropped.
pub(super) fn set_attribute(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    if key.is_empty() {
        return;
    }
    attributes.retain(|kv| kv.key != key);
    attributes.push(KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    });
}

pub(super) fn string_value(text: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(text)),
    }
}

/// A JSON value as the SDK encodes the Python value it decodes to: `None`
/// as an empty value, lists as arrays, dicts as key-value lists (empty
/// keys dropped). An integer beyond `i64` (which makes Python's encoder
/// fail the whole export) becomes a double.
pub(super) fn any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(V::StringValue(s.clone())),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        Value::Object(map) => Some(V::KvlistValue(KeyValueList {
            values: map
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any_value(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// `value[name]` when `value` is an object that has it.
fn field<'a>(value: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    value?.as_object()?.get(name)
}

/// Python's truthiness of a decoded JSON value (absent is falsy).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Python's `str()` of a decoded JSON value; absent is `None`.
fn py_str(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        other => {
            let mut out = String::new();
            py_repr(other.unwrap_or(&Value::Null), &mut out);
            out
        }
    }
}

/// Python's `repr()` of a decoded JSON value.
fn py_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(_) => out.push_str(&crate::pyjson::to_string(value)),
        Value::String(s) => crate::pyjson::repr_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                crate::pyjson::repr_str(k, out);
                out.push_str(": ");
                py_repr(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn kinds_follow_substrings_of_the_notification_name() {
        assert_eq!(span_kind("wsgi-start"), SpanKind::Server);
        assert_eq!(span_kind("db-start"), SpanKind::Client);
        assert_eq!(span_kind("https-start"), SpanKind::Client);
        assert_eq!(span_kind("compute_api-start"), SpanKind::Client);
        assert_eq!(span_kind("rpc-start"), SpanKind::Internal);
    }

    #[test]
    fn names_keep_upstreams_rstrip() {
        let none = Map::new();
        assert_eq!(span_name("driver-start", &none), "drive");
        assert_eq!(span_name("rpc-start", &none), "rpc");
        assert_eq!(span_name("test-start", &none), "te");
        let info = obj(json!({"db": {"statement": "select 1"}, "request": {}}));
        assert_eq!(span_name("db-start", &info), "SQL_SELECT");
        let info =
            obj(json!({"request": {"method": "GET", "path": "/x"}, "db": {"statement": "s"}}));
        assert_eq!(span_name("wsgi-start", &info), "WSGI_GET_/x");
        let info = obj(json!({"requests": {"method": "PUT", "hostname": null}}));
        assert_eq!(span_name("http-start", &info), "REQUESTS_PUT_None");
        let info = obj(json!({"db": {"statement": 5}}));
        assert_eq!(span_name("db-start", &info), "SQL_5");
        let info = obj(json!({"request": "x"}));
        assert_eq!(span_name("wsgi-start", &info), "WSGI_None_None");
    }

    #[test]
    fn python_str_of_values() {
        assert_eq!(py_str(Some(&json!(true))), "True");
        assert_eq!(py_str(Some(&json!(2.0))), "2.0");
        assert_eq!(
            py_str(Some(&json!({"a": [1, "it's", null, "\n"]}))),
            r#"{'a': [1, "it's", None, '\n']}"#
        );
    }

    #[test]
    fn set_attribute_moves_a_key_to_the_end() {
        let mut attributes = Vec::new();
        set_attribute(&mut attributes, "a", string_value("1".into()));
        set_attribute(&mut attributes, "b", string_value("2".into()));
        set_attribute(&mut attributes, "a", string_value("3".into()));
        set_attribute(&mut attributes, "", string_value("4".into()));
        let keys: Vec<_> = attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn error_stop_adds_attribute_and_event() {
        let mut attributes = Vec::new();
        let mut events = Vec::new();
        let info = obj(json!({"etype": "E", "message": "m", "db": {"result": ""}}));
        apply_stop(&mut attributes, &mut events, &info, 7);
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].key, "error");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "log");
        assert_eq!(events[0].time_unix_nano, 7);
        let keys: Vec<_> = events[0]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, ["error.kind", "message"]);
    }

    #[test]
    fn huge_integers_become_doubles() {
        let v = any_value(&json!(u64::MAX));
        assert!(matches!(v.value, Some(any_value::Value::DoubleValue(_))));
    }
}
