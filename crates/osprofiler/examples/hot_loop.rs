//! Runs N start/stop pairs inside one span, for profilers (callgrind, perf):
//! `cargo run --release --example hot_loop -- 1000000`

use osprofiler::drivers::Driver;
use osprofiler::notification::{Event, Notification};
use osprofiler::{notifier, profiler};

#[derive(Debug)]
struct Discard;

impl Driver for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }
    fn notify(&self, _: &[Notification]) -> osprofiler::Result<()> {
        Ok(())
    }
    fn notify_events(&self, _: &[Event]) -> osprofiler::Result<()> {
        Ok(())
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    notifier::configure(notifier::Options::default().capacity(usize::MAX / 2));
    notifier::set(Discard);
    profiler::init("key", None, None);
    profiler::start("outer", None);
    for _ in 0..n {
        profiler::start("span", None);
        profiler::stop(None);
    }
    profiler::stop(None);
    profiler::clean();
    notifier::flush(std::time::Duration::from_secs(60)).unwrap();
    println!("{:?}", notifier::stats());
}
