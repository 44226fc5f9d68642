//! Bounds on what one request can put in the pipeline, applied on the
//! caller thread before anything is queued.
//!
//! - Strings in an `info` longer than [`max_info_bytes`] are cut (at a
//!   character boundary) and marked, so one huge SQL parameter or response
//!   body cannot fill the buffer.
//! - A request context records at most [`max_trace_events`] events; the
//!   first element it cannot record is replaced by one `truncated`
//!   element saying so, and later ones are not recorded (their stops
//!   neither, so the stored tree stays whole).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde_json::Value;

/// Default for [`crate::notifier::Options::max_info_bytes`].
pub(crate) const DEFAULT_MAX_INFO_BYTES: usize = 64 * 1024;
/// Default for [`crate::notifier::Options::max_trace_events`].
pub(crate) const DEFAULT_MAX_TRACE_EVENTS: u32 = 1_000_000;

static MAX_INFO_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_INFO_BYTES);
static MAX_TRACE_EVENTS: AtomicU32 = AtomicU32::new(DEFAULT_MAX_TRACE_EVENTS);

/// What replaces the cut part of a string.
pub(crate) const TRUNCATION_MARK: &str = "...(truncated by osprofiler)";

pub(crate) fn set_max_info_bytes(bytes: usize) {
    MAX_INFO_BYTES.store(bytes, Ordering::Relaxed);
}

pub(crate) fn set_max_trace_events(events: u32) {
    MAX_TRACE_EVENTS.store(events, Ordering::Relaxed);
}

/// Longest string kept whole in an `info`, in bytes.
pub(crate) fn max_info_bytes() -> usize {
    MAX_INFO_BYTES.load(Ordering::Relaxed)
}

/// Most events one request context records.
pub(crate) fn max_trace_events() -> u32 {
    MAX_TRACE_EVENTS.load(Ordering::Relaxed)
}

/// Cuts every string in `info` (keys included) longer than
/// [`max_info_bytes`]. Deep nesting is walked with an explicit stack, so a
/// deeply nested value cannot overflow the thread's stack.
pub(crate) fn truncate_info(info: &mut Value) {
    truncate_shallow(info, max_info_bytes(), 0);
}

/// How deep [`truncate_shallow`] recurses before handing a subtree to
/// [`truncate_deep`]. Most infos are two or three levels deep, and
/// recursion needs no allocation, unlike the explicit stack.
const RECURSION_LIMIT: u32 = 16;

fn truncate_shallow(value: &mut Value, max: usize, depth: u32) {
    if depth == RECURSION_LIMIT {
        return truncate_deep(value, max);
    }
    match value {
        Value::String(s) => truncate_string(s, max),
        Value::Array(items) => {
            for item in items {
                truncate_shallow(item, max, depth + 1);
            }
        }
        Value::Object(map) => {
            truncate_keys(map, max);
            for item in map.values_mut() {
                truncate_shallow(item, max, depth + 1);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn truncate_deep(info: &mut Value, max: usize) {
    let mut todo = vec![info];
    while let Some(value) = todo.pop() {
        match value {
            Value::String(s) => truncate_string(s, max),
            Value::Array(items) => todo.extend(items.iter_mut()),
            Value::Object(map) => {
                truncate_keys(map, max);
                todo.extend(map.values_mut());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fn truncate_keys(map: &mut serde_json::Map<String, Value>, max: usize) {
    if map.keys().any(|k| k.len() > max) {
        let entries = std::mem::take(map);
        for (mut key, value) in entries {
            truncate_string(&mut key, max);
            map.insert(key, value);
        }
    }
}

fn truncate_string(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    s.truncate(cut_at(s, max));
    s.push_str(TRUNCATION_MARK);
}

/// The last char boundary of `s` at or before `max`.
fn cut_at(s: &str, max: usize) -> usize {
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// An info string as [`truncate_info`] would leave it: the part kept, and
/// whether the mark follows.
#[cfg(feature = "tower")]
pub(crate) fn truncated_str(s: &str) -> (&str, bool) {
    let max = max_info_bytes();
    if s.len() <= max {
        return (s, false);
    }
    (&s[..cut_at(s, max)], true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_strings_are_cut_at_a_char_boundary_and_marked() {
        let max = max_info_bytes();
        let long = "é".repeat(max); // 2 bytes each
        let mut info = json!({
            "db": {"params": [long.clone(), "short"]},
            long.clone(): 1,
            "n": 5,
        });
        truncate_info(&mut info);
        let cut = info["db"]["params"][0].as_str().unwrap();
        assert!(cut.ends_with(TRUNCATION_MARK));
        assert_eq!(cut.len(), max + TRUNCATION_MARK.len());
        assert_eq!(info["db"]["params"][1], "short");
        assert_eq!(info["n"], 5);
        let key = info
            .as_object()
            .unwrap()
            .keys()
            .find(|k| k.ends_with(TRUNCATION_MARK))
            .expect("long key cut");
        assert!(key.len() <= max + TRUNCATION_MARK.len());
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut info = json!("x".repeat(max_info_bytes() + 1));
        for _ in 0..100_000 {
            info = Value::Array(vec![info]);
        }
        truncate_info(&mut info);
        let mut inner = &info;
        while let Value::Array(items) = inner {
            inner = &items[0];
        }
        assert!(inner.as_str().unwrap().ends_with(TRUNCATION_MARK));
        // Dropping 100k nested arrays recursively would overflow the stack.
        std::mem::forget(info);
    }
}
