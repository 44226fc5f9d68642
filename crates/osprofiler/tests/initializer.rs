//! `init_from_conf` wires a service from its `[profiler]` options, and a
//! broken connection string never takes the service down.
#![cfg(all(feature = "sqlite", feature = "tower"))]

use std::time::Duration;

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::Driver;
use osprofiler::{init_from_conf, notifier, profiler, web};
use serial_test::serial;

fn ini(connection_string: &str) -> ProfilerConfig {
    ProfilerConfig::from_ini_str(&format!(
        "[profiler]\nenabled = true\nhmac_keys = k1, k2\nconnection_string = {connection_string}\ntrace_requests = True\n"
    ))
    .unwrap()
}

#[test]
#[serial]
fn init_from_conf_installs_the_driver_and_enables_the_middleware() {
    let dir = std::env::temp_dir().join(format!("osprofiler-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cs = format!("sqlite://{}", dir.join("traces.db").display());
    let conf = ini(&cs);
    let guard = init_from_conf(&conf, "nova", "api", Some("node-7"));
    assert_eq!(notifier::get().map(|d| d.name()), Some("sqlite"));

    let p = profiler::init("k2", None, None);
    profiler::start("wsgi", None);
    profiler::stop(None);
    profiler::clean();
    drop(guard); // flushes
    let store =
        osprofiler::drivers::get_driver(&cs, None, None, None, &ProfilerConfig::default()).unwrap();
    let events = store.get_events(&p.base_id()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["project"], "nova");
    assert_eq!(events[0]["service"], "api");
    assert_eq!(events[0]["info"]["host"], "node-7");

    // web::enable(hmac_keys) happened: a disabled layer now trusts k1/k2.
    use tower::{service_fn, Layer, ServiceExt};
    let (info, hmac) = web::trace_headers("b", "p", "k1").unwrap();
    let service = web::TraceLayer::new("").enabled(false).layer(service_fn(
        |_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(
                profiler::get().map(|p| p.base_id()),
            ))
        },
    ));
    let request = http::Request::builder()
        .header(web::X_TRACE_INFO, info)
        .header(web::X_TRACE_HMAC, hmac)
        .body(())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let response = runtime.block_on(service.oneshot(request)).unwrap();
    assert_eq!(response.into_body().as_deref(), Some("b"));
    web::reset_global();
    notifier::reset();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[serial]
fn unusable_connection_string_leaves_the_service_running_untraced() {
    let guard = init_from_conf(&ini("nosuchdriver://user:pw@host"), "nova", "api", None);
    assert!(notifier::get().is_none(), "no driver installed");
    // Traced code still runs.
    profiler::init("k1", None, None);
    profiler::start("x", None);
    profiler::stop(None);
    profiler::clean();
    drop(guard);
    assert!(notifier::flush(Duration::from_secs(1)).is_ok());
    web::reset_global();
}

#[test]
#[serial]
fn disabled_profiler_does_nothing() {
    let mut conf = ini("sqlite:///nonexistent/dir/traces.db");
    conf.enabled = false;
    let _guard = init_from_conf(&conf, "nova", "api", None);
    assert!(notifier::get().is_none());
}
