//! The hot path never waits for the driver: with a driver that sleeps a
//! second per batch, traced code runs at full speed, and the counters say
//! what was queued, sent and dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use osprofiler::drivers::Driver;
use osprofiler::notification::Notification;
use osprofiler::{notifier, profiler};

#[derive(Debug, Default)]
struct SleepyDriver {
    received: Arc<AtomicUsize>,
}

impl Driver for SleepyDriver {
    fn name(&self) -> &'static str {
        "sleepy"
    }
    fn notify(&self, batch: &[Notification]) -> osprofiler::Result<()> {
        std::thread::sleep(Duration::from_secs(1));
        self.received.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn slow_driver_does_not_slow_traced_code_and_overflow_is_counted() {
    let received = Arc::new(AtomicUsize::new(0));
    notifier::configure(
        notifier::Options::default()
            .capacity(10_000)
            .export_batch(100_000),
    );
    notifier::set(SleepyDriver {
        received: received.clone(),
    });
    profiler::init("key", None, None);
    profiler::start("outer", None);

    // 100,000 pairs (a few ms of work) while the driver is stuck in its
    // first 1 s sleep. Had any of them waited for a driver call, that call
    // would have finished and counted its batch. (Cost is measured by the
    // criterion bench, not here.)
    for _ in 0..100_000 {
        profiler::start("inner", None);
        profiler::stop(None);
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "traced code waited for the driver"
    );
    profiler::stop(None);
    profiler::clean();

    let stats = notifier::stats();
    assert!(
        stats.dropped > 0,
        "buffer of 10,000 must overflow with 200,002 events: {stats:?}"
    );
    assert!(stats.queued <= 10_000, "{stats:?}");

    notifier::flush(Duration::from_secs(30)).expect("flush");
    let stats = notifier::stats();
    assert_eq!(stats.queued, 0);
    // Every event is either delivered or counted as dropped.
    assert_eq!(stats.sent + stats.dropped, 200_002, "{stats:?}");
    assert_eq!(received.load(Ordering::SeqCst) as u64, stats.sent);
}
