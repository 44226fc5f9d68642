//! `report::build` against Python osprofiler 4.4.0's `get_report`
//! (`_append_results` + `_parse_results`, as the Redis driver feeds them),
//! on traces recorded by the real Python profiler and on random traces, plus
//! garbage input that must never panic.

mod common {
    pub mod python;
}

use common::python;
use osprofiler::report::{self, Report};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The first place two JSON values differ, as a path, or `None`.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            if kx != ky {
                return Some(format!("{path}: keys {kx:?} != {ky:?}"));
            }
            x.iter()
                .find_map(|(k, v)| first_difference(v, &y[k], &format!("{path}.{k}")))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} elements != {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}

/// Sorts every `children` list by (`started`, JSON text), so siblings that
/// start in the same millisecond compare in any order.
fn canonical(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        if let Some(children) = v.get_mut("children").and_then(Value::as_array_mut) {
            children.iter_mut().for_each(walk);
            children.sort_by_cached_key(|c| (c["info"]["started"].as_i64(), c.to_string()));
        }
    }
    walk(&mut v);
    v
}

/// Asserts equal JSON, in Python's key order. Siblings are compared
/// strictly first (our sort is Python's stable sort over the same
/// first-seen order); only if that fails, order among equal starts is
/// ignored, and the strict failure is reported.
fn assert_same_report(name: &str, ours: &Value, python: &Value) {
    if let Some(diff) = first_difference(ours, python, "$") {
        let relaxed = first_difference(&canonical(ours.clone()), &canonical(python.clone()), "$");
        panic!("{name}: report differs from Python's at {diff} (ignoring sibling order among equal starts: {relaxed:?})");
    }
    // Key order too: serde_json keeps insertion order, as Python's dicts.
    assert_eq!(
        serde_json::to_string(ours).unwrap(),
        serde_json::to_string(python).unwrap(),
        "{name}: key order"
    );
}

fn python_reports(traces: &[Vec<Value>]) -> Vec<Value> {
    let requests: Vec<Value> = traces
        .iter()
        .map(|events| json!({ "events": events }))
        .collect();
    python::run_json_lines("report_referee.py", &["report"], &requests)
        .into_iter()
        .map(|mut answer| answer["report"].take())
        .collect()
}

#[test]
fn reports_of_traces_recorded_by_python_match_python() {
    let scenarios: Vec<Value> = python::run("report_referee.py", &["generate"], "")
        .lines()
        .map(|l| serde_json::from_str(l).expect("scenario JSON"))
        .collect();
    assert!(scenarios.len() >= 20, "only {} scenarios", scenarios.len());
    let traces: Vec<Vec<Value>> = scenarios
        .iter()
        .map(|s| s["events"].as_array().expect("events").clone())
        .collect();
    let expected = python_reports(&traces);
    let mut saw_error = false;
    for ((scenario, events), want) in scenarios.iter().zip(traces).zip(expected) {
        let name = scenario["name"].as_str().unwrap_or("?");
        let report = report::build(events.clone());
        assert_eq!(report.skipped(), 0, "{name}");
        let ours = report.to_value();
        saw_error |= ours.to_string().contains("\"exception\":\"ValueError\"");
        assert_same_report(name, &ours, &want);
    }
    assert!(saw_error, "the error scenario recorded no ValueError stop");
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Valid events of one random trace: random nesting, timestamps a few ms
/// apart (so ties are common), lost starts or stops, error stops, several
/// services, names with dashes and non-ASCII, shuffled storage order.
fn random_trace(rng: &mut Rng) -> Vec<Value> {
    let names = ["wsgi", "db", "rpc-call", "http", "ñame-x", "compute"];
    let base = format!("base-{}", rng.next());
    let nodes = rng.below(60) as usize;
    let mut ids: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let t0: i64 = 1_700_000_000_000_000 + rng.below(1_000_000_000) as i64;
    for i in 0..nodes {
        let trace_id = format!("t{i}-{}", rng.below(1000));
        let parent = if ids.is_empty() || rng.chance(15) {
            base.clone()
        } else {
            ids[rng.below(ids.len() as u64) as usize].clone()
        };
        let parent = if rng.chance(5) {
            "unknown-parent".to_string()
        } else {
            parent
        };
        let name = names[rng.below(names.len() as u64) as usize];
        let project = ["nova", "neutron", "glance"][rng.below(3) as usize];
        let start = t0 + rng.below(20_000) as i64;
        let stop = start + rng.below(5_000) as i64;
        let ts = |us: i64| osprofiler::notification::format_timestamp(us);
        let host = format!("host{}", rng.below(3));
        if !rng.chance(10) {
            events.push(
                json!({"name": format!("{name}-start"), "base_id": base, "trace_id": trace_id,
                "parent_id": parent, "timestamp": ts(start), "info": {"host": host, "n": i},
                "project": project, "service": "api"}),
            );
        }
        if !rng.chance(10) {
            let mut info = json!({"host": host});
            if rng.chance(20) {
                info["etype"] = json!("ValueError");
                info["message"] = json!("boom ✗");
            }
            events.push(
                json!({"name": format!("{name}-stop"), "base_id": base, "trace_id": trace_id,
                "parent_id": parent, "timestamp": ts(stop), "info": info,
                "project": project, "service": "worker"}),
            );
        }
        ids.push(trace_id);
    }
    for i in (1..events.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        events.swap(i, j);
    }
    events
}

#[test]
fn reports_of_random_traces_match_python() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let traces: Vec<Vec<Value>> = (0..300).map(|_| random_trace(&mut rng)).collect();
    let expected = python_reports(&traces);
    for (i, (events, want)) in traces.into_iter().zip(expected).enumerate() {
        let report = report::build(events);
        assert_eq!(report.skipped(), 0, "trace {i}");
        assert_same_report(&format!("random trace {i}"), &report.to_value(), &want);
    }
}

/// Every node exactly once in the tree, whatever the input.
fn assert_tree_complete(report: &Report) {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<_> = report.roots().collect();
    while let Some(node) = stack.pop() {
        assert!(
            seen.insert(node.trace_id().to_owned()),
            "{} twice",
            node.trace_id()
        );
        stack.extend(node.children());
    }
    assert_eq!(seen.len(), report.len());
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "d", "base"]).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => ".{0,4}".prop_map(Value::from),
    ]
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u32..3, 0u32..1_000_000).prop_map(|(s, us)| Value::from(format!("2024-02-29T23:59:5{s}.{us:06}"))),
        1 => "[0-9T:.-]{0,27}".prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn garbage() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,9}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["x-start", "x-stop", "y-start", "y-stop", "stop", "-", ""]).prop_map(Value::from),
        1 => garbage(),
    ];
    let info = prop_oneof![
        3 => prop::option::of("[a-z]{0,3}").prop_map(|etype| json!({"host": "h", "etype": etype})),
        1 => garbage(),
    ];
    let near_valid = (name, id(), id(), timestamp(), info, garbage()).prop_map(
        |(name, trace_id, parent_id, ts, info, project)| {
            json!({"name": name, "trace_id": trace_id, "parent_id": parent_id, "timestamp": ts,
                   "info": info, "project": project})
        },
    );
    prop_oneof![4 => near_valid, 1 => garbage()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics_and_keeps_every_node_once(events in prop::collection::vec(event(), 0..40)) {
        let total = events.len();
        let report = report::build(events);
        prop_assert!(report.skipped() <= total);
        assert_tree_complete(&report);
        let v = report.to_value();
        prop_assert_eq!(&v["info"]["name"], "total");
        let text = serde_json::to_string(&report).unwrap();
        prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }
}
