//! The same operation in osprofiler and its Rust peers, in one binary and
//! one run: open and close one span under an active trace, and the same
//! call with no trace active.
//!
//! `cargo bench -p osprofiler --bench peers`
//!
//! Each library gets a sink that discards what it is handed, so the
//! caller-thread figures (criterion) are the libraries' own cost. After the
//! criterion groups, a second pass runs a fixed number of spans per library
//! and reads the CPU time of every thread of the process (the collector
//! threads included) from `/proc/self/task/*/schedstat`, printing lines
//! `cpu_per_span/<library>: <ns>` for `scripts/bench`.
//!
//! - osprofiler: `profiler::start`/`stop` inside an open element, a driver
//!   whose `notify` returns at once.
//! - fastrace 0.7: `LocalSpan::enter_with_local_parent` under a root span
//!   set as local parent, a reporter that counts and drops the records.
//!   A root records at most 10,240 local spans (fastrace's span queue) and
//!   silently skips the rest, clock reads included; so the loops start a
//!   new root every [`FASTRACE_SPANS_PER_ROOT`] spans, and the bench
//!   prints how many spans the reporter received.
//! - tracing + `Registry`: `info_span!(..).entered()` with a registry as the
//!   global subscriber (no trace active: a span filtered out by level).
//! - OpenTelemetry SDK: `tracer.start` under an attached root span, batch
//!   processor with an exporter that drops the batch (no trace active:
//!   parent-based always-off sampler without a parent).
//! - floor: what any span must do, two clock reads and a random id.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, profiler};

/// Local spans under one fastrace root: below its span queue (10,240),
/// past which spans are not recorded.
const FASTRACE_SPANS_PER_ROOT: u64 = 10_000;

fn fastrace_spans_per_root() -> u64 {
    std::env::var("FASTRACE_SPANS_PER_ROOT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FASTRACE_SPANS_PER_ROOT)
}

/// Spans each peer's sink received, to show that every span was recorded.
static FASTRACE_REPORTED: AtomicU64 = AtomicU64::new(0);
static OTEL_EXPORTED: AtomicU64 = AtomicU64::new(0);

struct DiscardReporter;

impl fastrace::collector::Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        FASTRACE_REPORTED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        black_box(spans);
    }
}

/// Runs `spans` fastrace local spans, under a new root every
/// [`FASTRACE_SPANS_PER_ROOT`], as a service starts one per request.
fn fastrace_spans(spans: u64) {
    let mut left = spans;
    while left > 0 {
        let chunk = left.min(fastrace_spans_per_root());
        let root = fastrace::Span::root("outer", fastrace::collector::SpanContext::random());
        {
            let _parent = root.set_local_parent();
            for _ in 0..chunk {
                let _s = fastrace::local::LocalSpan::enter_with_local_parent(black_box("span"));
            }
        }
        drop(root);
        left -= chunk;
    }
}

/// Prints how many of `expected` spans (plus roots) fastrace reported.
fn print_fastrace_reported(expected: u64) {
    fastrace::flush();
    let reported = FASTRACE_REPORTED.swap(0, Ordering::Relaxed);
    eprintln!(
        "fastrace reporter received {reported} spans (roots included) for {expected} spans run"
    );
}

#[derive(Debug)]
struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        OTEL_EXPORTED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        black_box(batch);
        std::future::ready(Ok(()))
    }
}

/// Sums the CPU time of every thread of this process, in nanoseconds.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn otel_provider(
    sampler: opentelemetry_sdk::trace::Sampler,
) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    // A queue big enough that the benchmark loop does not just drop spans.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(1 << 20)
        .with_max_export_batch_size(4096)
        .build();
    let processor = BatchSpanProcessor::builder(DiscardExporter)
        .with_batch_config(config)
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .build()
}

/// `#[trace]` on a function without arguments: Python's `profiler.trace`
/// info (`function.name`, `args`, `kwargs`) is built for each call.
#[osprofiler::trace("span")]
#[inline(never)]
fn traced_fn() {}

/// The same function with a manual guard instead: what `#[trace]` is
/// compared with (a function call on both sides, as in `hot_loop`).
#[inline(never)]
fn guarded_fn() {
    let _t = profiler::Trace::new(black_box("span"), None);
}

fn setup_globals() {
    use tracing_subscriber::layer::SubscriberExt;
    // One context records every span: without a larger event budget, the
    // loop would measure the path of elements past the budget instead. The
    // queue keeps its default bound, as in a service: a loop that records
    // faster than the collector exports has the excess dropped (counted and
    // printed) instead of growing memory without end.
    notifier::configure(notifier::Options::default().max_trace_events(u32::MAX));
    notifier::set(DiscardDriver);
    fastrace::set_reporter(DiscardReporter, fastrace::collector::Config::default());
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

fn enabled(c: &mut Criterion) {
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
    setup_globals();
    let mut g = c.benchmark_group("span/enabled");

    profiler::init("key", None, None);
    profiler::start("outer", None);
    g.bench_function("osprofiler", |b| {
        b.iter(|| {
            profiler::start(black_box("span"), None);
            profiler::stop(None);
        })
    });
    g.bench_function("osprofiler_trace_guard", |b| b.iter(guarded_fn));
    g.bench_function("osprofiler_trace_macro", |b| b.iter(traced_fn));
    profiler::stop(None);
    profiler::clean();
    let _ = notifier::flush(Duration::from_secs(60));
    let stats = notifier::stats();
    eprintln!(
        "osprofiler queue while measured: sent {} dropped {} (bound {} events)",
        stats.sent,
        stats.dropped,
        notifier::Options::default().capacity
    );

    {
        let run = std::cell::Cell::new(0);
        g.bench_function("fastrace", |b| {
            b.iter_custom(|iters| {
                run.set(run.get() + iters);
                let start = Instant::now();
                fastrace_spans(iters);
                start.elapsed()
            })
        });
        print_fastrace_reported(run.get());
    }

    {
        let outer = tracing::info_span!("outer").entered();
        g.bench_function("tracing_registry", |b| {
            b.iter(|| {
                let _s = tracing::info_span!("span").entered();
            })
        });
        drop(outer);
    }

    {
        let provider = otel_provider(opentelemetry_sdk::trace::Sampler::AlwaysOn);
        let tracer = provider.tracer("bench");
        let root = tracer.start("outer");
        let _cx = opentelemetry::Context::current_with_span(root).attach();
        g.bench_function("opentelemetry_sdk", |b| {
            b.iter(|| {
                let _s = tracer.start(black_box("span"));
            })
        });
        drop(_cx);
        let _ = provider.shutdown();
    }

    g.bench_function("floor_instant_x2_random_id", |b| {
        b.iter(|| {
            let t0 = Instant::now();
            let id = osprofiler::profiler::Id::random();
            let t1 = Instant::now();
            black_box((t0, id, t1));
        })
    });
    g.bench_function("floor_tsc_x2_random_id", |b| {
        b.iter(|| {
            let t0 = minstant::Instant::now();
            let id = osprofiler::profiler::Id::random();
            let t1 = minstant::Instant::now();
            black_box((t0, id, t1));
        })
    });
    g.finish();
}

fn disabled(c: &mut Criterion) {
    use opentelemetry::trace::{Tracer, TracerProvider};
    let mut g = c.benchmark_group("span/no_trace_active");
    g.bench_function("osprofiler", |b| {
        b.iter(|| {
            profiler::start(black_box("span"), None);
            profiler::stop(None);
        })
    });
    g.bench_function("osprofiler_trace_guard", |b| {
        b.iter(|| {
            let _t = profiler::Trace::new(black_box("span"), None);
        })
    });
    g.bench_function("fastrace", |b| {
        b.iter(|| {
            let _s = fastrace::local::LocalSpan::enter_with_local_parent(black_box("span"));
        })
    });
    g.bench_function("tracing_registry", |b| {
        b.iter(|| {
            let _s = tracing::debug_span!("span").entered();
        })
    });
    {
        let provider = otel_provider(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::AlwaysOff,
        )));
        let tracer = provider.tracer("bench");
        g.bench_function("opentelemetry_sdk", |b| {
            b.iter(|| {
                let _s = tracer.start(black_box("span"));
            })
        });
        let _ = provider.shutdown();
    }
    g.finish();
}

/// CPU of all threads per span, collector threads included.
fn cpu_per_span(spans: u64) {
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
    let report = |name: &str, ns: u64| {
        println!("cpu_per_span/{name}: {:.1} ns", ns as f64 / spans as f64);
    };

    // Every span is exported here: no bound on the queue.
    notifier::configure(
        notifier::Options::default()
            .capacity(usize::MAX / 2)
            .max_trace_events(u32::MAX),
    );
    // Warm up the collector threads and thread-locals first.
    profiler::init("key", None, None);
    profiler::start("outer", None);
    for _ in 0..10_000 {
        profiler::start("span", None);
        profiler::stop(None);
    }
    let _ = notifier::flush(Duration::from_secs(60));
    let sent_before = notifier::stats().sent;
    let before = process_cpu_ns();
    for _ in 0..spans {
        profiler::start(black_box("span"), None);
        profiler::stop(None);
    }
    let _ = notifier::flush(Duration::from_secs(60));
    report("osprofiler", process_cpu_ns() - before);
    eprintln!(
        "osprofiler driver received {} notifications for {spans} spans",
        notifier::stats().sent - sent_before
    );
    profiler::stop(None);
    profiler::clean();
    let _ = notifier::flush(Duration::from_secs(60));

    {
        fastrace_spans(10_000);
        fastrace::flush();
        FASTRACE_REPORTED.store(0, Ordering::Relaxed);
        let before = process_cpu_ns();
        fastrace_spans(spans);
        fastrace::flush();
        report("fastrace", process_cpu_ns() - before);
        print_fastrace_reported(spans);
    }

    {
        let outer = tracing::info_span!("outer").entered();
        let before = process_cpu_ns();
        for _ in 0..spans {
            let _s = tracing::info_span!("span").entered();
        }
        report("tracing_registry", process_cpu_ns() - before);
        drop(outer);
    }

    {
        let provider = otel_provider(opentelemetry_sdk::trace::Sampler::AlwaysOn);
        let tracer = provider.tracer("bench");
        let root = tracer.start("outer");
        let cx = opentelemetry::Context::current_with_span(root).attach();
        for _ in 0..10_000 {
            let _s = tracer.start("span");
        }
        let _ = provider.force_flush();
        OTEL_EXPORTED.store(0, Ordering::Relaxed);
        let before = process_cpu_ns();
        for _ in 0..spans {
            let _s = tracer.start(black_box("span"));
        }
        let _ = provider.force_flush();
        report("opentelemetry_sdk", process_cpu_ns() - before);
        eprintln!(
            "opentelemetry exporter received {} of {spans} spans",
            OTEL_EXPORTED.load(Ordering::Relaxed)
        );
        drop(cx);
        let _ = provider.shutdown();
    }
}

criterion_group!(benches, enabled, disabled);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let spans = std::env::var("PEERS_CPU_SPANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if spans > 0 {
        cpu_per_span(spans);
    }
}
