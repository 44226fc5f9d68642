//! Report building, the path of `osprofiler trace show`, with the CLI's
//! allocator (mimalloc): a report of a million events makes and frees
//! millions of small strings, and glibc's malloc spends more time on them
//! than the build itself (`examples/report_profile.rs` builds with glibc's).
//!
//! `cargo bench -p osprofiler --bench report`

use std::hint::black_box;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use osprofiler::notification::format_timestamp;
use osprofiler::report;
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn uuid(i: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i)
}

/// `n` payloads (n/2 elements) in chains of ten under one root, as Python
/// osprofiler stores them.
fn trace_events(n: usize) -> Vec<Value> {
    let base = uuid(0);
    let start_us = 1_700_000_000_000_000_i64;
    let payload = |name: &str, id: u64, parent: u64, at: i64| {
        json!({
            "name": name,
            "base_id": base,
            "trace_id": uuid(id),
            "parent_id": uuid(parent),
            "timestamp": format_timestamp(at),
            "info": {"host": "bench", "db": {"statement": "SELECT 1"}},
            "project": "bench",
            "service": "api",
        })
    };
    let mut events = Vec::with_capacity(n);
    let mut id = 1_u64;
    let mut clock = start_us;
    while events.len() + 20 <= n {
        let first = id;
        for depth in 0..10 {
            let parent = if depth == 0 { 0 } else { id - 1 };
            events.push(payload("db-start", id, parent, clock));
            clock += 3;
            id += 1;
        }
        for depth in (0..10).rev() {
            let this = first + depth;
            let parent = if depth == 0 { 0 } else { this - 1 };
            events.push(payload("db-stop", this, parent, clock));
            clock += 3;
        }
    }
    events
}

fn reports(c: &mut Criterion) {
    let mut g = c.benchmark_group("report/build");
    g.sample_size(10);
    for n in [100_000_usize, 1_000_000] {
        let events = trace_events(n);
        g.throughput(Throughput::Elements(events.len() as u64));
        // The routines return the report: criterion drops it after the
        // clock stops, so these time the build alone (dropping a report
        // of 1M events, which frees every payload, is ~0.5 s from texts
        // and several seconds from values).
        g.bench_function(format!("{}k_events", n / 1000), |b| {
            b.iter_batched(
                || events.clone(),
                |events| black_box(report::build(events)),
                BatchSize::LargeInput,
            )
        });
        // The same payloads as the stored texts Redis returns (the path of
        // `trace show`), including the Python-format output.
        let texts: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
        g.bench_function(format!("{}k_texts", n / 1000), |b| {
            b.iter_batched(
                || texts.clone(),
                |texts| black_box(report::build_from_json(texts)),
                BatchSize::LargeInput,
            )
        });
        if n <= 100_000 {
            let built = report::build_from_json(texts.iter().map(|t| t.as_slice()));
            g.bench_function(format!("{}k_python_json_out", n / 1000), |b| {
                let mut out = Vec::new();
                b.iter(|| {
                    out.clear();
                    built.write_python_json(&mut out).unwrap();
                    out.len()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, reports);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
