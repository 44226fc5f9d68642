//! The OTLP driver against the official OTLP definitions and upstream's own
//! OTLP driver: the same notifications, sent through both, must give the
//! same spans (ids, parents, kinds, names, attributes, events, resource and
//! scope), clock readings aside.
//!
//! The referee is `.venv` (scripts/python-env) with osprofiler 4.4.0,
//! opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http and grpcio; a
//! missing one fails these tests.
#![cfg(feature = "otlp")]

mod common {
    pub mod otlp;
    pub mod python;
}

use std::sync::Arc;
use std::time::Duration;

use common::otlp::{self, Receiver};
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver, OtlpDriver};
use osprofiler::notification::{format_timestamp, Notification};
use osprofiler::profiler::{self, Id, Trace};
use osprofiler::{notifier, web};
use serde_json::{json, Value};
use serial_test::serial;

/// Builds the notifications of one trace as the profiler would.
struct Script {
    base: String,
    stack: Vec<(String, String)>,
    clock: i64,
    out: Vec<Notification>,
}

impl Script {
    fn new() -> Script {
        let base = Id::random().to_string();
        Script {
            stack: vec![(String::new(), base.clone())],
            base,
            clock: 1_780_000_000_000_000,
            out: Vec::new(),
        }
    }

    fn emit(&mut self, name: String, trace: &str, parent: &str, info: Value) {
        self.clock += 1_000;
        let mut info = info.as_object().cloned().unwrap_or_default();
        info.insert("host".into(), "node1".into());
        self.out.push(Notification {
            name,
            base_id: self.base.clone(),
            trace_id: trace.into(),
            parent_id: parent.into(),
            timestamp: format_timestamp(self.clock),
            info: Some(info),
        });
    }

    fn start(&mut self, name: &str, info: Value) -> &mut Script {
        let id = Id::random().to_string();
        let parent = self.stack.last().unwrap().1.clone();
        self.emit(format!("{name}-start"), &id, &parent, info);
        self.stack.push((name.into(), id));
        self
    }

    fn stop(&mut self, info: Value) -> &mut Script {
        let (name, id) = self.stack.pop().unwrap();
        let parent = self.stack.last().unwrap().1.clone();
        self.emit(format!("{name}-stop"), &id, &parent, info);
        self
    }
}

/// A request with every kind of element upstream's driver knows.
fn rich_trace() -> Vec<Notification> {
    let mut s = Script::new();
    s.start(
        "wsgi",
        json!({"request": {"path": "/v2.1/servers", "query": "limit=1", "method": "GET", "scheme": "http"}}),
    );
    s.start(
        "db",
        json!({"db": {"statement": "SELECT * FROM instances WHERE id = %s",
            "params": {"id": [1, "a", 2.5, null, true], "é": "\u{1F600}"}}}),
    )
    .stop(json!({"db": {"result": "[(1,)]"}}));
    s.start(
        "db",
        json!({"db": {"statement": "update x set y = 1", "params": []}}),
    )
    .stop(
        json!({"etype": "OperationalError", "message": "database is locked",
            "db": {"original_exception": "x", "chained_exception": null}}),
    );
    s.start(
        "http",
        json!({"requests": {"method": "GET", "query": "", "path": "/v2/images",
            "hostname": "glance", "port": 9292, "scheme": "http"}}),
    )
    .stop(json!({"requests": {"status_code": 200}}));
    s.start(
        "https",
        json!({"requests": {"method": "POST", "query": "a=1", "path": "/",
            "hostname": null, "port": "", "scheme": "https"}}),
    )
    .stop(json!({"etype": "ConnectionError", "message": "refused"}));
    s.start(
        "driver",
        json!({"function": {"name": "nova.virt.driver.spawn", "args": "(1,)", "kwargs": "{'a': 2}"}}),
    );
    s.start(
        "compute_api",
        json!({"function": {"name": "nova.compute.api.get", "kwargs": "{}"}}),
    )
    .stop(json!({"function": {"result": "None"}}));
    s.start("rpc", json!({})).stop(json!({}));
    s.stop(json!({"function": {"result": 42}}));
    s.start(
        "vif",
        json!({"function": {"name": "x", "args": "()", "kwargs": "{}"}, "meta": {"a": [1, {"b": false}]}}),
    )
    .stop(json!({"function": {"result": ""}}));
    s.stop(json!({}));
    s.out
}

fn driver(connection_string: &str, project: &str, service: &str) -> Arc<OtlpDriver> {
    Arc::new(
        OtlpDriver::new(
            connection_string,
            Some(project),
            Some(service),
            &ProfilerConfig::default(),
        )
        .unwrap(),
    )
}

/// Sends `notifications` in uneven batches, so starts wait for their stops
/// across calls.
fn notify_in_batches(driver: &dyn Driver, notifications: &[Notification]) {
    let mut rest = notifications;
    for size in [5, 1, 7] {
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        driver.notify(batch).unwrap();
        rest = tail;
    }
    driver.notify(rest).unwrap();
}

fn assert_same_spans(ours: &[Value], theirs: &[Value]) {
    let (ours, theirs) = (otlp::timeless(ours), otlp::timeless(theirs));
    assert_eq!(ours.len(), theirs.len(), "span counts differ");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            a,
            b,
            "span differs from upstream's:\nours:     {}\nupstream: {}",
            serde_json::to_string_pretty(a).unwrap(),
            serde_json::to_string_pretty(b).unwrap()
        );
    }
}

/// Each span's times are its notifications' timestamps.
fn assert_payload_times(spans: &[Value], notifications: &[Notification]) {
    for span in spans {
        let id = span["spanId"].as_str().unwrap();
        let of = |suffix: &str| {
            notifications
                .iter()
                .find(|n| {
                    n.name.ends_with(suffix)
                        && web::otel_span_id(&n.trace_id) == u64::from_str_radix(id, 16).unwrap()
                })
                .unwrap_or_else(|| panic!("no {suffix} for span {id}"))
        };
        assert_eq!(
            span["startTimeUnixNano"],
            otlp::nanos(&of("-start").timestamp)
        );
        let stop = otlp::nanos(&of("-stop").timestamp);
        assert_eq!(span["endTimeUnixNano"], stop);
        for event in span["events"].as_array().into_iter().flatten() {
            assert_eq!(event["timeUnixNano"], stop);
        }
    }
}

#[test]
fn http_export_matches_upstreams_driver() {
    let notifications = rich_trace();
    let receiver = Receiver::start();
    let ours = driver(&receiver.connection_string(), "nova", "api");
    notify_in_batches(&*ours, &notifications);

    let captured = receiver.captured();
    assert!(!captured.is_empty());
    for c in &captured {
        assert_eq!(c.path, "/v1/traces");
        assert_eq!(c.content_type, "application/x-protobuf");
    }
    let our_spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    let their_spans = otlp::spans(&otlp::upstream(
        Some("nova"),
        Some("api"),
        None,
        &notifications,
    ));
    assert_eq!(our_spans.len(), notifications.len() / 2);
    assert_same_spans(&our_spans, &their_spans);
    assert_payload_times(&our_spans, &notifications);

    // A few facts spelled out, beyond "same as upstream".
    let base = &notifications[0].base_id;
    let trace_id = format!("{:032x}", profiler::uuid_to_int128(base));
    assert!(our_spans.iter().all(|s| s["traceId"] == trace_id.as_str()));
    let names: Vec<&str> = our_spans
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for want in [
        "WSGI_GET_/v2.1/servers",
        "SQL_SELECT",
        "SQL_UPDATE",
        "REQUESTS_GET_glance",
        "drive",
        "rpc",
        "vif",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let root = our_spans
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .unwrap();
    assert!(root.get("parentSpanId").is_none());
    assert_eq!(
        root["resource"]["attributes"][0]["value"]["stringValue"],
        "nova-api"
    );
    let stats = ours.stats();
    assert_eq!((stats.open, stats.exported, stats.orphan_stops), (0, 9, 0));
}

#[test]
fn get_driver_knows_the_otlp_schemes() {
    let conf = ProfilerConfig::default();
    let d = get_driver("otlp://127.0.0.1:4318", Some("p"), Some("s"), None, &conf).unwrap();
    assert_eq!(d.name(), "otlp");
    let err = d.list_traces(&[]).unwrap_err().to_string();
    assert!(err.contains("not supported"), "{err}");
    assert!(d.get_events("x").is_err());
    let grpc = get_driver("otlp+grpc://127.0.0.1:4317", None, None, None, &conf);
    if cfg!(feature = "otlp-grpc") {
        assert_eq!(grpc.unwrap().name(), "otlp");
    } else {
        let err = grpc.unwrap_err().to_string();
        assert!(err.contains("otlp-grpc"), "{err}");
    }
    let err = get_driver("otlp://", None, None, None, &conf).unwrap_err();
    assert!(err.to_string().contains("no host"), "{err}");
}

#[test]
fn service_name_prefix_and_missing_service_match_upstream() {
    let mut s = Script::new();
    s.start(
        "wsgi",
        json!({"request": {"path": "/", "query": "", "method": "HEAD", "scheme": "https"}}),
    );
    s.start(
        "db",
        json!({"db": {"statement": " leading space", "params": null}}),
    )
    .stop(json!({}));
    s.stop(json!({}));
    let notifications = s.out;
    let receiver = Receiver::start();
    let conf = ProfilerConfig::default().with_service_name_prefix("region1");
    let ours = OtlpDriver::new(&receiver.connection_string(), Some("glance"), None, &conf).unwrap();
    assert_eq!(ours.service_name(), "region1-glance-None");
    ours.notify(&notifications).unwrap();
    let our_spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    let their_spans = otlp::spans(&otlp::upstream(
        Some("glance"),
        None,
        Some("region1"),
        &notifications,
    ));
    assert_same_spans(&our_spans, &their_spans);
}

#[test]
fn retryable_failures_are_retried_without_loss_or_duplicates() {
    let notifications = rich_trace();
    let receiver = Receiver::start();
    let ours = driver(&receiver.connection_string(), "nova", "api");
    let (first, second) = notifications.split_at(6);
    ours.notify(first).unwrap();
    // The collector is overloaded: the notifier would retry the batch.
    receiver.answer_next(&[503, 429]);
    assert!(ours.notify(second).is_err());
    assert!(ours.notify(second).is_err());
    ours.notify(second).unwrap();
    let stats = ours.stats();
    assert_eq!(
        (stats.failed_exports, stats.exported, stats.open),
        (2, 9, 0)
    );
    let statuses: Vec<u16> = receiver.captured().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 503, 429, 200]);
    let our_spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    assert_eq!(our_spans.len(), 9, "every span exactly once");
    let mut ids: Vec<&str> = our_spans
        .iter()
        .map(|s| s["spanId"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 9);

    // A refusal is final: dropped and counted, not retried.
    receiver.answer_next(&[400]);
    let again = rich_trace();
    ours.notify(&again).unwrap();
    let stats = ours.stats();
    assert_eq!((stats.rejected, stats.exported), (9, 9));
}

#[test]
fn unmatched_stops_and_stale_starts_are_counted() {
    let receiver = Receiver::start();
    let ours = Arc::new(
        OtlpDriver::new(
            &receiver.connection_string(),
            Some("nova"),
            Some("api"),
            &ProfilerConfig::default(),
        )
        .unwrap()
        .with_max_open_spans(2)
        .with_open_span_timeout(Duration::from_millis(200)),
    );
    let mut s = Script::new();
    s.start("a", json!({}))
        .start("b", json!({}))
        .start("c", json!({}));
    // Three starts, room for two: the oldest goes out unfinished.
    ours.notify(&s.out).unwrap();
    assert_eq!((ours.stats().open, ours.stats().unfinished), (2, 1));
    // Its stop comes later: an orphan.
    s.stop(json!({})).stop(json!({})).stop(json!({}));
    let stops = s.out[3..].to_vec();
    ours.notify(&stops[2..]).unwrap();
    assert_eq!(ours.stats().orphan_stops, 1);
    // The others time out.
    std::thread::sleep(Duration::from_millis(250));
    ours.notify(&[]).unwrap();
    let stats = ours.stats();
    assert_eq!((stats.open, stats.unfinished, stats.exported), (0, 3, 3));
    let spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    for span in &spans {
        assert_eq!(span["startTimeUnixNano"], span["endTimeUnixNano"]);
        let last = span["attributes"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(
            last,
            json!({"key": "osprofiler.unfinished", "value": {"boolValue": true}})
        );
    }
}

/// Spans recorded through the notifier (batched by the collector thread)
/// reach the collector with the right tree.
#[test]
#[serial]
fn notifier_pipeline_exports_the_tree() {
    let receiver = Receiver::start();
    let ours = driver(&receiver.connection_string(), "nova", "compute");
    notifier::set_shared(ours.clone());
    let p = profiler::init("SECRET_KEY", None, None);
    {
        let _wsgi = Trace::new(
            "wsgi",
            Some(
                json!({"request": {"path": "/x", "query": "", "method": "PUT", "scheme": "http"}}),
            ),
        );
        let _db = Trace::new(
            "db",
            Some(json!({"db": {"statement": "select 1", "params": {}}})),
        );
    }
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).unwrap();
    notifier::reset();
    let spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    assert_eq!(spans.len(), 2);
    let wsgi = spans.iter().find(|s| s["name"] == "WSGI_PUT_/x").unwrap();
    let db = spans.iter().find(|s| s["name"] == "SQL_SELECT").unwrap();
    assert_eq!(db["parentSpanId"], wsgi["spanId"]);
    assert_eq!(
        wsgi["traceId"],
        format!("{:032x}", profiler::uuid_to_int128(&p.base_id())).as_str()
    );
    assert!(wsgi.get("parentSpanId").is_none());
}

/// Our HTTP client's `traceparent` names the span our OTLP export has for
/// that request, so an OpenTelemetry service downstream joins our trace
/// under it.
#[cfg(feature = "reqwest")]
#[test]
#[serial]
fn client_traceparent_names_the_exported_client_span() {
    use axum::routing::get;
    use osprofiler::http_client::TracingMiddleware;
    use std::sync::Mutex;

    let receiver = Receiver::start();
    let ours = driver(&receiver.connection_string(), "nova", "api");
    notifier::set_shared(ours.clone());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen_by_server = seen.clone();
    let base_id = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/v2/images",
            get(move |headers: http::HeaderMap| {
                let seen = seen_by_server.clone();
                async move {
                    if let Some(tp) = headers.get("traceparent") {
                        seen.lock().unwrap().push(tp.to_str().unwrap().to_string());
                    }
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new())
            .build();
        profiler::scope(async move {
            let p = profiler::init("SECRET_KEY", None, None);
            let _outer = Trace::new("compute_api", None);
            let response = client
                .get(format!("http://{addr}/v2/images?limit=1"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            p.base_id()
        })
        .await
    });
    notifier::flush(Duration::from_secs(10)).unwrap();
    notifier::reset();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one traceparent sent: {seen:?}");
    let tp = web::TraceParent::parse(&seen[0]).expect("a valid traceparent");
    assert!(tp.sampled());
    assert_eq!(tp.trace_id, profiler::uuid_to_int128(&base_id));

    let spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    let client_span = spans
        .iter()
        .find(|s| s["name"] == "REQUESTS_GET_127.0.0.1")
        .unwrap_or_else(|| panic!("no client span in {spans:#?}"));
    assert_eq!(client_span["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(
        client_span["traceId"],
        format!("{:032x}", tp.trace_id).as_str()
    );
    assert_eq!(
        client_span["spanId"],
        format!("{:016x}", tp.parent_id).as_str()
    );
}

/// With `AlwaysOn`, a request carrying only a `traceparent` starts a trace
/// whose exported `wsgi` span continues the caller's OpenTelemetry span.
#[cfg(feature = "tower")]
#[test]
#[serial]
fn always_on_server_span_continues_the_callers_span() {
    use tower::{service_fn, Layer, ServiceExt};

    let receiver = Receiver::start();
    let ours = driver(&receiver.connection_string(), "nova", "api");
    notifier::set_shared(ours.clone());
    web::reset_global();
    let layer =
        web::TraceLayer::new("SECRET_KEY").accept_traceparent(web::TraceparentPolicy::AlwaysOn);
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = layer.layer(service_fn(|_req: http::Request<()>| async {
            let _db = Trace::new(
                "db",
                Some(json!({"db": {"statement": "select 1", "params": []}})),
            );
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        let request = http::Request::builder()
            .uri("/v2.1/flavors")
            .header("traceparent", incoming)
            .body(())
            .unwrap();
        service.oneshot(request).await.unwrap();
    });
    notifier::flush(Duration::from_secs(10)).unwrap();
    notifier::reset();
    let spans = otlp::spans(&otlp::decode(&receiver.accepted_bodies()));
    assert_eq!(spans.len(), 2);
    let wsgi = spans
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .unwrap();
    let db = spans.iter().find(|s| s["name"] == "SQL_SELECT").unwrap();
    assert_eq!(wsgi["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(wsgi["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(wsgi["flags"], 0x300, "parent is remote");
    assert_eq!(db["parentSpanId"], wsgi["spanId"]);
    assert_eq!(db["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// OTLP/gRPC (not in upstream) gives the same spans, checked by a gRPC
/// server made with the official service definition (grpcio).
#[cfg(feature = "otlp-grpc")]
mod grpc {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

    use super::*;

    /// `otlp_referee.py grpc-server`, killed on drop.
    struct GrpcReferee {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
        port: u16,
    }

    impl GrpcReferee {
        fn start() -> GrpcReferee {
            GrpcReferee::start_on(0)
        }

        fn start_on(port: u16) -> GrpcReferee {
            let mut child = Command::new(common::python::python())
                .arg(common::python::script("otlp_referee.py"))
                .arg("grpc-server")
                .arg(port.to_string())
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("cannot start the Python gRPC referee");
            let stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let port = line
                .strip_prefix("PORT ")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "the gRPC referee did not start (is grpcio in .venv? run \
                         scripts/python-env); it said {line:?}"
                    )
                });
            GrpcReferee {
                child,
                stdin,
                stdout,
                port,
            }
        }

        fn command(&mut self, command: &str) -> String {
            writeln!(self.stdin, "{command}").unwrap();
            let mut line = String::new();
            self.stdout.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "the gRPC referee died");
            line
        }

        fn dump(&mut self) -> Value {
            serde_json::from_str(&self.command("dump")).unwrap()
        }
    }

    impl Drop for GrpcReferee {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn exports(dump: &Value) -> Vec<Value> {
        dump["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let agent = r["user_agent"].as_str().unwrap_or_default();
                assert!(agent.starts_with("osprofiler-rs/"), "{agent}");
                r["export"].clone()
            })
            .collect()
    }

    #[test]
    fn grpc_export_matches_upstreams_spans() {
        let notifications = rich_trace();
        let mut referee = GrpcReferee::start();
        let ours = driver(
            &format!("otlp+grpc://127.0.0.1:{}", referee.port),
            "nova",
            "api",
        );
        notify_in_batches(&*ours, &notifications);
        let our_spans = otlp::spans(&exports(&referee.dump()));
        let their_spans = otlp::spans(&otlp::upstream(
            Some("nova"),
            Some("api"),
            None,
            &notifications,
        ));
        assert_eq!(our_spans.len(), 9);
        assert_same_spans(&our_spans, &their_spans);
        assert_payload_times(&our_spans, &notifications);
    }

    #[test]
    fn grpc_status_codes_follow_the_retry_rules() {
        let mut referee = GrpcReferee::start();
        let ours = driver(
            &format!("otlp+grpc://127.0.0.1:{}", referee.port),
            "nova",
            "api",
        );
        // UNAVAILABLE: retried by the notifier, exported once.
        assert_eq!(referee.command("fail 1 14").trim(), "OK");
        let trace = rich_trace();
        assert!(ours.notify(&trace).is_err());
        ours.notify(&trace).unwrap();
        let dump = referee.dump();
        assert_eq!(dump["failed"], 1);
        assert_eq!(otlp::spans(&exports(&dump)).len(), 9);
        // INVALID_ARGUMENT: final, dropped and counted.
        referee.command("fail 1 3");
        ours.notify(&rich_trace()).unwrap();
        let stats = ours.stats();
        assert_eq!(
            (stats.exported, stats.rejected, stats.failed_exports),
            (9, 9, 1)
        );
        // The connection survives refusals: later exports go through.
        ours.notify(&rich_trace()).unwrap();
        assert_eq!(ours.stats().exported, 18);
        assert_eq!(otlp::spans(&exports(&referee.dump())).len(), 18);
    }

    #[test]
    fn grpc_export_reconnects_after_the_collector_restarts() {
        let referee = GrpcReferee::start();
        let port = referee.port;
        let ours = driver(&format!("otlp+grpc://127.0.0.1:{port}"), "nova", "api");
        ours.notify(&rich_trace()).unwrap();
        drop(referee);
        // Down: retryable errors, nothing lost.
        let trace = rich_trace();
        assert!(ours.notify(&trace).is_err());
        assert!(ours.notify(&trace).is_err());
        assert_eq!(ours.stats().exported, 9);
        // Back on the same port: the retry reconnects and goes through.
        let mut referee = GrpcReferee::start_on(port);
        ours.notify(&trace).unwrap();
        assert_eq!(ours.stats().exported, 18);
        assert_eq!(otlp::spans(&exports(&referee.dump())).len(), 9);
    }

    /// The driver may be called (and dropped) from async code: it must not
    /// panic on its private runtime.
    #[test]
    fn grpc_driver_works_inside_a_runtime() {
        let mut referee = GrpcReferee::start();
        let ours = driver(
            &format!("otlp+grpc://127.0.0.1:{}", referee.port),
            "nova",
            "api",
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            ours.notify(&rich_trace()).unwrap();
            drop(ours);
        });
        assert_eq!(otlp::spans(&exports(&referee.dump())).len(), 9);
    }
}
