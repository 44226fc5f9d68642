//! Runs N requests through the tower layer with valid trace headers, for
//! profilers (callgrind, perf):
//! `cargo run --release --example traced_requests --features tower -- 100000`
//!
//! A second argument picks another case: `untraced` (no trace headers) or
//! `bare` (no headers and no layer, the baseline of `untraced`).

use std::convert::Infallible;

use http::{Request, Response};
use osprofiler::drivers::DiscardDriver;
use osprofiler::notifier;
use osprofiler::web::{self, TraceLayer};
use tower::{service_fn, Layer, Service, ServiceExt};

async fn hello(_: Request<()>) -> Result<Response<&'static str>, Infallible> {
    Ok(Response::new("hello"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mode = std::env::args().nth(2).unwrap_or_default();
    notifier::set(DiscardDriver);
    let base = "5e5b5a5a-0000-4000-8000-000000000001";
    let (info, hmac) = web::trace_headers(base, base, "SECRET_KEY").expect("headers");
    let mut layered = TraceLayer::new("SECRET_KEY").layer(service_fn(hello));
    let mut bare = service_fn(hello);
    for _ in 0..n {
        let mut request = Request::builder().uri("/hello");
        if mode.is_empty() {
            request = request
                .header("X-Trace-Info", info.as_str())
                .header("X-Trace-HMAC", hmac.as_str());
        }
        let request = request.body(()).expect("request");
        let response = futures_lite::future::block_on(async {
            match mode.as_str() {
                "bare" => bare.ready().await.expect("ready").call(request).await,
                _ => layered.ready().await.expect("ready").call(request).await,
            }
        });
        assert!(response.is_ok());
    }
    notifier::flush(std::time::Duration::from_secs(60)).expect("flush");
    println!("{:?}", notifier::stats());
}
