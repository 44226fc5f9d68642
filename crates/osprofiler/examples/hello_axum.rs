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
//!
//! With `--compare` each request goes, in turn, to one of four apps (see
//! `compared`: without the layer, with it, and through axum's
//! `Router::layer` with it and with a layer that does nothing), and the
//! server times each app's handling of the request (from the request as
//! hyper parsed it to the response). `GET /stats` answers the medians
//! since the last `/stats` and starts again. All the apps see the same
//! load at the same moment, so the layer's cost shows apart from the
//! machine's drift between runs, which is far larger than the layer on a
//! shared cloud machine.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use axum::routing::get;
use axum::Router;
use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, web};
use tower::Layer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let layer = args.iter().any(|a| a == "--layer");
    let compare = args.iter().any(|a| a == "--compare");
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
    if compare {
        notifier::set(DiscardDriver);
        app = in_turn(compared(app));
    } else if layer {
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

/// The apps that `--compare` takes turns between: the bare app, our
/// layer around it (as tower composes layers), and axum's
/// `Router::layer` with our layer and with one that does nothing (axum
/// wraps each route in a boxed service of its own: its cost, not ours).
fn compared(app: Router) -> Vec<(&'static str, AnyApp)> {
    let layer = || web::TraceLayer::new("SECRET_KEY");
    // `with_state` readies the routes' handlers, as `axum::serve` does for
    // each connection; a `Router` called as it is readies them per request.
    let ready = |router: Router| AnyApp::new(router.with_state(()));
    vec![
        ("bare", ready(app.clone())),
        (
            "layer",
            AnyApp::new(layer().layer(app.clone().with_state(()))),
        ),
        (
            "router_identity",
            ready(app.clone().layer(tower::layer::util::Identity::new())),
        ),
        ("router_layer", ready(app.layer(layer()))),
    ]
}

/// One of the compared apps, boxed alike so each pays the same for it.
type AnyApp = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The app of `--compare`: requests go to each of `apps` in turn, each
/// timed; `/stats` reports and resets the timings.
fn in_turn(apps: Vec<(&'static str, AnyApp)>) -> Router {
    let names: Vec<&'static str> = apps.iter().map(|(name, _)| *name).collect();
    let timings = Arc::new(Mutex::new(vec![Vec::new(); apps.len()]));
    let turn = Arc::new(AtomicU64::new(0));
    let service = tower::service_fn(move |request: Request<Body>| {
        let timings = timings.clone();
        let names = names.clone();
        let which = (turn.fetch_add(1, Ordering::Relaxed) % apps.len() as u64) as usize;
        let app = apps[which].1.clone();
        async move {
            if request.uri().path() == "/stats" {
                let fresh = vec![Vec::new(); names.len()];
                let mut timings = timings.lock().unwrap_or_else(|e| e.into_inner());
                let taken = std::mem::replace(&mut *timings, fresh);
                return Ok(Response::new(Body::from(stats(&names, &taken))));
            }
            let started = Instant::now();
            let response = tower::ServiceExt::oneshot(app, request).await;
            let nanos = u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX);
            timings.lock().unwrap_or_else(|e| e.into_inner())[which].push(nanos);
            response
        }
    });
    Router::new().fallback_service(service)
}

/// `compare: n=N bare_ns=B layer_ns=L ...`: the median time of each app.
fn stats(names: &[&str], timings: &[Vec<u32>]) -> String {
    fn median(samples: &[u32]) -> f64 {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => f64::from(sorted[n / 2]),
            n => (f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0,
        }
    }
    let n = timings.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = format!("compare: n={n}");
    for (name, samples) in names.iter().zip(timings) {
        out += &format!(" {name}_ns={:.1}", median(samples));
    }
    out + "\n"
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
