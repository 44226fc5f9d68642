//! A failing driver never reaches traced code: failures are counted, the
//! events are kept and delivered once the driver recovers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use osprofiler::drivers::Driver;
use osprofiler::notification::Notification;
use osprofiler::{notifier, profiler, Error};

#[derive(Debug, Default)]
struct FlakyDriver {
    down: Arc<AtomicBool>,
    stored: Arc<AtomicUsize>,
}

impl Driver for FlakyDriver {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn notify(&self, batch: &[Notification]) -> osprofiler::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::backend(
                "flaky",
                "connection refused to redis://:pw@x",
            ));
        }
        self.stored.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn events_survive_an_outage_and_errors_stay_in_the_collector() {
    let down = Arc::new(AtomicBool::new(true));
    let stored = Arc::new(AtomicUsize::new(0));
    notifier::set(FlakyDriver {
        down: down.clone(),
        stored: stored.clone(),
    });

    profiler::init("key", None, None);
    for _ in 0..500 {
        profiler::start("rpc", None);
        profiler::stop(None);
    }
    profiler::clean();

    // While the driver is down a flush cannot succeed and says so.
    let err = notifier::flush(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.remaining, 1_000);
    assert!(notifier::stats().failed >= 1);
    assert_eq!(stored.load(Ordering::SeqCst), 0);

    down.store(false, Ordering::SeqCst);
    // The collector retries with backoff; a flush forces a retry now.
    notifier::flush(Duration::from_secs(10)).unwrap();
    assert_eq!(stored.load(Ordering::SeqCst), 1_000);
    let stats = notifier::stats();
    assert_eq!((stats.queued, stats.sent, stats.dropped), (0, 1_000, 0));
}
