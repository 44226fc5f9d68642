//! The trace as Chrome trace-event JSON, for Perfetto (ui.perfetto.dev,
//! "Open trace file") and chrome://tracing.
//!
//! - One complete event (`"ph": "X"`) per span; `ts` and `dur` in
//!   microseconds since the trace's first event, exact when the raw
//!   payload timestamps are there, else from the report's milliseconds.
//! - One process per `project` + `service`, named by metadata events.
//! - One thread per host within a process; complete events on one thread
//!   must nest, so spans that overlap without nesting (concurrent requests,
//!   clock skew between hosts) go to extra lanes of that host, named
//!   `host (2)`, `host (3)`, ...
//! - `args` holds the key detail, ids, host, the exception and the `info`
//!   of the start and stop payloads.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::{error_type, flatten, key_detail, stop_payload, text, timings_us, truncate};

/// Event names longer than this are cut (the full detail is in `args`).
const MAX_NAME: usize = 100;

/// The trace-event JSON document of the report.
pub(crate) fn chrome(report: &Value) -> String {
    serde_json::to_string(&chrome_value(report)).unwrap_or_default()
}

/// [`chrome`] as a JSON value.
pub(crate) fn chrome_value(report: &Value) -> Value {
    let nodes = flatten(report);
    let timings = timings_us(&nodes);

    let mut events: Vec<Value> = Vec::with_capacity(nodes.len() + 8);
    // Process per (project, service), in first-seen order.
    let mut processes: HashMap<(String, String), u64> = HashMap::new();
    // Per (pid, host): the thread id of each lane.
    let mut hosts: HashMap<(u64, String), usize> = HashMap::new();
    let mut pid_of = Vec::with_capacity(nodes.len());
    let mut host_of = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let info = node.info();
        let project = text(info.get("project"));
        let service = text(info.get("service"));
        let next = processes.len() as u64 + 1;
        let pid = *processes
            .entry((project.clone(), service.clone()))
            .or_insert_with(|| {
                let name = match (project.is_empty(), service.is_empty()) {
                    (false, false) => format!("{project} {service}"),
                    (true, true) => "(no service)".to_owned(),
                    _ => format!("{project}{service}"),
                };
                events.push(metadata("process_name", next, 0, &name));
                events.push(json!({"name": "process_sort_index", "ph": "M", "pid": next,
                                   "tid": 0, "args": {"sort_index": next}}));
                next
            });
        let host = text(info.get("host"));
        let next_host = hosts.len();
        hosts.entry((pid, host.clone())).or_insert(next_host);
        pid_of.push(pid);
        host_of.push(host);
    }

    // Lanes: spans of one (pid, host) by start, longest first on ties (a
    // parent before its children); each lane keeps the ends of its open
    // spans and takes a span only if it fits inside the innermost one.
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| (timings[i].0, -timings[i].1, i));
    let mut lanes: HashMap<(u64, &str), Vec<Vec<i64>>> = HashMap::new();
    let mut tid_of = vec![0u64; nodes.len()];
    let mut named: HashSet<(u64, u64)> = HashSet::new();
    for &i in &order {
        let (start, dur) = timings[i];
        let end = start + dur;
        let pid = pid_of[i];
        let host = host_of[i].as_str();
        let host_lanes = lanes.entry((pid, host)).or_default();
        let mut chosen = None;
        for (lane, open) in host_lanes.iter_mut().enumerate() {
            while open
                .last()
                .is_some_and(|&e| e <= start && !(e == start && dur == 0))
            {
                open.pop();
            }
            if open.last().map_or(true, |&e| e >= end) {
                open.push(end);
                chosen = Some(lane);
                break;
            }
        }
        let lane = chosen.unwrap_or_else(|| {
            host_lanes.push(vec![end]);
            host_lanes.len() - 1
        });
        // Thread ids: 1000 per host index, plus the lane.
        let tid = (hosts[&(pid, host.to_owned())] as u64 + 1) * 1000 + lane as u64;
        tid_of[i] = tid;
        if named.insert((pid, tid)) {
            let label = match (host.is_empty(), lane) {
                (true, 0) => "(no host)".to_owned(),
                (true, n) => format!("(no host) ({})", n + 1),
                (false, 0) => host.to_owned(),
                (false, n) => format!("{host} ({})", n + 1),
            };
            events.push(metadata("thread_name", pid, tid, &label));
        }
    }

    for (i, node) in nodes.iter().enumerate() {
        let info = node.info();
        let name = text(info.get("name"));
        let detail = key_detail(node.node);
        let mut args = Map::new();
        if let Some(detail) = &detail {
            args.insert("detail".into(), detail.clone().into());
        }
        for key in ["trace_id", "parent_id"] {
            args.insert(
                key.into(),
                node.node.get(key).cloned().unwrap_or(Value::Null),
            );
        }
        for key in ["project", "service", "host"] {
            args.insert(key.into(), info.get(key).cloned().unwrap_or(Value::Null));
        }
        if let Some(error) = error_type(info) {
            args.insert("exception".into(), error.into());
        }
        if let Some(start) = super::start_payload(info).and_then(|p| p.get("info")) {
            args.insert("info".into(), start.clone());
        }
        if let Some(stop) = stop_payload(info).and_then(|p| p.get("info")) {
            args.insert("stop_info".into(), stop.clone());
        }
        let title = match &detail {
            Some(d) => truncate(&format!("{name} {d}"), MAX_NAME),
            None => name.clone(),
        };
        // Built field by field: `json!` would copy `args` through serde.
        let mut event = Map::new();
        event.insert("name".into(), title.into());
        event.insert("cat".into(), name.into());
        event.insert("ph".into(), "X".into());
        event.insert("ts".into(), timings[i].0.into());
        event.insert("dur".into(), timings[i].1.into());
        event.insert("pid".into(), pid_of[i].into());
        event.insert("tid".into(), tid_of[i].into());
        event.insert("args".into(), Value::Object(args));
        if error_type(info).is_some() {
            // chrome://tracing's reserved colour for failures.
            event.insert("cname".into(), "terrible".into());
        }
        events.push(Value::Object(event));
    }

    let mut other = Map::new();
    other.insert("generator".into(), "osprofiler-rs".into());
    if let Some(id) = super::base_id(&nodes) {
        other.insert("base_id".into(), id.into());
    }
    let mut doc = Map::new();
    doc.insert("traceEvents".into(), Value::Array(events));
    doc.insert("displayTimeUnit".into(), "ms".into());
    doc.insert("otherData".into(), Value::Object(other));
    Value::Object(doc)
}

fn metadata(kind: &str, pid: u64, tid: u64, name: &str) -> Value {
    json!({"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    fn complete_events(doc: &Value) -> Vec<&Value> {
        doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect()
    }

    #[test]
    fn one_complete_event_per_span_in_microseconds() {
        let text = chrome(&fixtures::report());
        let doc: Value = serde_json::from_str(&text).unwrap();
        let events = complete_events(&doc);
        assert_eq!(events.len(), 7);
        let wsgi = events[0];
        assert_eq!(wsgi["name"], "wsgi GET /v2.1/servers");
        assert_eq!(wsgi["cat"], "wsgi");
        assert_eq!(
            (wsgi["ts"].as_i64(), wsgi["dur"].as_i64()),
            (Some(0), Some(10_250))
        );
        assert_eq!(wsgi["args"]["info"]["request"]["query"], "limit=1");
        let db = events[2];
        assert_eq!(
            (db["ts"].as_i64(), db["dur"].as_i64()),
            (Some(4_000), Some(512))
        );
        assert_eq!(db["args"]["stop_info"]["db"]["result"], "1 row");
        let driver = events[4];
        assert_eq!(driver["args"]["exception"], "ValueError");
        assert_eq!(driver["cname"], "terrible");
        assert_eq!(
            driver["args"]["stop_info"]["message"],
            "disk \u{2028}image missing"
        );
        assert_eq!(
            driver["args"]["detail"],
            "nova.virt.libvirt.driver.LibvirtDriver.spawn"
        );
        let evil = events[5];
        assert_eq!(evil["args"]["detail"], fixtures::XSS_IMG);
        assert_eq!(
            doc["otherData"]["base_id"],
            "7a3f1c2e-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn processes_per_service_threads_per_host() {
        let doc = chrome_value(&fixtures::report());
        let meta: Vec<(String, i64, i64, String)> = doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "M" && e["args"]["name"].is_string())
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["pid"].as_i64().unwrap(),
                    e["tid"].as_i64().unwrap(),
                    e["args"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let processes: Vec<_> = meta
            .iter()
            .filter(|m| m.0 == "process_name")
            .map(|m| (m.1, m.3.as_str()))
            .collect();
        assert_eq!(
            processes,
            [(1, "nova api"), (2, "nova compute"), (3, "nova サービス")]
        );
        let threads: Vec<_> = meta
            .iter()
            .filter(|m| m.0 == "thread_name")
            .map(|m| m.3.as_str())
            .collect();
        assert_eq!(threads, ["node-1", "compute-1", "node-1"]);
    }

    /// Complete events of one thread must nest; overlapping siblings get
    /// their own lane.
    #[test]
    fn overlapping_spans_get_lanes_that_nest() {
        let ev = |name: &str, trace: &str, parent: &str, ts: u64| {
            fixtures::event(name, trace, parent, ts, "api", json!({}))
        };
        let payloads = vec![
            ev("a-start", "a", "b", 0),
            ev("b-start", "bb", "b", 100),
            ev("a-stop", "a", "b", 200),
            ev("c-start", "c", "a", 10),
            ev("c-stop", "c", "a", 50),
            ev("b-stop", "bb", "b", 300),
            ev("d-start", "d", "b", 300),
            ev("d-stop", "d", "b", 400),
        ];
        let doc = chrome_value(&osprofiler::report::build(payloads).to_value());
        let events = complete_events(&doc);
        let tid = |name: &str| {
            events.iter().find(|e| e["cat"] == name).unwrap()["tid"]
                .as_i64()
                .unwrap()
        };
        assert_eq!(tid("a"), tid("c"));
        assert_ne!(tid("a"), tid("b"));
        assert_eq!(tid("d"), tid("a"));
        // Check nesting per thread.
        let mut by_tid: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for e in &events {
            let (ts, dur) = (e["ts"].as_i64().unwrap(), e["dur"].as_i64().unwrap());
            by_tid
                .entry(e["tid"].as_i64().unwrap())
                .or_default()
                .push((ts, ts + dur));
        }
        for spans in by_tid.values() {
            for x in spans {
                for y in spans {
                    let disjoint = x.1 <= y.0 || y.1 <= x.0;
                    let nested = (x.0 <= y.0 && y.1 <= x.1) || (y.0 <= x.0 && x.1 <= y.1);
                    assert!(disjoint || nested, "{x:?} and {y:?} overlap on one thread");
                }
            }
        }
    }

    #[test]
    fn empty_report() {
        let doc = chrome_value(&json!({"info": {}, "children": []}));
        assert_eq!(doc["traceEvents"], json!([]));
    }
}
