//! 1,000 concurrent traced requests on ONE thread: every trace's events
//! carry only its own base id and form a well-formed tree.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use osprofiler::profiler::{self, FutureExt, Trace};
use serde_json::{json, Value};

const REQUESTS: usize = 1_000;

/// One "request": init from its own ids, nested spans, awaits in between
/// (so the scheduler interleaves all requests), and a spawned child task.
async fn request(n: usize) -> String {
    let base = format!("00000000-0000-4000-8000-{n:012x}");
    profiler::init("key", Some(&base), None);
    {
        let _wsgi = Trace::new(
            "wsgi",
            Some(json!({"request": {"path": format!("/r/{n}")}})),
        );
        tokio::task::yield_now().await;
        for step in 0..3 {
            let _db = Trace::new(
                "db",
                Some(json!({"db": {"statement": format!("SELECT {step}")}})),
            );
            tokio::time::sleep(Duration::from_micros((n % 7) as u64)).await;
            tokio::task::yield_now().await;
        }
        // A child task continues the trace; it must land under `wsgi`.
        tokio::task::spawn_local(
            async move {
                let _rpc = Trace::new("rpc", None);
                tokio::task::yield_now().await;
            }
            .in_current_profiler(),
        )
        .await
        .unwrap();
        assert_eq!(
            profiler::get().unwrap().base_id(),
            base,
            "context mixed up after await"
        );
    }
    base
}

#[test]
fn concurrent_requests_on_one_thread_never_mix_stacks() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let bases: Vec<String> = local.block_on(&runtime, async {
        let handles: Vec<_> = (0..REQUESTS)
            .map(|n| tokio::task::spawn_local(profiler::scope(request(n))))
            .collect();
        let mut bases = Vec::new();
        for h in handles {
            bases.push(h.await.unwrap());
        }
        bases
    });
    // Nothing leaked into the thread's own context.
    assert!(profiler::get().is_none());
    notifier::flush(Duration::from_secs(30)).unwrap();

    let payloads = store.payloads();
    // wsgi + 3 db + rpc = 5 elements, 2 events each.
    assert_eq!(payloads.len(), REQUESTS * 10);
    let mut by_base: HashMap<String, Vec<Value>> = HashMap::new();
    for p in payloads {
        by_base
            .entry(p["base_id"].as_str().unwrap().to_string())
            .or_default()
            .push(p);
    }
    assert_eq!(by_base.len(), REQUESTS);
    for base in &bases {
        let events = &by_base[base];
        assert_well_formed(base, events);
    }
}

fn assert_well_formed(base: &str, events: &[Value]) {
    assert_eq!(events.len(), 10, "trace {base}");
    let mut starts = HashMap::new();
    let mut stops = HashSet::new();
    for e in events {
        let name = e["name"].as_str().unwrap();
        let trace_id = e["trace_id"].as_str().unwrap().to_string();
        let parent_id = e["parent_id"].as_str().unwrap().to_string();
        if let Some(point) = name.strip_suffix("-start") {
            assert!(starts
                .insert(trace_id, (point.to_string(), parent_id))
                .is_none());
        } else {
            assert!(stops.insert(trace_id));
        }
    }
    assert_eq!(starts.len(), 5);
    assert_eq!(
        stops,
        starts.keys().cloned().collect::<HashSet<_>>(),
        "every start has its stop"
    );
    let wsgi = starts
        .iter()
        .find(|(_, (n, _))| n == "wsgi")
        .map(|(id, (_, parent))| (id.clone(), parent.clone()))
        .unwrap();
    assert_eq!(wsgi.1, base, "wsgi is a child of the base id");
    for (point, parent) in starts.values() {
        if point != "wsgi" {
            assert_eq!(
                parent, &wsgi.0,
                "{point} is a child of wsgi in trace {base}"
            );
        }
    }
}
