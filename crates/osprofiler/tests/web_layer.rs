//! The tower layer, case by case as upstream's `WsgiMiddleware` tests.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use osprofiler::profiler::{self, Trace};
use osprofiler::web::{self, TraceLayer};
use serde_json::{json, Map, Value};
use serial_test::serial;
use tower::{service_fn, Layer, ServiceExt};

/// What the handler saw: (base_id, parent_id, hmac_key) of the active
/// profiler, if any.
type Seen = Option<(String, String, String)>;

async fn handler(request: Request<()>) -> Result<Response<Seen>, Infallible> {
    tokio::task::yield_now().await;
    let seen = profiler::get().map(|p| (p.base_id(), p.parent_id(), p.hmac_key().to_string()));
    {
        let _db = Trace::new("db", Some(json!({"db": {"statement": "SELECT 1"}})));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = match request.uri().path() {
        "/boom" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    Ok(Response::builder().status(status).body(seen).unwrap())
}

fn packed(data: Value, key: &str) -> (String, String) {
    let map: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    let (info, hmac) = web::signed_pack(&map, Some(key));
    (info, hmac.unwrap())
}

fn request(path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method("POST").uri(path);
    builder = builder.header("a", "1").header("b", "2");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap()
}

async fn call(layer: TraceLayer, request: Request<()>) -> Response<Seen> {
    layer
        .layer(service_fn(handler))
        .oneshot(request)
        .await
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn valid_headers(key: &str) -> (String, String) {
    packed(json!({"base_id": "1", "parent_id": "2"}), key)
}

#[test]
#[serial]
fn disabled_layer_passes_through() {
    let (info, hmac) = valid_headers("secret");
    let response = rt().block_on(call(
        TraceLayer::new("secret").enabled(false),
        request("/", &[("X-Trace-Info", &info), ("X-Trace-HMAC", &hmac)]),
    ));
    assert_eq!(response.into_body(), None);
}

#[test]
#[serial]
fn requests_without_valid_headers_are_served_untraced() {
    let (info, hmac) = valid_headers("secret");
    let (list_info, list_hmac) = {
        let text = r#"[{"base_id": "1"}, {"parent_id": "2"}]"#;
        let info = base64_url(text);
        let hmac = web::generate_hmac(info.as_bytes(), "secret");
        (info, hmac)
    };
    let other_key_hmac = web::generate_hmac(info.as_bytes(), "other");
    let upper_hmac = hmac.to_uppercase();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no trace headers", vec![]),
        (
            "invalid trace headers",
            vec![("X-Trace-Info", "abc"), ("X-Trace-HMAC", "abc")],
        ),
        ("no HMAC", vec![("X-Trace-Info", &info)]),
        (
            "empty HMAC",
            vec![("X-Trace-Info", &info), ("X-Trace-HMAC", " ")],
        ),
        (
            "wrong HMAC",
            vec![("X-Trace-Info", &info), ("X-Trace-HMAC", "b")],
        ),
        (
            "HMAC of another key",
            vec![("X-Trace-Info", &info), ("X-Trace-HMAC", &other_key_hmac)],
        ),
        (
            "upper-case HMAC",
            vec![("X-Trace-Info", &info), ("X-Trace-HMAC", &upper_hmac)],
        ),
        (
            "invalid trace info (a list)",
            vec![("X-Trace-Info", &list_info), ("X-Trace-HMAC", &list_hmac)],
        ),
    ];
    let runtime = rt();
    for (case, headers) in cases {
        let response = runtime.block_on(call(TraceLayer::new("secret"), request("/", &headers)));
        assert_eq!(response.status(), 200, "{case}: never refused");
        assert_eq!(response.into_body(), None, "{case}: must not be traced");
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(text)
}

#[test]
#[serial]
fn key_passthrough_with_several_keys() {
    let runtime = rt();
    for (signing_key, keys) in [
        ("secret2", "secret1,secret2"),
        ("secret1", "secret1, secret2"),
    ] {
        let (info, hmac) = valid_headers(signing_key);
        let response = runtime.block_on(call(
            TraceLayer::new(keys),
            request("/", &[("X-Trace-Info", &info), ("X-Trace-HMAC", &hmac)]),
        ));
        assert_eq!(
            response.into_body(),
            Some(("1".into(), "2".into(), signing_key.into())),
            "keys {keys}"
        );
    }
}

#[test]
#[serial]
fn traced_request_records_wsgi_span_with_request_info() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let (info, hmac) = valid_headers("secret");
    let runtime = rt();
    let ok = runtime.block_on(call(
        TraceLayer::new("secret"),
        request(
            "/v2/servers%20x?limit=1",
            &[("X-Trace-Info", &info), ("X-Trace-HMAC", &hmac)],
        ),
    ));
    assert_eq!(ok.status(), 200);
    let boom = runtime.block_on(call(
        TraceLayer::new("secret"),
        request("/boom", &[("X-Trace-Info", &info), ("X-Trace-HMAC", &hmac)]),
    ));
    assert_eq!(boom.status(), 500);
    notifier::flush(Duration::from_secs(10)).unwrap();

    let payloads = store.payloads();
    let names: Vec<&str> = payloads
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "wsgi-start",
            "db-start",
            "db-stop",
            "wsgi-stop",
            "wsgi-start",
            "db-start",
            "db-stop",
            "wsgi-stop"
        ]
    );
    let wsgi_start = &payloads[0];
    assert_eq!(
        (
            wsgi_start["base_id"].as_str(),
            wsgi_start["parent_id"].as_str()
        ),
        (Some("1"), Some("2"))
    );
    let mut request_info = wsgi_start["info"].clone();
    request_info.as_object_mut().unwrap().remove("host");
    assert_eq!(
        request_info,
        json!({"request": {"path": "/v2/servers x", "query": "limit=1", "method": "POST", "scheme": "http"}})
    );
    // The handler's span is a child of wsgi.
    assert_eq!(payloads[1]["parent_id"], wsgi_start["trace_id"]);
    assert_eq!(payloads[3]["trace_id"], wsgi_start["trace_id"]);
    assert_eq!(payloads[3]["info"].get("etype"), None);
    // A 5xx closes wsgi with an error.
    assert_eq!(payloads[7]["info"]["etype"], "HTTPServerError");
    assert_eq!(payloads[7]["info"]["message"], "500 Internal Server Error");
    notifier::reset();
}

#[test]
#[serial]
fn dropped_request_future_still_closes_its_span() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let (info, hmac) = valid_headers("secret");
    let service = TraceLayer::new("secret").layer(service_fn(|_req: Request<()>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(()))
    }));
    rt().block_on(async {
        let outcome = tokio::time::timeout(
            Duration::from_millis(20),
            service.oneshot(request(
                "/",
                &[("X-Trace-Info", &info), ("X-Trace-HMAC", &hmac)],
            )),
        )
        .await;
        assert!(outcome.is_err(), "the handler never finishes");
    });
    notifier::flush(Duration::from_secs(10)).unwrap();
    let payloads = store.payloads();
    assert_eq!(payloads.len(), 2, "{:?} {payloads:?}", notifier::stats());
    assert_eq!(payloads[1]["name"], "wsgi-stop");
    assert_eq!(payloads[1]["info"]["etype"], "Cancelled");
    notifier::reset();
}

#[test]
#[serial]
fn global_disable_and_enable_override_the_layer() {
    let runtime = rt();
    let (info, hmac) = valid_headers("super_secret_key2");
    let headers = [
        ("X-Trace-Info", info.as_str()),
        ("X-Trace-HMAC", hmac.as_str()),
    ];

    web::disable();
    let response = runtime.block_on(call(
        TraceLayer::new("super_secret_key2"),
        request("/", &headers),
    ));
    assert_eq!(response.into_body(), None, "disabled globally");

    web::enable("super_secret_key1,super_secret_key2");
    let response = runtime.block_on(call(
        TraceLayer::new("").enabled(false),
        request("/", &headers),
    ));
    assert_eq!(
        response.into_body(),
        Some(("1".into(), "2".into(), "super_secret_key2".into())),
        "enabled globally with its keys"
    );

    web::reset_global();
    let response = runtime.block_on(call(
        TraceLayer::new("").enabled(false),
        request("/", &headers),
    ));
    assert_eq!(
        response.into_body(),
        None,
        "back to the layer's own setting"
    );
}
