//! A driver that panics loses its batch (counted as dropped) but not the
//! collector: later events still get delivered.

use std::time::Duration;

use osprofiler::drivers::Driver;
use osprofiler::notification::Notification;
use osprofiler::{notifier, profiler};

#[derive(Debug)]
struct PanickingDriver;

impl Driver for PanickingDriver {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn notify(&self, _: &[Notification]) -> osprofiler::Result<()> {
        panic!("driver bug")
    }
}

#[test]
fn a_panicking_driver_does_not_kill_the_collector() {
    let before = notifier::stats();
    notifier::set(PanickingDriver);
    profiler::init("key", None, None);
    profiler::start("x", None);
    profiler::stop(None);
    profiler::clean();
    let _ = notifier::flush(Duration::from_secs(5));
    let after = notifier::stats();
    assert!(
        after.dropped >= before.dropped + 2,
        "{before:?} -> {after:?}"
    );
    // The collector still works afterwards.
    let store = osprofiler::drivers::MemoryDriver::new();
    notifier::set(store.clone());
    profiler::init("key", None, None);
    profiler::start("y", None);
    profiler::stop(None);
    profiler::clean();
    notifier::flush(Duration::from_secs(5)).unwrap();
    assert_eq!(store.payloads().len(), 2);
}
