//! What one request can put in the pipeline is bounded: long info strings
//! are cut before they are queued, and a runaway request stops recording
//! after its event budget, leaving one `truncated` element and a whole
//! tree.

use std::sync::Arc;
use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::{notifier, profiler};
use serde_json::{json, Value};

#[test]
fn runaway_requests_and_huge_info_are_bounded() {
    let store = Arc::new(MemoryDriver::new());
    notifier::configure(
        notifier::Options::default()
            .max_info_bytes(100)
            .max_trace_events(50),
    );
    notifier::set_shared(store.clone());

    // Info: long strings (values and keys) are cut and marked.
    profiler::init("key", None, None);
    profiler::start(
        "db",
        Some(json!({"db": {"statement": "x".repeat(1_000_000)}, "k".repeat(200): 1})),
    );
    profiler::stop(Some(json!({"result": "é".repeat(1_000)})));
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).unwrap();
    let payloads = store.payloads();
    assert_eq!(payloads.len(), 2);
    let statement = payloads[0]["info"]["db"]["statement"].as_str().unwrap();
    assert!(statement.starts_with(&"x".repeat(100)), "{statement:.120}");
    assert!(statement.ends_with("(truncated by osprofiler)"));
    assert!(statement.len() < 200);
    let keys: Vec<&String> = payloads[0]["info"].as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| k.len() < 200), "{keys:?}");
    let result = payloads[1]["info"]["result"].as_str().unwrap();
    assert!(result.ends_with("(truncated by osprofiler)") && result.len() < 200);
    store.clear();

    // Event budget: 50 events are 25 elements; the 26th start records the
    // marker instead, and nothing after it is recorded.
    profiler::init("key", None, None);
    profiler::start("wsgi", None);
    for _ in 0..10_000 {
        profiler::start("db", None);
        profiler::stop(None);
    }
    profiler::stop(None);
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).unwrap();
    let payloads = store.payloads();
    let names: Vec<&str> = payloads
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 52, "{names:?}");
    assert_eq!(names.first(), Some(&"wsgi-start"));
    assert_eq!(names.last(), Some(&"wsgi-stop"));
    assert_eq!(names.iter().filter(|n| **n == "db-start").count(), 24);
    assert_eq!(names.iter().filter(|n| **n == "db-stop").count(), 24);
    let marker: Vec<&Value> = payloads
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("truncated-"))
        .collect();
    assert_eq!(marker.len(), 2, "one start and one stop");
    assert_eq!(marker[0]["info"]["max_trace_events"], 50);
    assert_eq!(marker[0]["parent_id"], payloads[0]["trace_id"]);

    // The budget is per request context: the next one records again.
    store.clear();
    profiler::init("key", None, None);
    profiler::start("wsgi", None);
    profiler::stop(None);
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).unwrap();
    assert_eq!(store.payloads().len(), 2);
    let stats = notifier::stats();
    assert_eq!(stats.dropped, 0);
}
