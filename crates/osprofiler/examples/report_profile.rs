//! A report build alone, for profilers (`perf record`, `valgrind
//! --tool=callgrind --toggle-collect='osprofiler::report::build*'`):
//! the events come from a file, so that their making stays out of the
//! profile, and the time printed is also this thread's CPU time (the
//! machine may be busy).
//!
//! ```text
//! cargo run --release -p osprofiler --example report_profile -- gen /tmp/ev.jsonl 1000000
//! cargo run --release -p osprofiler --example report_profile -- texts /tmp/ev.jsonl
//! cargo run --release -p osprofiler --example report_profile -- values /tmp/ev.jsonl
//! ```
//!
//! `gen` writes the trace of the `report/build` benchmark (chains of ten
//! nested `db` calls under one root), one JSON payload a line.

use std::time::Instant;

use serde_json::Value;

#[path = "../benches/support/report_events.rs"]
mod report_events;

use report_events::trace_events;

/// CPU time of this thread in ns.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: report_profile gen FILE N | texts FILE | values FILE";
    let (Some(mode), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if mode == "gen" {
        let n: usize = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
        let mut out = String::new();
        for event in trace_events(n) {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        std::fs::write(file, out).expect("cannot write the file");
        return;
    }
    let all = std::fs::read(file).expect("cannot read the file");
    let texts: Vec<Vec<u8>> = all
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    drop(all);
    let report = if mode == "values" {
        let values: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::from_slice(t).expect("not JSON"))
            .collect();
        drop(texts);
        let (wall, cpu) = (Instant::now(), cpu_ns());
        let report = osprofiler::report::build(values);
        eprintln!(
            "build (values): {:?}, CPU {} ms",
            wall.elapsed(),
            (cpu_ns() - cpu) / 1_000_000
        );
        report
    } else {
        let (wall, cpu) = (Instant::now(), cpu_ns());
        let report = osprofiler::report::build_from_json(texts);
        eprintln!(
            "build (texts): {:?}, CPU of this thread {} ms",
            wall.elapsed(),
            (cpu_ns() - cpu) / 1_000_000
        );
        report
    };
    let nodes = report.len();
    let wall = Instant::now();
    drop(report);
    eprintln!("{nodes} nodes; drop: {:?}", wall.elapsed());
}
