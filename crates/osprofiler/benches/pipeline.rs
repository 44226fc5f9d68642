//! Everything around the hot path: the tower layer and export to Redis
//! (report building is `benches/report.rs`).
//!
//! `cargo bench -p osprofiler --features tower,redis --bench pipeline`
//!
//! The Redis benchmarks use `redis://127.0.0.1:6379/15` (set
//! `OSPROFILER_BENCH_REDIS` to change it) and empty that database before
//! and after; they fail when the server does not answer. Besides the
//! criterion groups, an end-to-end export run prints
//! `export/redis/end_to_end: <events>/s` for `scripts/bench`
//! (`PIPELINE_EXPORT_SPANS` spans, 500,000 unless set; the notifier's
//! `export_batch` from `PIPELINE_EXPORT_BATCH` when set).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use http::{Request, Response};
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{DiscardDriver, Driver, RedisDriver};
use osprofiler::notification::{format_timestamp, Notification};
use osprofiler::web::{self, TraceLayer};
use osprofiler::{notifier, profiler};
use serde_json::json;
use tower::{service_fn, Layer, Service, ServiceExt};

fn uuid(i: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i)
}

fn hello_request(headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method("GET").uri("/hello");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap()
}

async fn hello(_: Request<()>) -> Result<Response<&'static str>, Infallible> {
    Ok(Response::new("hello"))
}

fn tower_layer(c: &mut Criterion) {
    notifier::set(DiscardDriver);
    let (info, hmac) = web::trace_headers(&uuid(1), &uuid(2), "SECRET_KEY").unwrap();
    let traced = [
        ("X-Trace-Info", info.as_str()),
        ("X-Trace-HMAC", hmac.as_str()),
    ];
    let mut g = c.benchmark_group("tower");
    let mut bare = service_fn(hello);
    g.bench_function("no_layer", |b| {
        b.iter(|| {
            futures_lite::future::block_on(async {
                bare.ready().await.unwrap().call(hello_request(&[])).await
            })
        })
    });
    let mut layered = TraceLayer::new("SECRET_KEY").layer(service_fn(hello));
    g.bench_function("layer/untraced", |b| {
        b.iter(|| {
            futures_lite::future::block_on(async {
                layered
                    .ready()
                    .await
                    .unwrap()
                    .call(hello_request(&[]))
                    .await
            })
        })
    });
    g.bench_function("layer/traced", |b| {
        b.iter(|| {
            futures_lite::future::block_on(async {
                layered
                    .ready()
                    .await
                    .unwrap()
                    .call(hello_request(&traced))
                    .await
            })
        })
    });
    // The traced case without the layer's work: the same request built.
    g.bench_function("no_layer/traced_request", |b| {
        b.iter(|| {
            futures_lite::future::block_on(async {
                bare.ready()
                    .await
                    .unwrap()
                    .call(hello_request(&traced))
                    .await
            })
        })
    });
    g.finish();
    let _ = notifier::flush(Duration::from_secs(10));
}

fn redis_url() -> String {
    std::env::var("OSPROFILER_BENCH_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/15".to_string())
}

fn flushdb(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return false;
    };
    redis::cmd("FLUSHDB").query::<()>(&mut conn).is_ok()
}

fn notifications(n: usize) -> Vec<Notification> {
    let base = uuid(0);
    (0..n as u64)
        .map(|i| Notification {
            name: if i % 2 == 0 { "db-start" } else { "db-stop" }.to_string(),
            base_id: base.clone(),
            trace_id: uuid(i / 2 + 1),
            parent_id: base.clone(),
            timestamp: format_timestamp(1_700_000_000_000_000 + i as i64),
            info: json!({"host": "bench"}).as_object().cloned(),
        })
        .collect()
}

fn redis_export(c: &mut Criterion) {
    let url = redis_url();
    assert!(
        flushdb(&url),
        "export/redis: no Redis answers at {url} (start it with scripts/services)"
    );
    let driver = RedisDriver::new(&url, Some("bench"), Some("api"), &ProfilerConfig::default())
        .expect("redis driver");
    let batch = notifications(1_000);
    let mut g = c.benchmark_group("export/redis");
    g.sample_size(20);
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("driver_notify_1000", |b| {
        b.iter(|| driver.notify(&batch).expect("redis notify"))
    });
    g.finish();
    flushdb(&url);
}

/// Spans recorded on this thread and exported by the collector to Redis:
/// events per second from the first start to the end of the flush. The
/// same loop exported to a driver that discards runs first, in the same
/// conditions (same core, same buffer), for the caller's cost without I/O.
fn redis_end_to_end() {
    let url = redis_url();
    assert!(flushdb(&url), "export/redis: no Redis answers at {url}");
    let redis: Arc<dyn Driver> = Arc::new(
        RedisDriver::new(&url, Some("bench"), Some("api"), &ProfilerConfig::default())
            .expect("redis driver"),
    );
    let discard: Arc<dyn Driver> = Arc::new(DiscardDriver);
    configure();
    export_end_to_end("discard", discard.clone());
    export_end_to_end("redis", redis.clone());
    paced(
        "paced",
        &[("discard", discard.clone()), ("redis", redis.clone())],
    );
    // The same again with the collector on the other core, as on a server
    // with a core to spare: what the caller thread itself pays for the
    // driver, apart from sharing its core's caches with the export.
    if split_cores() {
        paced("paced_own_core", &[("discard", discard), ("redis", redis)]);
    }
    notifier::reset();
    flushdb(&url);
}

/// The notifier for these runs: room for a whole saturating run.
fn configure() {
    let mut options = notifier::Options::default().capacity(4_000_000);
    if let Some(n) = std::env::var("PIPELINE_EXPORT_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        options = options.export_batch(n);
    }
    notifier::configure(options);
}

/// Spans per export run (`PIPELINE_EXPORT_SPANS`).
fn export_spans() -> u64 {
    std::env::var("PIPELINE_EXPORT_SPANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000)
}

/// Prints `export/<name>/end_to_end: <events>/s (...)` for one export run.
fn export_end_to_end(name: &str, driver: Arc<dyn Driver>) {
    notifier::set_shared(driver);
    let spans = export_spans();
    profiler::init("SECRET_KEY", None, None);
    let started = Instant::now();
    let cpu_started = thread_cpu_ns();
    let faults_started = thread_minor_faults();
    profiler::start("request", None);
    for _ in 0..spans {
        profiler::start(black_box("db"), None);
        profiler::stop(None);
    }
    let recorded = started.elapsed();
    let recorded_cpu = thread_cpu_ns().saturating_sub(cpu_started);
    let faults = thread_minor_faults().saturating_sub(faults_started);
    profiler::stop(None);
    profiler::clean();
    let flushed = notifier::flush(Duration::from_secs(300));
    let total = started.elapsed();
    let events = 2 * spans + 2;
    let stats = notifier::stats();
    println!(
        "export/{name}/end_to_end: {:.0} events/s ({} events in {:.3} s, caller thread {:.1} ns/event, caller thread CPU {:.1} ns/event, caller thread page faults {}, flush {:?}, dropped {})",
        events as f64 / total.as_secs_f64(),
        events,
        total.as_secs_f64(),
        recorded.as_nanos() as f64 / events as f64,
        recorded_cpu as f64 / events as f64,
        faults,
        flushed.map_err(|e| e.remaining),
        stats.dropped,
    );
}

/// Spans per burst of [`paced`].
const PACED_BURST: u64 = 5_000;

/// The same loop in bursts, each flushed before the next: the caller's CPU
/// time per event while the driver keeps up, as in a service whose export
/// is not its bottleneck. (In the loop above the caller outruns Redis, and
/// the backlog takes fresh buffers, whose first touch costs page faults.)
/// The drivers take turns, two bursts each, so that the machine's drift
/// over the run (large on shared cloud machines) falls on each alike.
fn paced(label: &str, drivers: &[(&str, Arc<dyn Driver>)]) {
    let bursts = export_spans().div_ceil(PACED_BURST);
    let mut cpu = vec![0; drivers.len()];
    let mut faults = vec![0; drivers.len()];
    for _ in 0..bursts {
        for (i, (_, driver)) in drivers.iter().enumerate() {
            notifier::set_shared(driver.clone());
            // A burst after the other driver's export would pay for what
            // that export did to the caches: one burst first, not counted.
            for counted in [false, true] {
                profiler::init("SECRET_KEY", None, None);
                profiler::start("request", None);
                let cpu_started = thread_cpu_ns();
                let faults_started = thread_minor_faults();
                for _ in 0..PACED_BURST {
                    profiler::start(black_box("db"), None);
                    profiler::stop(None);
                }
                if counted {
                    cpu[i] += thread_cpu_ns().saturating_sub(cpu_started);
                    faults[i] += thread_minor_faults().saturating_sub(faults_started);
                }
                profiler::stop(None);
                profiler::clean();
                // Waiting for the export is not the caller's cost.
                let _ = notifier::flush(Duration::from_secs(60));
            }
        }
    }
    let events = 2 * bursts * PACED_BURST;
    for (i, (name, _)) in drivers.iter().enumerate() {
        println!(
            "export/{name}/{label}: caller thread CPU {:.1} ns/event, caller thread page faults {} ({events} events in bursts of {PACED_BURST} spans, flushed between, counted after a burst of the same driver, taking turns with the other drivers)",
            cpu[i] as f64 / events as f64,
            faults[i],
        );
    }
}

/// Moves this thread to CPU 0 and the collector thread to CPU 1 (with
/// `taskset`, which may widen the mask the process was started with).
/// False, with a message, when either cannot be done.
fn split_cores() -> bool {
    let tid = |path: &str| -> Option<String> {
        let target = std::fs::read_link(path).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    };
    let collector = std::fs::read_dir("/proc/self/task").ok().and_then(|tasks| {
        tasks.flatten().find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            // The kernel keeps 15 bytes of a thread's name.
            "osprofiler-collector"
                .starts_with(comm.trim_end())
                .then(|| task.file_name().to_string_lossy().into_owned())
        })
    });
    let pin = |cpu: &str, tid: &str| {
        std::process::Command::new("taskset")
            .args(["-p", "-c", cpu, tid])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let (Some(caller), Some(collector)) = (tid("/proc/thread-self"), collector) else {
        println!("export/paced_own_core: skipped (no collector thread found in /proc)");
        return false;
    };
    let pinned = pin("0", &caller) && pin("1", &collector);
    if !pinned {
        println!("export/paced_own_core: skipped (taskset could not pin the threads)");
    }
    pinned
}

/// This thread's CPU time so far, in nanoseconds. On a core shared with
/// the collector, wall time also counts the collector's turns; this counts
/// the caller's own work. (`clock_gettime`: `/proc`'s figures advance only
/// at scheduler ticks, too coarse for the paced bursts.)
fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::now()
        .as_duration()
        .as_nanos()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// Page faults this thread has taken so far (0 when unknown): fresh
/// buffers cost the caller one per page.
fn thread_minor_faults() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

criterion_group!(benches, tower_layer, redis_export);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    redis_end_to_end();
}
