//! The server layer and incoming W3C `traceparent` headers: ignored by
//! default; with an opt-in policy, used only as documented in
//! `web::traceparent` (it is unsigned, so it never starts a trace unless
//! `AlwaysOn` says so, and never redirects a signed one).
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use osprofiler::drivers::MemoryDriver;
use osprofiler::profiler::{self, Trace};
use osprofiler::web::{self, TraceLayer, TraceParent, TraceparentPolicy};
use osprofiler::{notifier, web::otel_span_id};
use serde_json::{json, Map, Value};
use serial_test::serial;
use tower::{service_fn, Layer, ServiceExt};

const KEY: &str = "secret";
/// The W3C example header.
const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// A base id whose OpenTelemetry trace id is INCOMING's.
const BASE_OF_INCOMING: &str = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
const PARENT: &str = "11111111-2222-4333-8444-555555555555";

/// What the handler saw: (base_id, parent_id, hmac_key), if traced.
type Seen = Option<(String, String, String)>;

async fn handler(_request: Request<()>) -> Result<Response<Seen>, Infallible> {
    let seen = profiler::get().map(|p| (p.base_id(), p.parent_id(), p.hmac_key().to_string()));
    let _db = Trace::new("db", None);
    Ok(Response::new(seen))
}

fn signed(base_id: &str, parent_id: &str) -> (String, String) {
    let data: Map<String, Value> = json!({"base_id": base_id, "parent_id": parent_id})
        .as_object()
        .cloned()
        .unwrap();
    let (info, hmac) = web::signed_pack(&data, Some(KEY));
    (info, hmac.unwrap())
}

/// Serves one request through `layer`; returns what the handler saw and
/// the `wsgi-start` payload recorded.
fn serve(layer: TraceLayer, headers: &[(&str, &str)]) -> (Seen, Option<Value>) {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    web::reset_global();
    let mut builder = Request::builder().uri("/v2.1/servers");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime
        .block_on(layer.layer(service_fn(handler)).oneshot(request))
        .unwrap();
    notifier::flush(Duration::from_secs(5)).unwrap();
    notifier::reset();
    let start = store
        .payloads()
        .into_iter()
        .find(|p| p["name"] == "wsgi-start");
    (response.into_body(), start)
}

fn layer(policy: Option<TraceparentPolicy>) -> TraceLayer {
    match policy {
        None => TraceLayer::new(KEY),
        Some(policy) => TraceLayer::new(KEY).accept_traceparent(policy),
    }
}

#[test]
#[serial]
fn ignored_by_default() {
    for policy in [None, Some(TraceparentPolicy::Ignore)] {
        // Alone: no trace.
        let (seen, start) = serve(layer(policy), &[("traceparent", INCOMING)]);
        assert_eq!((seen, start), (None, None));
        // With signed headers: the signed trace, the header not recorded.
        let (info, hmac) = signed(BASE_OF_INCOMING, PARENT);
        let headers = [
            ("traceparent", INCOMING),
            ("x-trace-info", &info),
            ("x-trace-hmac", &hmac),
        ];
        let (seen, start) = serve(layer(policy), &headers);
        assert_eq!(
            seen,
            Some((BASE_OF_INCOMING.into(), PARENT.into(), KEY.into()))
        );
        let start = start.unwrap();
        assert!(start["info"].get("traceparent").is_none(), "{start}");
    }
}

#[test]
#[serial]
fn continue_trusted_refines_only_a_signed_trace_of_the_same_id() {
    let policy = Some(TraceparentPolicy::ContinueTrusted);
    // Unsigned: never starts a trace.
    assert_eq!(
        serve(layer(policy), &[("traceparent", INCOMING)]),
        (None, None)
    );
    // Signed, same trace: the osprofiler parent stays the signed one; the
    // header is kept for the OTLP export.
    let (info, hmac) = signed(BASE_OF_INCOMING, PARENT);
    let headers = [
        ("traceparent", INCOMING),
        ("x-trace-info", &info),
        ("x-trace-hmac", &hmac),
    ];
    let (seen, start) = serve(layer(policy), &headers);
    assert_eq!(
        seen,
        Some((BASE_OF_INCOMING.into(), PARENT.into(), KEY.into()))
    );
    let start = start.unwrap();
    assert_eq!(start["parent_id"], PARENT);
    assert_eq!(start["info"]["traceparent"], INCOMING);
    assert_eq!(start["info"]["request"]["path"], "/v2.1/servers");
    // Signed, another trace: ignored.
    let other = "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c";
    let (info, hmac) = signed(other, PARENT);
    let headers = [
        ("traceparent", INCOMING),
        ("x-trace-info", &info),
        ("x-trace-hmac", &hmac),
    ];
    let (seen, start) = serve(layer(policy), &headers);
    assert_eq!(seen.unwrap().0, other);
    assert!(start.unwrap()["info"].get("traceparent").is_none());
    // Signed with a bad HMAC plus a traceparent: untraced.
    let headers = [
        ("traceparent", INCOMING),
        ("x-trace-info", &info),
        ("x-trace-hmac", "00"),
    ];
    assert_eq!(serve(layer(policy), &headers), (None, None));
}

#[test]
#[serial]
fn always_on_starts_a_trace_from_a_valid_traceparent() {
    let policy = Some(TraceparentPolicy::AlwaysOn);
    let (seen, start) = serve(layer(policy), &[("traceparent", INCOMING)]);
    let (base, parent, key) = seen.expect("traced");
    assert_eq!(base, BASE_OF_INCOMING);
    assert_eq!(otel_span_id(&parent), 0x00f067aa0ba902b7);
    assert_eq!(key, KEY, "the first key signs the headers sent further");
    let start = start.unwrap();
    assert_eq!(start["base_id"], BASE_OF_INCOMING);
    assert_eq!(start["parent_id"], parent.as_str());
    assert_eq!(start["info"]["traceparent"], INCOMING);
    // Not sampled by the caller: traced all the same (always on).
    let unsampled = INCOMING.replace("-01", "-00");
    assert!(serve(layer(policy), &[("traceparent", &unsampled)])
        .0
        .is_some());
    // Signed headers still win when valid.
    let (info, hmac) = signed("0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c", PARENT);
    let headers = [
        ("traceparent", INCOMING),
        ("x-trace-info", &info),
        ("x-trace-hmac", &hmac),
    ];
    let (seen, _) = serve(layer(policy), &headers);
    assert_eq!(seen.unwrap().0, "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c");
    // Untrusted signed headers fall back to the traceparent.
    let headers = [
        ("traceparent", INCOMING),
        ("x-trace-info", &info),
        ("x-trace-hmac", "00"),
    ];
    assert_eq!(
        serve(layer(policy), &headers).0.unwrap().0,
        BASE_OF_INCOMING
    );
}

#[test]
#[serial]
fn always_on_refuses_invalid_or_repeated_headers() {
    let policy = Some(TraceparentPolicy::AlwaysOn);
    let upper = INCOMING.to_uppercase();
    let zero_trace = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
    let long_v0 = format!("{INCOMING}-extra");
    for bad in [
        "",
        "garbage",
        upper.as_str(),
        zero_trace.as_str(),
        long_v0.as_str(),
    ] {
        assert_eq!(
            serve(layer(policy), &[("traceparent", bad)]),
            (None, None),
            "{bad:?}"
        );
    }
    let twice = [("traceparent", INCOMING), ("traceparent", INCOMING)];
    assert_eq!(serve(layer(policy), &twice), (None, None));
    // A disabled layer ignores everything.
    let disabled = TraceLayer::new(KEY)
        .accept_traceparent(TraceparentPolicy::AlwaysOn)
        .enabled(false);
    assert_eq!(serve(disabled, &[("traceparent", INCOMING)]), (None, None));
}

#[test]
fn traceparent_round_trips_through_the_mapping() {
    let tp = TraceParent::parse(INCOMING).unwrap();
    assert_eq!(tp.base_id(), BASE_OF_INCOMING);
    assert_eq!(
        web::traceparent_for(&tp.base_id(), &tp.parent_element_id()).unwrap(),
        INCOMING
    );
}
