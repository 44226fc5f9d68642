//! Runs N start/stop pairs inside one span, for profilers (callgrind, perf):
//! `cargo run --release --example hot_loop -- 1000000`

use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, profiler};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // One context records every span: without a larger event budget, the
    // loop would measure the path of elements past the budget instead.
    notifier::configure(
        notifier::Options::default()
            .capacity(usize::MAX / 2)
            .max_trace_events(u32::MAX),
    );
    notifier::set(DiscardDriver);
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
