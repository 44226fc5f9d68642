//! The same profiler calls in Python osprofiler 4.4.0 and here produce the
//! same notification payloads: same names, info, key order and id
//! structure. Compared as JSON, ignoring `timestamp` (format checked) and
//! `info.host`, with generated ids matched by position through a bijection.
//!
//! Each scenario is a list of operations that both sides interpret (the
//! Python side is `tests/python/core_referee.py payloads`).

mod common {
    pub mod python;
}

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::python;
use osprofiler::drivers::MemoryDriver;
use osprofiler::notification::parse_timestamp;
use osprofiler::notifier;
use osprofiler::profiler::{self, Trace};
use serde_json::{json, Value};

/// The notifier is process-wide: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenarios() -> BTreeMap<&'static str, Value> {
    let init_1 = json!({"op": "init", "key": "key", "base_id": "1", "parent_id": "1"});
    BTreeMap::from([
        (
            "seed sequence",
            json!([
                init_1,
                {"op": "start", "name": "code block 1"},
                {"op": "start", "name": "code block 2"},
                {"op": "stop"},
                {"op": "start", "name": "code block 3"},
                {"op": "stop"},
                {"op": "stop"},
                // Unmatched: ignored by both.
                {"op": "stop"},
            ]),
        ),
        (
            "unicode info",
            json!([
                {"op": "init", "key": "clé ☃"},
                {"op": "start", "name": "数据库", "info": {
                    "db": {"statement": "SELECT 'é' FROM \"tåble\"", "params": {"emoji": "😀", "ctl": "a\tb\nc"}},
                    "list": [1, 2.5, null, true, "ü"],
                    "host": "overwritten by the profiler"
                }},
                {"op": "stop", "info": {"function": {"result": "✓ «done»"}}},
                {"op": "start", "name": "empty info", "info": {}},
                {"op": "stop", "info": {}},
            ]),
        ),
        (
            "nested traces",
            json!([
                {"op": "init", "key": "key", "base_id": "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"},
                {"op": "trace", "name": "wsgi", "info": {"request": {"path": "/servers", "query": "", "method": "GET", "scheme": "http"}}, "body": [
                    {"op": "trace", "name": "db", "info": {"db": {"statement": "SELECT 1", "params": {}}}, "body": []},
                    {"op": "trace", "name": "rpc", "body": [
                        {"op": "trace", "name": "db", "body": []},
                        {"op": "start", "name": "manual"},
                        {"op": "stop"},
                    ]},
                    {"op": "trace", "name": "http", "info": {"requests": {"method": "GET", "path": "/", "hostname": "h", "port": 80, "scheme": "http", "query": ""}}, "body": []},
                ]},
            ]),
        ),
        (
            "error stops",
            json!([
                {"op": "init", "key": "key", "base_id": "base", "parent_id": "parent"},
                {"op": "trace", "name": "wsgi", "body": [
                    {"op": "fail", "how": "guard", "name": "db", "message": "disk full ☹", "body": []},
                    {"op": "fail", "how": "traced", "name": "rpc", "info": {"function": {"name": "m.f"}}, "message": "timeout", "body": [
                        {"op": "trace", "name": "inner", "body": []},
                    ]},
                    {"op": "start", "name": "explicit"},
                    {"op": "stop", "info": {"etype": "BoomError", "message": "given by the caller"}},
                ]},
            ]),
        ),
        (
            "init and clean",
            json!([
                {"op": "start", "name": "before init: nothing"},
                {"op": "stop"},
                {"op": "init", "key": "key", "base_id": "first"},
                // A second init keeps the first profiler.
                {"op": "init", "key": "other", "base_id": "second", "parent_id": "second"},
                {"op": "start", "name": "a"},
                {"op": "stop"},
                {"op": "clean"},
                {"op": "start", "name": "after clean: nothing"},
                {"op": "stop"},
                {"op": "init", "key": "key", "base_id": "third", "parent_id": "third-parent"},
                {"op": "trace", "name": "b", "body": []},
            ]),
        ),
    ])
}

/// Python's payloads per scenario, computed once for all tests.
fn python_payloads(scenario: &str) -> Vec<Value> {
    static ANSWERS: OnceLock<HashMap<String, Vec<Value>>> = OnceLock::new();
    let answers = ANSWERS.get_or_init(|| {
        let requests: Vec<Value> = scenarios()
            .into_iter()
            .map(|(name, ops)| json!({"name": name, "ops": ops}))
            .collect();
        python::run_json_lines("core_referee.py", &["payloads"], &requests)
            .into_iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_string(),
                    a["payloads"].as_array().unwrap().clone(),
                )
            })
            .collect()
    });
    answers[scenario].clone()
}

/// The error the Rust side fails with (Python raises `BoomError`).
#[derive(Debug)]
struct BoomError(String);

impl fmt::Display for BoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn info(op: &Value) -> Option<Value> {
    op.get("info").filter(|i| !i.is_null()).cloned()
}

fn name(op: &Value) -> String {
    op["name"].as_str().unwrap().to_string()
}

fn run_ops(ops: &Value) {
    for op in ops.as_array().unwrap() {
        let body = op.get("body").unwrap_or(&Value::Null);
        match op["op"].as_str().unwrap() {
            "init" => {
                profiler::init(
                    op["key"].as_str().unwrap(),
                    op["base_id"].as_str(),
                    op["parent_id"].as_str(),
                );
            }
            "clean" => profiler::clean(),
            "start" => profiler::start(name(op), info(op)),
            "stop" => profiler::stop(info(op)),
            "trace" => {
                let _trace = Trace::new(name(op), info(op));
                run_ops(body);
            }
            "fail" => {
                let error = BoomError(op["message"].as_str().unwrap().to_string());
                match op["how"].as_str().unwrap() {
                    "guard" => {
                        let mut trace = Trace::new(name(op), info(op));
                        run_ops(body);
                        trace.error(&error);
                    }
                    _ => {
                        let result = profiler::traced(name(op), info(op), || {
                            run_ops(body);
                            Err::<(), _>(error)
                        });
                        assert!(result.is_err());
                    }
                }
            }
            other => panic!("unknown op {other}"),
        }
    }
}

fn rust_payloads(scenario: &str) -> Vec<Value> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    profiler::clean();
    run_ops(&scenarios()[scenario]);
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).expect("flush");
    notifier::reset();
    store.payloads()
}

fn is_canonical_uuid4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// The ids the scenario gives explicitly (they must come out unchanged).
fn given_ids(ops: &Value) -> HashSet<String> {
    let mut ids = HashSet::new();
    for op in ops.as_array().unwrap() {
        for field in ["base_id", "parent_id"] {
            if let Some(id) = op.get(field).and_then(Value::as_str) {
                ids.insert(id.to_string());
            }
        }
        if let Some(body) = op.get("body") {
            ids.extend(given_ids(body));
        }
    }
    ids
}

/// Drops what legitimately differs and checks its shape on the way:
/// `timestamp` (format), `info.host` (present), `project`/`service` (the
/// driver's, null for a bare MemoryDriver; Python's notifier gets none).
/// An error type keeps its last path segment: Python names it
/// `module.Class`, Rust `crate::module::Type`.
fn normalize(mut payload: Value, side: &str) -> Value {
    let obj = payload.as_object_mut().unwrap();
    let ts = obj
        .remove("timestamp")
        .and_then(|t| t.as_str().map(String::from));
    let ts = ts.unwrap_or_else(|| panic!("{side}: payload without timestamp"));
    assert!(
        ts.len() == 26 && parse_timestamp(&ts).is_some(),
        "{side}: bad timestamp {ts}"
    );
    if side == "rust" {
        assert_eq!(obj.remove("project"), Some(Value::Null));
        assert_eq!(obj.remove("service"), Some(Value::Null));
    }
    let info = obj.get_mut("info").and_then(Value::as_object_mut);
    let info = info.unwrap_or_else(|| panic!("{side}: payload without info"));
    assert!(
        info.remove("host").is_some_and(|h| h.is_string()),
        "{side}: info without host"
    );
    if let Some(Value::String(etype)) = info.get_mut("etype") {
        *etype = etype.rsplit(['.', ':']).next().unwrap().to_string();
    }
    payload
}

/// Runs `scenario` on both sides and compares; returns the Rust payloads.
fn compare(scenario: &str) -> Vec<Value> {
    let python = python_payloads(scenario);
    let rust = rust_payloads(scenario);
    let names = |p: &[Value]| {
        p.iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&rust),
        names(&python),
        "{scenario}: notification names"
    );

    // Ids: one bijection maps every Python id to the Rust id at the same
    // place; explicitly given ids map to themselves; the others are fresh
    // uuid4s on both sides.
    let given = given_ids(&scenarios()[scenario]);
    let mut py_to_rust: HashMap<String, String> = HashMap::new();
    let mut rust_to_py: HashMap<String, String> = HashMap::new();
    for (p, r) in python.iter().zip(&rust) {
        for field in ["base_id", "parent_id", "trace_id"] {
            let (pid, rid) = (p[field].as_str().unwrap(), r[field].as_str().unwrap());
            let mapped = py_to_rust
                .entry(pid.to_string())
                .or_insert_with(|| rid.to_string());
            assert_eq!(
                mapped, rid,
                "{scenario}: python id {pid} maps to two rust ids"
            );
            let back = rust_to_py
                .entry(rid.to_string())
                .or_insert_with(|| pid.to_string());
            assert_eq!(
                back, pid,
                "{scenario}: rust id {rid} maps to two python ids"
            );
            if given.contains(pid) || given.contains(rid) {
                assert_eq!(pid, rid, "{scenario}: a given id changed");
            } else {
                assert!(
                    is_canonical_uuid4(rid),
                    "{scenario}: rust id {rid} is not a canonical uuid4"
                );
                assert!(
                    is_canonical_uuid4(pid),
                    "{scenario}: python id {pid} is not a canonical uuid4"
                );
            }
        }
    }

    for (i, (p, r)) in python.iter().zip(&rust).enumerate() {
        let mut p = normalize(p.clone(), "python");
        for field in ["base_id", "parent_id", "trace_id"] {
            let mapped = py_to_rust[p[field].as_str().unwrap()].clone();
            p[field] = Value::String(mapped);
        }
        let r = normalize(r.clone(), "rust");
        assert_eq!(r, p, "{scenario}: payload #{i} differs");
        // Same key order too: drivers store the JSON text.
        assert_eq!(
            r.to_string(),
            p.to_string(),
            "{scenario}: payload #{i} key order differs"
        );
    }
    rust
}

#[test]
fn seed_sequence_gives_the_same_six_notifications() {
    let rust = compare("seed sequence");
    assert_eq!(rust.len(), 6, "the unmatched stop is ignored");
    let ids = |i: usize| {
        let p = &rust[i];
        (
            p["base_id"].as_str().unwrap(),
            p["parent_id"].as_str().unwrap(),
            p["trace_id"].as_str().unwrap(),
        )
    };
    let (b, parent, block1) = ids(0);
    assert_eq!((b, parent), ("1", "1"));
    assert_eq!(ids(1).1, block1, "block 2 is a child of block 1");
    assert_eq!(ids(2), ids(1), "a stop carries the ids of its start");
    assert_eq!(ids(3).1, block1, "block 3 is a child of block 1");
    assert_eq!(ids(5), ids(0));
}

#[test]
fn unicode_info_is_kept_as_python_keeps_it() {
    compare("unicode info");
}

#[test]
fn nested_traces_have_the_same_tree() {
    compare("nested traces");
}

#[test]
fn error_stops_carry_etype_and_message() {
    let rust = compare("error stops");
    let errors: Vec<_> = rust
        .iter()
        .filter(|p| p["info"].get("etype").is_some())
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors[0]["info"]["etype"]
        .as_str()
        .unwrap()
        .ends_with("BoomError"));
    assert_eq!(errors[0]["info"]["message"], "disk full ☹");
}

#[test]
fn init_twice_and_clean_behave_alike() {
    compare("init and clean");
}
