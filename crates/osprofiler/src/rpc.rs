//! Trace propagation through RPC messages, as OpenStack services do it over
//! oslo.messaging.
//!
//! The sender puts the current trace into the message *context* under the
//! key `trace_info` (nova's `ProfilerRequestContextSerializer`):
//!
//! ```json
//! {"trace_info": {"hmac_key": "SECRET_KEY", "base_id": "<uuid>", "parent_id": "<current element>"}}
//! ```
//!
//! and the receiver calls `profiler.init(**trace_info)` before running the
//! handler, so the handler's elements become children of the sender's
//! current element. A Python service and a Rust one can be on either end.
//!
//! ```
//! use osprofiler::{profiler, rpc};
//! use serde_json::{Map, Value};
//!
//! // Sender, inside a trace:
//! profiler::init("SECRET_KEY", None, None);
//! let mut context = Map::new();
//! rpc::inject(&mut context);
//! let sender = profiler::get().unwrap();
//! profiler::clean();
//!
//! // Receiver, in another service:
//! let trace = rpc::extract(&context).expect("a valid trace_info");
//! let _entered = trace.enter(); // or `handler.in_profiler(&trace).await`
//! let receiver = profiler::get().unwrap();
//! assert_eq!(receiver.base_id(), sender.base_id());
//! assert_eq!(receiver.id(), sender.id());
//! ```
//!
//! Note that, as upstream, the HMAC key travels in the message: anyone who
//! can read the message bus can sign trace headers.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::local::Context;
use crate::profiler::{self, scope, FutureExt as _, Id, Profiler, WithProfiler};

/// The key of the trace in a message context.
pub const TRACE_INFO: &str = "trace_info";

/// Longest `hmac_key`, `base_id` or `parent_id` accepted from a message, in
/// bytes; longer values make the `trace_info` malformed.
pub const MAX_FIELD_LEN: usize = 1024;

/// The current trace as a `trace_info` object: `{"hmac_key", "base_id",
/// "parent_id"}`, `parent_id` being the current element. `None` when no
/// profiler is active.
pub fn trace_info() -> Option<Map<String, Value>> {
    let p = profiler::get()?;
    let mut info = Map::new();
    info.insert("hmac_key".into(), Value::from(p.hmac_key()));
    info.insert("base_id".into(), Value::from(p.base_id()));
    info.insert("parent_id".into(), Value::from(p.id()));
    Some(info)
}

/// Sets [`TRACE_INFO`] in a message context to [`trace_info`]; leaves the
/// context as it is when no profiler is active. Returns whether it set it.
pub fn inject(context: &mut Map<String, Value>) -> bool {
    match trace_info() {
        Some(info) => {
            context.insert(TRACE_INFO.into(), Value::Object(info));
            true
        }
        None => false,
    }
}

/// The trace a received message context continues, as a detached
/// [`Profiler`] whose [`id`](Profiler::id) is the sender's element; the
/// current context is not touched.
///
/// `None` when the context has no `trace_info`, or it is malformed: not an
/// object, a key other than `hmac_key`, `base_id`, `parent_id`, a missing
/// `hmac_key` or `base_id`, a value of the wrong type (`hmac_key` and
/// `parent_id` may be `null`), an empty `base_id`, or a value longer than
/// [`MAX_FIELD_LEN`]. A malformed trace is never partly used.
pub fn extract(context: &Map<String, Value>) -> Option<Profiler> {
    let info = context.get(TRACE_INFO)?.as_object()?;
    let mut hmac_key = None;
    let mut base_id = None;
    let mut parent_id = None;
    for (key, value) in info {
        let text = match value {
            Value::String(s) if s.len() <= MAX_FIELD_LEN => Some(s.as_str()),
            Value::Null if key != "base_id" => None,
            _ => return None,
        };
        match key.as_str() {
            "hmac_key" => hmac_key = Some(text.unwrap_or("")),
            "base_id" => base_id = text,
            "parent_id" => parent_id = text,
            _ => return None,
        }
    }
    let (hmac_key, base_id) = (hmac_key?, base_id?);
    if base_id.is_empty() {
        return None;
    }
    let base = Id::from_text(base_id);
    let parent = match parent_id {
        Some(p) if !p.is_empty() => Id::from_text(p),
        _ => base.clone(),
    };
    Some(Profiler::of(&Context::new(
        Arc::from(hmac_key),
        base,
        parent,
    )))
}

/// The receiving side as nova does it: `profiler.init(**trace_info)` in the
/// current context. Returns the active profiler afterwards (an already
/// active one is kept, as `init` does), or `None`, touching nothing, when
/// the context carries no valid `trace_info` (see [`extract`]).
///
/// In async handlers prefer [`in_context`], which gives the handler a
/// context of its own.
pub fn init_from_context(context: &Map<String, Value>) -> Option<Profiler> {
    let trace = extract(context)?;
    Some(profiler::init(
        trace.hmac_key(),
        Some(&trace.base_id()),
        Some(&trace.id()),
    ))
}

/// Runs a message handler in the trace of its context: the handler gets a
/// context of its own whose elements are children of the sender's element,
/// or no profiler at all when the context has no valid `trace_info`.
///
/// ```
/// # async fn handle(_payload: serde_json::Value) {}
/// # async fn demo(context: serde_json::Map<String, serde_json::Value>, payload: serde_json::Value) {
/// osprofiler::rpc::in_context(&context, handle(payload)).await;
/// # }
/// ```
pub fn in_context<F: Future>(context: &Map<String, Value>, handler: F) -> WithProfiler<F> {
    match extract(context) {
        Some(trace) => handler.in_profiler(&trace),
        None => scope(handler),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(trace_info: Value) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("user".into(), json!("admin"));
        c.insert(TRACE_INFO.into(), trace_info);
        c
    }

    #[test]
    fn round_trip() {
        profiler::clean();
        assert!(trace_info().is_none());
        let mut c = Map::new();
        assert!(!inject(&mut c));
        assert!(c.is_empty());

        let sender = profiler::init("key", Some("b"), None);
        profiler::start("rpc", None);
        assert!(inject(&mut c));
        let current = profiler::get().unwrap();
        assert_eq!(
            c[TRACE_INFO],
            json!({"hmac_key": "key", "base_id": "b", "parent_id": current.id()})
        );
        profiler::stop(None);
        profiler::clean();

        let trace = extract(&c).unwrap();
        assert_eq!(trace.base_id(), sender.base_id());
        assert_eq!(trace.id(), current.id());
        assert_eq!(trace.hmac_key(), "key");
        assert!(profiler::get().is_none());

        let p = init_from_context(&c).unwrap();
        assert_eq!((p.base_id(), p.id()), ("b".to_string(), current.id()));
        profiler::clean();
    }

    #[test]
    fn missing_parent_means_base() {
        let p = extract(&context(
            json!({"hmac_key": null, "base_id": "b", "parent_id": null}),
        ))
        .unwrap();
        assert_eq!((p.id().as_str(), p.hmac_key()), ("b", ""));
        let p = extract(&context(json!({"hmac_key": "k", "base_id": "b"}))).unwrap();
        assert_eq!(p.id(), "b");
    }

    #[test]
    fn malformed_contexts_are_refused() {
        profiler::clean();
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        for bad in [
            json!(null),
            json!("b"),
            json!([]),
            json!({}),
            json!({"base_id": "b"}),
            json!({"hmac_key": "k"}),
            json!({"hmac_key": "k", "base_id": ""}),
            json!({"hmac_key": "k", "base_id": null}),
            json!({"hmac_key": "k", "base_id": 1}),
            json!({"hmac_key": 1, "base_id": "b"}),
            json!({"hmac_key": "k", "base_id": "b", "parent_id": 2}),
            json!({"hmac_key": "k", "base_id": "b", "parent_id": {}}),
            json!({"hmac_key": "k", "base_id": "b", "extra": "x"}),
            json!({"hmac_key": "k", "base_id": long}),
        ] {
            let c = context(bad.clone());
            assert!(extract(&c).is_none(), "accepted {bad}");
            assert!(init_from_context(&c).is_none(), "accepted {bad}");
            assert!(profiler::get().is_none(), "{bad} initialised a profiler");
        }
        assert!(extract(&Map::new()).is_none());
    }
}
