//! HTTP propagation of traces: Python's `osprofiler.web`.
//!
//! A client puts [`X_TRACE_INFO`] and [`X_TRACE_HMAC`] on outgoing requests
//! ([`get_trace_id_headers`]); a server that knows one of the keys trusts
//! them ([`signed_unpack`]) and continues the trace.

#[cfg(feature = "tower")]
mod middleware;
mod signing;
pub mod traceparent;

use std::collections::HashMap;

use serde_json::{Map, Value};

#[cfg(feature = "tower")]
pub use middleware::{disable, enable, reset_global, ResponseFuture, TraceLayer, TraceService};
pub use signing::{generate_hmac, signed_pack, signed_unpack, TraceInfo, MAX_HEADER_LEN};
pub use traceparent::{
    otel_span_id, otel_trace_id, traceparent_for, TraceParent, TraceparentPolicy, TRACEPARENT,
};

use crate::profiler;

/// Header carrying the base64 trace data.
pub const X_TRACE_INFO: &str = "X-Trace-Info";
/// Header carrying the HMAC of [`X_TRACE_INFO`].
pub const X_TRACE_HMAC: &str = "X-Trace-HMAC";

/// The signed headers that continue the current trace in a downstream
/// service: `{"base_id", "parent_id": <current element>}`. Empty when no
/// profiler is active or it has no key, as in Python.
pub fn get_trace_id_headers() -> HashMap<&'static str, String> {
    profiler::get()
        .and_then(|p| trace_headers(&p.base_id(), &p.id(), p.hmac_key()))
        .map(|(info, hmac)| HashMap::from([(X_TRACE_INFO, info), (X_TRACE_HMAC, hmac)]))
        .unwrap_or_default()
}

/// The `(X-Trace-Info, X-Trace-HMAC)` values for an explicit trace; `None`
/// without a key.
pub fn trace_headers(base_id: &str, parent_id: &str, hmac_key: &str) -> Option<(String, String)> {
    if hmac_key.is_empty() {
        return None;
    }
    let mut data = Map::new();
    data.insert("base_id".into(), Value::from(base_id));
    data.insert("parent_id".into(), Value::from(parent_id));
    let (info, hmac) = signed_pack(&data, Some(hmac_key));
    Some((info, hmac.unwrap_or_default()))
}

/// Splits a comma-separated key list (`"k1, k2"`), dropping blanks
/// (Python's `_utils.split`).
pub fn split_keys(keys: &str) -> Vec<String> {
    keys.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}
