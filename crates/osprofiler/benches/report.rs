//! Report building, the path of `osprofiler trace show`, with the CLI's
//! allocator (mimalloc): a report of a million events makes and frees
//! millions of small strings, and glibc's malloc spends more time on them
//! than the build itself (`examples/report_profile.rs` builds with glibc's).
//!
//! `cargo bench -p osprofiler --bench report`

use std::hint::black_box;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use osprofiler::report;

#[path = "support/report_events.rs"]
mod report_events;

use report_events::trace_events;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn reports(c: &mut Criterion) {
    let mut g = c.benchmark_group("report/build");
    g.sample_size(10);
    for n in [100_000_usize, 1_000_000] {
        let events = trace_events(n);
        g.throughput(Throughput::Elements(events.len() as u64));
        // The routines return the report: criterion drops it after the
        // clock stops, so these time the build alone.
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
