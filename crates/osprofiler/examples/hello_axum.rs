//! A hello-world axum server for load generators (`scripts/bench` runs wrk
//! against it): `cargo run --release --features tower --example hello_axum
//! -- [--layer] [--work-ns N] [PORT]`.
//!
//! With `--layer` the app is wrapped in `web::TraceLayer` (key
//! `SECRET_KEY`) and notifications go to a driver that discards them, so
//! what wrk measures is the layer, not a backend. Runs on one worker
//! thread.
//!
//! With `--work-ns N` the handler busy-waits about N ns, without the
//! layer: a known cost per request, to see what wrk shows for it on the
//! same machine in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, web};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let layer = args.iter().any(|a| a == "--layer");
    let work_ns: u64 = args
        .iter()
        .position(|a| a == "--work-ns")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    let port: u16 = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--work-ns")
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(8089);
    let steps = steps_for(work_ns);
    let mut app = Router::new().route(
        "/",
        get(move || async move {
            spin(steps);
            "hello"
        }),
    );
    if layer {
        notifier::set(DiscardDriver);
        app = app.layer(web::TraceLayer::new("SECRET_KEY"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}

/// Busy work: `steps` turns of a loop the optimizer cannot remove. No clock
/// reads, which would cost more than the shortest waits.
fn spin(steps: u64) {
    let mut x = 0u64;
    for i in 0..steps {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

/// The loop turns that take about `nanos`, measured here (the fastest of a
/// few timings of a long loop, the least disturbed).
fn steps_for(nanos: u64) -> u64 {
    if nanos == 0 {
        return 0;
    }
    const PROBE: u64 = 10_000_000;
    let fastest = (0..5)
        .map(|_| {
            let start = Instant::now();
            spin(PROBE);
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_secs(1));
    let per_step = fastest.as_secs_f64() / PROBE as f64;
    (nanos as f64 * 1e-9 / per_step).round() as u64
}
