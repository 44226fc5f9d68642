//! The trace that report benchmarks build, shared by `benches/report.rs`
//! and `examples/report_profile.rs` (included with `#[path]`).

use osprofiler::notification::format_timestamp;
use serde_json::{json, Value};

pub fn uuid(i: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i)
}

/// `n` payloads (n/2 elements) in chains of ten under one root, as Python
/// osprofiler stores them.
pub fn trace_events(n: usize) -> Vec<Value> {
    let base = uuid(0);
    let start_us = 1_700_000_000_000_000_i64;
    let payload = |name: &str, id: u64, parent: u64, at: i64| {
        json!({
            "name": name,
            "base_id": base,
            "trace_id": uuid(id),
            "parent_id": uuid(parent),
            "timestamp": format_timestamp(at),
            "info": {"host": "bench", "db": {"statement": "SELECT 1"}},
            "project": "bench",
            "service": "api",
        })
    };
    let mut events = Vec::with_capacity(n);
    let mut id = 1_u64;
    let mut clock = start_us;
    while events.len() + 20 <= n {
        let first = id;
        for depth in 0..10 {
            let parent = if depth == 0 { 0 } else { id - 1 };
            events.push(payload("db-start", id, parent, clock));
            clock += 3;
            id += 1;
        }
        for depth in (0..10).rev() {
            let this = first + depth;
            let parent = if depth == 0 { 0 } else { this - 1 };
            events.push(payload("db-stop", this, parent, clock));
            clock += 3;
        }
    }
    events
}
