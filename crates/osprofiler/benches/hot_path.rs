//! Caller-thread cost of start/stop pairs and of header signing.
//!
//! `cargo bench -p osprofiler --bench hot_path`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use osprofiler::drivers::{DiscardDriver, Driver};
use osprofiler::notification::Notification;
use osprofiler::{notifier, profiler, web};

/// Accepts and discards: the cost measured is ours, not a backend's.
/// Takes a second per batch, like a collector in trouble.
#[derive(Debug)]
struct SleepyDriver;

impl Driver for SleepyDriver {
    fn name(&self) -> &'static str {
        "sleepy"
    }
    fn notify(&self, _: &[Notification]) -> osprofiler::Result<()> {
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    }
}

fn pairs_inside_outer_span(c: &mut Criterion, id: &str, depth: usize) {
    profiler::init("key", None, None);
    profiler::start("outer", None);
    for _ in 1..depth {
        profiler::start("level", None);
    }
    c.bench_function(id, |b| {
        b.iter(|| {
            profiler::start(black_box("span"), None);
            profiler::stop(None);
        })
    });
    for _ in 0..depth {
        profiler::stop(None);
    }
    profiler::clean();
}

fn hot_path(c: &mut Criterion) {
    notifier::reset();
    // Each bench records all its spans in one context: past the default
    // event budget it would measure the path of unrecorded elements.
    notifier::configure(notifier::Options::default().max_trace_events(u32::MAX));
    c.bench_function("start_stop/no_trace_active", |b| {
        b.iter(|| {
            profiler::start(black_box("span"), None);
            profiler::stop(None);
        })
    });

    notifier::set(DiscardDriver);
    pairs_inside_outer_span(c, "start_stop/active/depth_1", 1);
    pairs_inside_outer_span(c, "start_stop/active/depth_10", 10);

    profiler::init("key", None, None);
    c.bench_function("trace_guard/active/top_level", |b| {
        b.iter(|| {
            let _t = profiler::Trace::new(black_box("span"), None);
        })
    });
    profiler::clean();

    notifier::set(SleepyDriver);
    pairs_inside_outer_span(c, "start_stop/active/sleepy_driver", 1);
    let stats = notifier::stats();
    eprintln!(
        "sleepy driver: queued {} sent {} dropped {} failed {}",
        stats.queued, stats.sent, stats.dropped, stats.failed
    );
    notifier::reset();
}

fn headers(c: &mut Criterion) {
    let (info, hmac) = web::trace_headers(
        "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "9d2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "SECRET_KEY",
    )
    .unwrap();
    c.bench_function("headers/sign", |b| {
        b.iter(|| {
            web::trace_headers(
                black_box("0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"),
                "9d2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
                "SECRET_KEY",
            )
        })
    });
    c.bench_function("headers/verify", |b| {
        b.iter(|| {
            web::signed_unpack(
                Some(black_box(info.as_str())),
                Some(hmac.as_str()),
                &["SECRET_KEY"],
            )
        })
    });
}

criterion_group!(benches, hot_path, headers);
criterion_main!(benches);
