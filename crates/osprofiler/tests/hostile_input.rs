//! Bounded CI run of the fuzz targets (`fuzz/`, issue #8 item 1): the same
//! target bodies on proptest inputs, plus the hostile inputs a byte fuzzer
//! is unlikely to produce (1 MB strings, long parent loops, many
//! duplicates). The long runs (1,000,000+ iterations each) are recorded in
//! `docs/reliability/fuzz-security.md`.

use osprofiler::report::ReportBuilder;
use proptest::prelude::*;
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../../fuzz/src/targets.rs"]
mod targets;

/// Cases per target; `PROPTEST_CASES` raises it for a longer local run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Fuzz-like input: a target's mode byte, then random bytes or mostly
/// printable text (what the parsers find interesting).
fn bytes(modes: u8) -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..600);
    let text = "[ -~\\n\\t\u{e9}]{0,600}".prop_map(String::into_bytes);
    (0..modes, prop_oneof![raw, text]).prop_map(|(mode, mut rest)| {
        rest.insert(0, mode);
        rest
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn headers(data in bytes(3)) {
        targets::headers(&data);
    }

    #[test]
    fn report_from_raw_and_generated_events(data in bytes(2)) {
        targets::report(&data);
    }

    #[test]
    fn report_from_json_arrays(events in proptest::collection::vec(event(), 0..40)) {
        let mut data = vec![0u8];
        data.extend(serde_json::to_vec(&events).unwrap());
        targets::report(&data);
    }

    #[test]
    fn ini_config(data in bytes(2)) {
        targets::config(&data);
    }

    #[test]
    fn ini_config_lines(lines in proptest::collection::vec(ini_line(), 0..20)) {
        let mut data = vec![0u8];
        data.extend(lines.join("\n").into_bytes());
        targets::config(&data);
    }

    #[cfg(feature = "messaging")]
    #[test]
    fn messaging_reader(data in bytes(3)) {
        targets::messaging(&data);
    }

    #[cfg(feature = "messaging")]
    #[test]
    fn messaging_bodies(body in message_body()) {
        let mut data = vec![0u8, 0, 0];
        data.extend(body.into_bytes());
        targets::messaging(&data);
    }
}

/// A stored event with each field valid, missing or of the wrong type.
fn event() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        Just(json!("b")),
        Just(json!("t1")),
        Just(json!("t2")),
        Just(json!(1)),
        Just(Value::Null)
    ];
    let name = prop_oneof![
        Just(json!("wsgi-start")),
        Just(json!("wsgi-stop")),
        Just(json!("db-stop")),
        Just(json!([]))
    ];
    let timestamp = prop_oneof![
        (0u32..60, 0u32..1_000_000)
            .prop_map(|(s, us)| json!(format!("2024-01-01T00:00:{s:02}.{us:06}"))),
        Just(json!("2024-02-30T00:00:00.000000")),
        Just(json!(17))
    ];
    (id.clone(), id, name, timestamp, any::<bool>()).prop_map(
        |(trace_id, parent_id, name, timestamp, with_info)| {
            let mut e = json!({"trace_id": trace_id, "parent_id": parent_id,
                               "name": name, "timestamp": timestamp, "base_id": "b"});
            if with_info {
                e["info"] = json!({"host": "h", "etype": "E"});
            }
            e
        },
    )
}

fn ini_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[profiler]".to_string()),
        Just("[DEFAULT]".to_string()),
        Just("[".to_string()),
        Just("[]".to_string()),
        Just(String::new()),
        "(enabled|hmac_keys|socket_timeout|es_scroll_size|trace_ttl_seconds) ?[=:] ?[ -~]{0,12}",
        "[ \\t][ -~]{0,20}",
        "[#;][ -~]{0,10}",
        "[ -~]{0,30}",
    ]
}

#[cfg(feature = "messaging")]
fn message_body() -> impl Strategy<Value = String> {
    let payload = prop_oneof![
        Just(json!({"base_id": "b", "name": "x-start"})),
        Just(json!({"base_id": "b", "info": {"__type__": "datetime", "__value__": "2024"}})),
        Just(json!({"base_id": "b", "info": {"__type__": "uuid", "__value__": {"hex": "g"}}})),
        Just(json!({"base_id": "c"})),
        Just(json!("b")),
        Just(json!(null)),
    ];
    let priority = prop_oneof![
        Just(json!("info")),
        Just(json!("INFO")),
        Just(json!("warn")),
        Just(json!(1))
    ];
    (payload, priority, any::<bool>(), any::<bool>()).prop_map(
        |(payload, priority, envelope, truncate)| {
            let bare = json!({"priority": priority, "payload": payload, "_unique_id": "u"});
            let mut text = if envelope {
                json!({"oslo.version": "2.0", "oslo.message": bare.to_string()}).to_string()
            } else {
                bare.to_string()
            };
            if truncate {
                text.truncate(text.len() / 2);
            }
            text
        },
    )
}

fn payload(trace_id: &str, parent_id: &str, name: &str, second: u32) -> Value {
    json!({"name": name, "base_id": "b", "trace_id": trace_id, "parent_id": parent_id,
           "timestamp": format!("2024-01-01T00:00:{second:02}.000000"),
           "info": {"host": "h"}, "project": "p", "service": "s"})
}

#[test]
fn one_megabyte_strings_in_every_field() {
    let big = "\u{e9}".repeat(512 * 1024);
    assert_eq!(big.len(), 1 << 20);
    let mut builder = ReportBuilder::new();
    let mut used = 0;
    for field in [
        "name",
        "trace_id",
        "parent_id",
        "timestamp",
        "project",
        "info",
    ] {
        let mut event = payload(&format!("t-{field}"), "b", "wsgi-start", 0);
        event[field] = json!(big);
        used += usize::from(builder.push(event));
    }
    let mut host = payload("t2", "b", "wsgi-stop", 1);
    host["info"]["host"] = json!(big);
    used += usize::from(builder.push(host));
    let report = builder.finish();
    // The 1 MB timestamp does not parse; every other event is used.
    assert_eq!((used, report.skipped()), (6, 1));
    targets::check_report(&report, used, 1);
    assert!(serde_json::to_string(&report).unwrap().len() > 5 << 20);
}

#[test]
fn headers_of_one_megabyte_are_refused_quickly() {
    let big = "A".repeat(1 << 20);
    let hmac = osprofiler::web::generate_hmac(big.as_bytes(), "k");
    let started = std::time::Instant::now();
    assert_eq!(
        osprofiler::web::signed_unpack(Some(&big), Some(&hmac), &["k"]),
        None
    );
    assert_eq!(
        osprofiler::web::signed_unpack(Some("eyJ9"), Some(&big), &["k"]),
        None
    );
    // Over the limit nothing is hashed or decoded.
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn long_parent_loop_duplicates_and_self_parents() {
    const N: usize = 50_000;
    let mut builder = ReportBuilder::new();
    // One loop through N elements: t0 <- t1 <- ... <- t(N-1) <- t0.
    for i in 0..N {
        let parent = format!("t{}", (i + N - 1) % N);
        assert!(builder.push(payload(&format!("t{i}"), &parent, "f-start", 0)));
    }
    // Each start again (a retried write), and an element its own parent.
    for i in 0..N {
        let parent = format!("t{}", (i + N - 1) % N);
        assert!(!builder.push(payload(&format!("t{i}"), &parent, "f-start", 0)));
    }
    assert!(builder.push(payload("self", "self", "g-start", 1)));
    let report = builder.finish();
    assert_eq!(report.len(), N + 1);
    assert_eq!(report.skipped(), N);
    assert_eq!(report.cycles_broken(), 2);
    targets::check_report(&report, N + 1, N);
    // The loop became one chain N deep; writing it must not overflow the
    // stack.
    let mut out = Vec::new();
    serde_json::to_writer(&mut out, &report).unwrap();
    assert!(out.len() > N * 100);
}

#[test]
fn corrupt_and_mistyped_events_are_counted() {
    let mut builder = ReportBuilder::new();
    let mut wrong_type = payload("t2", "b", "x-start", 0);
    wrong_type["trace_id"] = json!(2);
    let mut missing = payload("t3", "b", "x-start", 0);
    missing.as_object_mut().unwrap().remove("timestamp");
    let events = [
        payload("t1", "b", "x-start", 0),
        json!([1, 2]),
        json!("text"),
        json!({}),
        wrong_type,
        missing,
    ];
    let used: Vec<bool> = events.into_iter().map(|e| builder.push(e)).collect();
    assert_eq!(used, [true, false, false, false, false, false]);
    // A line the store returned that is not JSON at all.
    builder.count_malformed();
    let report = builder.finish();
    assert_eq!((report.len(), report.skipped()), (1, 6));
    targets::check_report(&report, 1, 6);
}
