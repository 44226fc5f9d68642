//! Runs N start/stop pairs inside one span, for profilers (callgrind, perf):
//! `cargo run --release --example hot_loop -- 1000000`
//!
//! A second argument picks how each element is opened: `guard` (a
//! `profiler::Trace`) or `macro` (a `#[trace]` function) instead of
//! `profiler::start`/`stop`.

use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, profiler};

/// `#[trace]` on a function without arguments, as in the peers bench.
#[osprofiler::trace("span")]
#[inline(never)]
fn traced_fn() {}

/// The same element through a guard: compare the two functions' inclusive
/// costs.
#[inline(never)]
fn guard_fn() {
    let _span = profiler::Trace::new("span", None);
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mode = std::env::args().nth(2).unwrap_or_default();
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
    match mode.as_str() {
        "guard" => (0..n).for_each(|_| guard_fn()),
        "macro" => (0..n).for_each(|_| traced_fn()),
        _ => (0..n).for_each(|_| {
            profiler::start("span", None);
            profiler::stop(None);
        }),
    }
    profiler::stop(None);
    profiler::clean();
    notifier::flush(std::time::Duration::from_secs(60)).unwrap();
    println!("{:?}", notifier::stats());
}
