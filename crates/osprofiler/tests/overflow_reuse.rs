//! A batch dropped because the queue is full gives its buffer back to the
//! thread, which records into it again. Stops of elements whose starts
//! went out with the dropped batch must not land on the records that took
//! their places.

use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::{notifier, profiler};
use serde_json::json;

#[test]
fn stops_after_a_dropped_batch_stay_with_their_elements() {
    let store = MemoryDriver::new();
    // Smaller than one full batch (256 records, 509 events here), larger
    // than the small one that follows it.
    notifier::configure(notifier::Options::default().capacity(100));
    notifier::set(store.clone());
    profiler::init("key", None, None);
    profiler::start("outer", None);
    // 256 records fill the thread's buffer, which is handed over and
    // dropped: `outer`'s start, 253 elements that each fit in one record,
    // and one whose stop carries info (a record of its own, the last).
    for _ in 0..253 {
        profiler::start("inner", None);
        profiler::stop(None);
    }
    profiler::start("last", None);
    profiler::stop(Some(json!({"k": 1})));
    // `z`'s start takes the place `outer`'s start had, and stays
    // unstopped: its stop, carrying info, is a record of its own.
    profiler::start("z", None);
    profiler::stop(Some(json!({"k": 2})));
    profiler::stop(None);
    profiler::clean();
    notifier::flush(Duration::from_secs(30)).unwrap();

    let stats = notifier::stats();
    assert_eq!(stats.dropped, 509, "the first batch is dropped: {stats:?}");
    let names: Vec<String> = store
        .payloads()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["z-start", "z-stop", "outer-stop"]);
}
