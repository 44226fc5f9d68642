//! The README's quick start, synchronous code: `cargo run -p osprofiler --example quickstart`.

use osprofiler::drivers::MemoryDriver;
use osprofiler::profiler::{self, Trace};
use osprofiler::{notifier, web};
use serde_json::json;

fn main() {
    // Once, in main: where notifications go. The guard flushes on drop.
    let store = MemoryDriver::new();
    let flush = notifier::install(store.clone());

    // Per request: start a trace (the server middleware does this when a
    // request carries signed trace headers).
    profiler::init("SECRET_KEY", None, None);
    {
        let _wsgi = Trace::new(
            "wsgi",
            Some(json!({"request": {"path": "/servers", "method": "GET"}})),
        );
        let mut db = Trace::new(
            "db",
            Some(json!({"db": {"statement": "SELECT 1", "params": {}}})),
        );
        if let Err(e) = "not a number".parse::<u32>() {
            db.error(&e); // the stop carries {"etype", "message"}
        }
        drop(db);
        // Headers that continue this trace in the next service.
        let headers = web::get_trace_id_headers();
        println!("{} = {}", web::X_TRACE_HMAC, headers[web::X_TRACE_HMAC]);
    }
    profiler::clean();

    drop(flush);
    for payload in store.payloads() {
        println!("{}", payload["name"]);
    }
}
