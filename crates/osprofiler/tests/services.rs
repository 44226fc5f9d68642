//! Two services in one process: each context's notifications reach the
//! driver of its own service, with that service's project/service names.

use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use osprofiler::profiler::{self, FutureExt};

#[test]
fn tagged_contexts_go_to_their_service_driver() {
    let api = MemoryDriver::with_identity(Some("demo"), Some("api"));
    let compute = MemoryDriver::with_identity(Some("demo"), Some("compute"));
    notifier::set(api.clone());
    let compute_tag = notifier::add_service(compute.clone()).unwrap();

    let p = profiler::init("key", None, None);
    profiler::start("wsgi", None);
    {
        // Work handed to the compute service continues the same trace.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let child = async {
            profiler::start("rpc", None);
            profiler::stop(None);
        };
        let forked = profiler::get().unwrap();
        runtime.block_on(
            async move {
                assert!(profiler::set_service(compute_tag));
                // A task spawned from compute's context stays compute's.
                child.in_current_profiler().await;
            }
            .in_profiler(&forked),
        );
    }
    profiler::stop(None);
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).unwrap();

    let names = |d: &MemoryDriver| {
        d.payloads()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["service"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&api),
        [
            ("wsgi-start".to_string(), "api".to_string()),
            ("wsgi-stop".into(), "api".into())
        ]
    );
    assert_eq!(
        names(&compute),
        [
            ("rpc-start".to_string(), "compute".to_string()),
            ("rpc-stop".into(), "compute".into())
        ]
    );
    // One trace across both.
    let wsgi_id = api.payloads()[0]["trace_id"].clone();
    assert_eq!(compute.payloads()[0]["parent_id"], wsgi_id);
    assert_eq!(
        compute.payloads()[0]["base_id"].as_str(),
        Some(p.base_id().as_str())
    );
    assert!(
        !profiler::set_service(compute_tag),
        "no profiler active any more"
    );
}
