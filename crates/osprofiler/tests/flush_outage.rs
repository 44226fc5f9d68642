//! A flush issued while the store is down waits for it to come back
//! (within its timeout) instead of giving up after the first failed try:
//! that is what lets a service exiting during a store restart keep its
//! notifications.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osprofiler::drivers::Driver;
use osprofiler::notification::Notification;
use osprofiler::{notifier, profiler, Error};

#[derive(Debug)]
struct RestartingStore {
    down: Arc<AtomicBool>,
    stored: Arc<AtomicUsize>,
}

impl Driver for RestartingStore {
    fn name(&self) -> &'static str {
        "restarting"
    }
    fn notify(&self, batch: &[Notification]) -> osprofiler::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::backend("restarting", "connection refused"));
        }
        self.stored.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn flush_waits_out_an_outage_shorter_than_its_timeout() {
    let down = Arc::new(AtomicBool::new(true));
    let stored = Arc::new(AtomicUsize::new(0));
    notifier::set(RestartingStore {
        down: down.clone(),
        stored: stored.clone(),
    });
    profiler::init("key", None, None);
    for _ in 0..100 {
        profiler::start("db", None);
        profiler::stop(None);
    }
    profiler::clean();

    let restart = {
        let down = down.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            down.store(false, Ordering::SeqCst);
        })
    };
    let began = Instant::now();
    notifier::flush(Duration::from_secs(20)).expect("flush waits for the store to return");
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "flush returned before the store came back: {:?}",
        began.elapsed()
    );
    restart.join().unwrap();
    assert_eq!(stored.load(Ordering::SeqCst), 200);
    let stats = notifier::stats();
    assert_eq!((stats.queued, stats.sent, stats.dropped), (0, 200, 0));
    assert!(stats.failed >= 1, "{stats:?}");

    // A flush that cannot succeed in time still returns at its deadline.
    down.store(true, Ordering::SeqCst);
    profiler::init("key", None, None);
    profiler::start("db", None);
    profiler::stop(None);
    profiler::clean();
    let began = Instant::now();
    let err = notifier::flush(Duration::from_millis(400)).unwrap_err();
    assert_eq!(err.remaining, 2);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}
