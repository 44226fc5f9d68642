//! A thread that ends with events still buffered (elements left open, so
//! nothing handed them over) still delivers them, with the right ids.

use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::{notifier, profiler};

#[test]
fn events_buffered_by_an_ending_thread_are_delivered() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let base = "00000000-0000-4000-8000-00000000000b";
    let parent = "not-a-uuid";
    std::thread::spawn(move || {
        profiler::init("key", Some(base), Some(parent));
        profiler::start("outer", None);
        profiler::start("inner", None);
        profiler::stop(None);
        // `outer` stays open: only the thread's end hands these over.
    })
    .join()
    .unwrap();
    notifier::flush(Duration::from_secs(30)).unwrap();

    let payloads = store.payloads();
    let names: Vec<&str> = payloads
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["outer-start", "inner-start", "inner-stop"]);
    assert!(payloads.iter().all(|p| p["base_id"] == base));
    assert_eq!(payloads[0]["parent_id"], parent, "the context's parent");
    let outer = payloads[0]["trace_id"].as_str().unwrap();
    assert_eq!(payloads[1]["parent_id"], outer);
    assert_eq!(payloads[2]["trace_id"], payloads[1]["trace_id"]);
}
