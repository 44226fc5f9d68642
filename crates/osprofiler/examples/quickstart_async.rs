//! The README's quick start, async code: `cargo run -p osprofiler --example quickstart_async`.

use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use osprofiler::profiler::{self, FutureExt, Trace};

async fn handle_request(n: u32) {
    // The profiler belongs to this task, not to the thread.
    profiler::init("SECRET_KEY", None, None);
    let _wsgi = Trace::new(format!("request-{n}"), None);
    tokio::task::yield_now().await;
    // A spawned task continues the trace under `wsgi`.
    tokio::spawn(
        async {
            let _rpc = Trace::new("rpc", None);
        }
        .in_current_profiler(),
    )
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let store = MemoryDriver::new();
    let flush = notifier::install(store.clone());

    // Each request runs in a context of its own (`scope`), so concurrent
    // requests never share a trace.
    let requests: Vec<_> = (0..3)
        .map(|n| tokio::spawn(profiler::scope(handle_request(n))))
        .collect();
    for r in requests {
        r.await.unwrap();
    }

    drop(flush);
    println!("{} notifications", store.payloads().len());
}
