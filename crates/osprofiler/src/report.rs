//! The call tree of one trace, as Python's `Driver.get_report` builds it
//! (`_append_results` + `_parse_results` + `_build_tree`).
//!
//! [`build`] takes the stored payloads of one `base_id` and returns a
//! [`Report`] whose JSON ([`Report::to_value`], or any serde serializer) is
//! the JSON Python osprofiler 4.4.0 produces for the same payloads:
//!
//! ```
//! use serde_json::json;
//!
//! let report = osprofiler::report::build([
//!     json!({"name": "wsgi-start", "base_id": "b", "trace_id": "t", "parent_id": "b",
//!            "timestamp": "2024-01-01T00:00:00.000000", "info": {"host": "h"},
//!            "project": "nova", "service": "api"}),
//!     json!({"name": "wsgi-stop", "base_id": "b", "trace_id": "t", "parent_id": "b",
//!            "timestamp": "2024-01-01T00:00:00.012500", "info": {"host": "h"},
//!            "project": "nova", "service": "api"}),
//! ]);
//! let v = report.to_value();
//! assert_eq!(v["info"]["finished"], 12);
//! assert_eq!(v["children"][0]["info"]["name"], "wsgi");
//! assert_eq!(v["stats"]["wsgi"], json!({"count": 1, "duration": 12}));
//! ```
//!
//! # Where it differs from Python
//!
//! Only on input Python cannot handle (it raises, or silently loses nodes):
//! - Events that are not objects, lack a string `trace_id`, `parent_id`,
//!   `name` or `timestamp`, or whose timestamp does not parse, are skipped
//!   and counted in [`Report::skipped`]. Missing `project`/`service` or
//!   `info.host` become `null`.
//! - A second event with the same `trace_id` and `name` is skipped and
//!   counted (Python overwrites; for an identical duplicate, as left by a
//!   retried write, the result is the same).
//! - Nodes whose parent chain loops (Python drops them from the tree) are
//!   kept: the first-seen node of each loop becomes a root, counted in
//!   [`Report::cycles_broken`].
//!
//! The counters are not part of the JSON, which keeps Python's shape.
//!
//! # Size
//!
//! Building is O(n log n) in time and O(n) in memory. Serialization walks
//! the tree recursively but grows the stack on the heap as needed, so a
//! chain of 100,000 nested calls serializes fine. A [`serde_json::Value`]
//! that deep is another matter (serde_json drops and prints it
//! recursively): for very deep traces prefer `serde_json::to_writer(w,
//! &report)` over [`Report::to_value`].

use std::collections::HashMap;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::notification::parse_timestamp;

/// Builds the report of one trace from its stored payloads (each the JSON
/// object a Redis-style driver stores: the notification plus `project` and
/// `service`), in the order the store returned them.
pub fn build<I: IntoIterator<Item = Value>>(events: I) -> Report {
    let mut builder = ReportBuilder::new();
    for event in events {
        builder.push(event);
    }
    builder.finish()
}

/// One notification, as Python's `_append_results` receives it. Drivers
/// whose store splits the payload (the SQL drivers) use this with
/// [`ReportBuilder::append`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Id of the trace element.
    pub trace_id: String,
    /// Id of the enclosing element.
    pub parent_id: String,
    /// Notification name (`db-start`, `wsgi-stop`, ...).
    pub name: String,
    /// Project of the node (taken from the first event of each element).
    pub project: Value,
    /// Service of the node.
    pub service: Value,
    /// Host of the node.
    pub host: Value,
    /// `%Y-%m-%dT%H:%M:%S.%f` timestamp.
    pub timestamp: String,
    /// Stored as `meta.raw_payload.<name>`; a stop's `info.etype` becomes
    /// the node's `exception`.
    pub raw_payload: Value,
}

/// Accumulates events, then [`finish`](ReportBuilder::finish)es into a
/// [`Report`].
#[derive(Default)]
pub struct ReportBuilder {
    nodes: Vec<Node>,
    index: HashMap<String, u32>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    last_started_at: Option<i64>,
    skipped: usize,
}

impl fmt::Debug for ReportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportBuilder")
            .field("nodes", &self.nodes.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

struct Node {
    trace_id: String,
    parent_id: String,
    /// `name` up to the first `-`, the key of `stats`.
    op: String,
    info: Map<String, Value>,
    /// Microseconds since the epoch until `finish`, then ms since the
    /// trace's start.
    started: Option<i64>,
    finished: Option<i64>,
}

const NO_PARENT: u32 = u32::MAX;

/// What the first event of an element contributes to its node.
struct NewNode<'a> {
    parent_id: String,
    name: &'a str,
    project: Value,
    service: Value,
    host: Value,
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> ReportBuilder {
        ReportBuilder::default()
    }

    /// Adds one stored payload, reading it as Python's Redis driver does.
    /// Returns false when the payload was skipped (see the module docs).
    pub fn push(&mut self, payload: Value) -> bool {
        let Value::Object(obj) = &payload else {
            self.skipped += 1;
            return false;
        };
        let text = |key: &str| obj.get(key).and_then(Value::as_str);
        let (Some(trace_id), Some(parent_id), Some(name), Some(timestamp)) = (
            text("trace_id"),
            text("parent_id"),
            text("name"),
            text("timestamp"),
        ) else {
            self.skipped += 1;
            return false;
        };
        let Some(ts) = parse_timestamp(timestamp) else {
            self.skipped += 1;
            return false;
        };
        let meta_key = format!("meta.raw_payload.{name}");
        let is_stop = name.ends_with("stop");
        // Identity fields are copied only for the first event of a node.
        let id = self.node_for(trace_id, &meta_key, || {
            let field = |key: &str| obj.get(key).cloned().unwrap_or(Value::Null);
            let host = obj.get("info").and_then(|i| i.get("host")).cloned();
            NewNode {
                parent_id: parent_id.to_owned(),
                name,
                project: field("project"),
                service: field("service"),
                host: host.unwrap_or(Value::Null),
            }
        });
        match id {
            Some(id) => {
                self.record(id, meta_key, is_stop, ts, payload);
                true
            }
            None => false,
        }
    }

    /// Adds one notification (Python's `_append_results`). Returns false
    /// when it was skipped: unparseable timestamp, or a duplicate.
    pub fn append(&mut self, event: Event) -> bool {
        let Some(ts) = parse_timestamp(&event.timestamp) else {
            self.skipped += 1;
            return false;
        };
        let meta_key = format!("meta.raw_payload.{}", event.name);
        let is_stop = event.name.ends_with("stop");
        let Event {
            trace_id,
            parent_id,
            name,
            project,
            service,
            host,
            raw_payload,
            ..
        } = event;
        let id = self.node_for(&trace_id, &meta_key, || NewNode {
            parent_id,
            name: &name,
            project,
            service,
            host,
        });
        match id {
            Some(id) => {
                self.record(id, meta_key, is_stop, ts, raw_payload);
                true
            }
            None => false,
        }
    }

    /// The node of `trace_id`, created from `new` if it is the first event
    /// of that element. `None` (counted as skipped) for a duplicate event or
    /// past `u32::MAX - 1` nodes.
    fn node_for<'n>(
        &mut self,
        trace_id: &str,
        meta_key: &str,
        new: impl FnOnce() -> NewNode<'n>,
    ) -> Option<u32> {
        if let Some(&id) = self.index.get(trace_id) {
            if self.nodes[id as usize].info.contains_key(meta_key) {
                self.skipped += 1;
                return None;
            }
            return Some(id);
        }
        let id = match u32::try_from(self.nodes.len()) {
            Ok(id) if id != NO_PARENT => id,
            _ => {
                self.skipped += 1;
                return None;
            }
        };
        let NewNode {
            parent_id,
            name,
            project,
            service,
            host,
        } = new();
        let op = name.split('-').next().unwrap_or_default().to_owned();
        let mut info = Map::new();
        info.insert("name".into(), Value::String(op.clone()));
        info.insert("project".into(), project);
        info.insert("service".into(), service);
        info.insert("host".into(), host);
        self.index.insert(trace_id.to_owned(), id);
        self.nodes.push(Node {
            trace_id: trace_id.to_owned(),
            parent_id,
            op,
            info,
            started: None,
            finished: None,
        });
        Some(id)
    }

    /// The rest of `_append_results` once the node is known.
    fn record(&mut self, id: u32, meta_key: String, is_stop: bool, ts: i64, raw_payload: Value) {
        let node = &mut self.nodes[id as usize];
        let exception = if is_stop {
            match raw_payload.get("info") {
                Some(Value::Object(info)) => {
                    info.get("etype").cloned().unwrap_or_else(|| "None".into())
                }
                _ => Value::from("None"),
            }
        } else {
            Value::Null
        };
        node.info.insert(meta_key, raw_payload);
        if is_stop {
            // Placeholders keep Python's key order; values are set in finish.
            node.info.insert("finished".into(), Value::Null);
            node.info.insert("exception".into(), exception);
            node.finished = Some(ts);
        } else {
            node.info.insert("started".into(), Value::Null);
            node.started = Some(ts);
            if !matches!(self.last_started_at, Some(last) if last >= ts) {
                self.last_started_at = Some(ts);
            }
        }
        if !matches!(self.started_at, Some(first) if first <= ts) {
            self.started_at = Some(ts);
        }
        if !matches!(self.finished_at, Some(last) if last >= ts) {
            self.finished_at = Some(ts);
        }
    }

    /// Counts an event the caller could not even turn into an [`Event`].
    pub fn count_malformed(&mut self) {
        self.skipped += 1;
    }

    /// Builds the tree (Python's `_parse_results` and `_build_tree`).
    pub fn finish(self) -> Report {
        let ReportBuilder {
            mut nodes,
            index,
            started_at,
            finished_at,
            last_started_at,
            skipped,
        } = self;
        let origin = started_at.unwrap_or(0);
        let mut stats: Vec<(String, i64, i64)> = Vec::new();
        let mut stat_index: HashMap<String, usize> = HashMap::new();
        for node in &mut nodes {
            // A node has at least one of the two: it was created by an event.
            let (started, finished) = match (node.started, node.finished) {
                (Some(s), Some(f)) => (s, f),
                (Some(s), None) => {
                    node.info.insert("finished".into(), Value::Null);
                    (s, s)
                }
                (None, Some(f)) => {
                    node.info.insert("started".into(), Value::Null);
                    (f, f)
                }
                (None, None) => (origin, origin),
            };
            let (started, finished) = (msec(started - origin), msec(finished - origin));
            node.started = Some(started);
            node.finished = Some(finished);
            node.info.insert("started".into(), started.into());
            node.info.insert("finished".into(), finished.into());
            let duration = finished - started;
            match stat_index.get(&node.op) {
                Some(&i) => {
                    stats[i].1 += 1;
                    stats[i].2 += duration;
                }
                None => {
                    stat_index.insert(node.op.clone(), stats.len());
                    stats.push((node.op.clone(), 1, duration));
                }
            }
        }

        let mut parents: Vec<u32> = nodes
            .iter()
            .map(|n| index.get(&n.parent_id).copied().unwrap_or(NO_PARENT))
            .collect();
        drop(index);
        let cycles_broken = break_cycles(&mut parents);

        // Children of each node in first-seen order (Python iterates its
        // dict of nodes), then stably sorted by start, as Python does.
        let n = nodes.len();
        let mut offsets = vec![0u32; n + 1];
        let mut roots = Vec::new();
        for (id, &parent) in parents.iter().enumerate() {
            if parent == NO_PARENT {
                roots.push(id as u32);
            } else {
                offsets[parent as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut children = vec![0u32; n - roots.len()];
        for (id, &parent) in parents.iter().enumerate() {
            if parent != NO_PARENT {
                let slot = &mut fill[parent as usize];
                children[*slot as usize] = id as u32;
                *slot += 1;
            }
        }
        let started_of = |id: &u32| nodes[*id as usize].started.unwrap_or(0);
        for i in 0..n {
            children[offsets[i] as usize..offsets[i + 1] as usize].sort_by_key(started_of);
        }
        roots.sort_by_key(started_of);

        let total_finished = match (started_at, finished_at) {
            (Some(s), Some(f)) => Some(msec(f - s)),
            _ => None,
        };
        let last_trace_started = match (started_at, last_started_at) {
            (Some(s), Some(l)) => Some(msec(l - s)),
            _ => None,
        };
        Report {
            nodes: nodes
                .into_iter()
                .map(|n| ReportNodeData {
                    trace_id: n.trace_id,
                    parent_id: n.parent_id,
                    info: n.info,
                })
                .collect(),
            offsets,
            children,
            roots,
            total_finished,
            last_trace_started,
            stats,
            skipped,
            cycles_broken,
        }
    }
}

/// Python's `msec(timedelta)`: `int(microseconds / 1000.0)` with the
/// microseconds computed as a float.
fn msec(delta_us: i64) -> i64 {
    let secs = delta_us.div_euclid(1_000_000);
    let micros = delta_us.rem_euclid(1_000_000);
    let total = micros as f64 + (secs as f64) * 1e6;
    (total / 1000.0) as i64
}

/// Makes the first-seen node of every parent loop a root; returns how many
/// loops there were. O(n): each node is walked once.
fn break_cycles(parents: &mut [u32]) -> usize {
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![UNSEEN; parents.len()];
    let mut path = Vec::new();
    let mut broken = 0;
    for start in 0..parents.len() {
        if state[start] != UNSEEN {
            continue;
        }
        path.clear();
        let mut cur = start;
        loop {
            match state[cur] {
                UNSEEN => {
                    state[cur] = ON_PATH;
                    path.push(cur);
                    match parents[cur] {
                        NO_PARENT => break,
                        parent => cur = parent as usize,
                    }
                }
                ON_PATH => {
                    let from = path.iter().rposition(|&p| p == cur).unwrap_or(0);
                    if let Some(&first) = path[from..].iter().min() {
                        parents[first] = NO_PARENT;
                    }
                    broken += 1;
                    break;
                }
                _ => break,
            }
        }
        for &p in &path {
            state[p] = DONE;
        }
    }
    broken
}

struct ReportNodeData {
    trace_id: String,
    parent_id: String,
    info: Map<String, Value>,
}

/// The call tree of one trace. Serializes to Python's report JSON.
pub struct Report {
    nodes: Vec<ReportNodeData>,
    /// Children of node `i` are `children[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    children: Vec<u32>,
    roots: Vec<u32>,
    total_finished: Option<i64>,
    last_trace_started: Option<i64>,
    stats: Vec<(String, i64, i64)>,
    skipped: usize,
    cycles_broken: usize,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("nodes", &self.nodes.len())
            .field("roots", &self.roots.len())
            .field("finished", &self.total_finished)
            .field("skipped", &self.skipped)
            .field("cycles_broken", &self.cycles_broken)
            .finish_non_exhaustive()
    }
}

impl Report {
    /// The report as a JSON value (see the module docs about very deep
    /// trees).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Number of events that could not be used (malformed or duplicate).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Number of parent loops that were cut to keep every node in the tree.
    pub fn cycles_broken(&self) -> usize {
        self.cycles_broken
    }

    /// Number of nodes (trace elements).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the trace has no elements.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `info.finished` of the total: ms from the first to the last event.
    pub fn finished(&self) -> Option<i64> {
        self.total_finished
    }

    /// `info.last_trace_started`: ms from the first event to the last start.
    pub fn last_trace_started(&self) -> Option<i64> {
        self.last_trace_started
    }

    /// `(name, count, total duration in ms)` per operation name, in
    /// first-seen order.
    pub fn stats(&self) -> impl Iterator<Item = (&str, i64, i64)> + '_ {
        self.stats
            .iter()
            .map(|(name, count, duration)| (name.as_str(), *count, *duration))
    }

    /// Top-level nodes, sorted by start.
    pub fn roots(&self) -> impl Iterator<Item = ReportNode<'_>> + '_ {
        self.roots
            .iter()
            .map(move |&id| ReportNode { report: self, id })
    }

    fn children_of(&self, id: u32) -> &[u32] {
        let id = id as usize;
        &self.children[self.offsets[id] as usize..self.offsets[id + 1] as usize]
    }
}

/// A node of a [`Report`].
#[derive(Clone, Copy)]
pub struct ReportNode<'a> {
    report: &'a Report,
    id: u32,
}

impl fmt::Debug for ReportNode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportNode")
            .field("trace_id", &self.trace_id())
            .finish_non_exhaustive()
    }
}

impl<'a> ReportNode<'a> {
    fn data(&self) -> &'a ReportNodeData {
        &self.report.nodes[self.id as usize]
    }

    /// The node's `info` object (`name`, `project`, `service`, `host`,
    /// `meta.raw_payload.*`, `started`, `finished`, `exception`).
    pub fn info(&self) -> &'a Map<String, Value> {
        &self.data().info
    }

    /// The element's id.
    pub fn trace_id(&self) -> &'a str {
        &self.data().trace_id
    }

    /// The id of the enclosing element as stored (for a root, usually the
    /// base id).
    pub fn parent_id(&self) -> &'a str {
        &self.data().parent_id
    }

    /// Child nodes, sorted by start.
    pub fn children(&self) -> impl Iterator<Item = ReportNode<'a>> + 'a {
        let report = self.report;
        report
            .children_of(self.id)
            .iter()
            .map(move |&id| ReportNode { report, id })
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut top = serializer.serialize_map(Some(3))?;
        top.serialize_entry(
            "info",
            &TotalInfo {
                finished: self.total_finished,
                last_trace_started: self.last_trace_started,
            },
        )?;
        top.serialize_entry(
            "children",
            &Siblings {
                report: self,
                ids: &self.roots,
            },
        )?;
        top.serialize_entry("stats", &Stats(&self.stats))?;
        top.end()
    }
}

struct TotalInfo {
    finished: Option<i64>,
    last_trace_started: Option<i64>,
}

impl Serialize for TotalInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("name", "total")?;
        map.serialize_entry("started", &0)?;
        map.serialize_entry("finished", &self.finished)?;
        map.serialize_entry("last_trace_started", &self.last_trace_started)?;
        map.end()
    }
}

struct Stats<'a>(&'a [(String, i64, i64)]);

impl Serialize for Stats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Stat(i64, i64);
        impl Serialize for Stat {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("count", &self.0)?;
                map.serialize_entry("duration", &self.1)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, count, duration) in self.0 {
            map.serialize_entry(name, &Stat(*count, *duration))?;
        }
        map.end()
    }
}

struct Siblings<'a> {
    report: &'a Report,
    ids: &'a [u32],
}

impl Serialize for Siblings<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.ids.len()))?;
        for &id in self.ids {
            seq.serialize_element(&ReportNode {
                report: self.report,
                id,
            })?;
        }
        seq.end()
    }
}

/// Stack kept free before recursing into a child, and the size of each
/// heap-allocated extension when less is left.
const RED_ZONE: usize = 128 * 1024;
const STACK_CHUNK: usize = 2 * 1024 * 1024;

impl Serialize for ReportNode<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        stacker::maybe_grow(RED_ZONE, STACK_CHUNK, || {
            let data = self.data();
            let mut map = serializer.serialize_map(Some(4))?;
            map.serialize_entry("info", &data.info)?;
            map.serialize_entry("trace_id", &data.trace_id)?;
            map.serialize_entry("parent_id", &data.parent_id)?;
            map.serialize_entry(
                "children",
                &Siblings {
                    report: self.report,
                    ids: self.report.children_of(self.id),
                },
            )?;
            map.end()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, trace: &str, parent: &str, ts: &str) -> Value {
        json!({"name": name, "base_id": "b", "trace_id": trace, "parent_id": parent,
               "timestamp": ts, "info": {"host": "h"}, "project": "p", "service": "s"})
    }

    fn t(ms: u32) -> String {
        format!(
            "2024-01-01T00:00:{:02}.{:06}",
            ms / 1000,
            (ms % 1000) * 1000
        )
    }

    #[test]
    fn empty_report_matches_python() {
        assert_eq!(
            build([]).to_value(),
            json!({"info": {"name": "total", "started": 0, "finished": null, "last_trace_started": null},
                   "children": [], "stats": {}})
        );
    }

    #[test]
    fn nested_tree_with_python_key_order() {
        let events = vec![
            ev("wsgi-start", "a", "b", &t(0)),
            ev("db-start", "c", "a", &t(5)),
            ev("db-stop", "c", "a", &t(7)),
            ev("wsgi-stop", "a", "b", &t(10)),
        ];
        let v = build(events.clone()).to_value();
        let text = serde_json::to_string(&v).unwrap();
        let a = &v["children"][0];
        assert_eq!(
            a["info"].as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "name",
                "project",
                "service",
                "host",
                "meta.raw_payload.wsgi-start",
                "started",
                "meta.raw_payload.wsgi-stop",
                "finished",
                "exception"
            ]
        );
        assert_eq!(
            a.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["info", "trace_id", "parent_id", "children"]
        );
        assert_eq!(a["info"]["meta.raw_payload.wsgi-start"], events[0]);
        assert_eq!(a["children"][0]["info"]["started"], 5);
        assert_eq!(a["children"][0]["info"]["finished"], 7);
        assert_eq!(
            v["stats"],
            json!({"wsgi": {"count": 1, "duration": 10}, "db": {"count": 1, "duration": 2}})
        );
        assert_eq!(
            v["info"],
            json!({"name": "total", "started": 0, "finished": 10, "last_trace_started": 5})
        );
        assert!(text.starts_with(r#"{"info":{"name":"total""#));
    }

    #[test]
    fn unmatched_start_or_stop_gets_zero_duration_and_exception() {
        let mut stop = ev("x-stop", "s", "b", &t(4));
        stop["info"]["etype"] = json!("ValueError");
        let v = build([ev("y-start", "a", "b", &t(1)), stop]).to_value();
        let y = &v["children"][0]["info"];
        assert_eq!(
            (y["started"].clone(), y["finished"].clone()),
            (json!(0), json!(0))
        );
        assert_eq!(
            y.as_object().unwrap().keys().next_back().unwrap(),
            "finished"
        );
        let x = &v["children"][1]["info"];
        assert_eq!(x["exception"], "ValueError");
        assert_eq!(
            (x["started"].clone(), x["finished"].clone()),
            (json!(3), json!(3))
        );
        assert_eq!(
            x.as_object().unwrap().keys().next_back().unwrap(),
            "started"
        );
        assert_eq!(v["info"]["last_trace_started"], 0);
    }

    #[test]
    fn node_identity_comes_from_first_event() {
        let mut stop = ev("x-stop", "a", "b", &t(2));
        stop["project"] = json!("other");
        stop["info"]["host"] = json!("h2");
        let v = build([stop, ev("x-start", "a", "zzz", &t(1))]).to_value();
        let node = &v["children"][0];
        assert_eq!(node["info"]["project"], "other");
        assert_eq!(node["info"]["host"], "h2");
        assert_eq!(node["parent_id"], "b");
        assert_eq!(node["info"]["exception"], "None");
    }

    #[test]
    fn msec_truncates_like_python() {
        assert_eq!(msec(0), 0);
        assert_eq!(msec(999), 0);
        assert_eq!(msec(1_999), 1);
        assert_eq!(msec(86_400_000_000 + 1_500), 86_400_001);
    }

    #[test]
    fn corrupt_events_are_skipped_and_counted() {
        let events = vec![
            json!(1),
            json!("x"),
            json!({"name": "a-start"}),
            json!({"name": 1, "trace_id": "t", "parent_id": "p", "timestamp": t(1)}),
            json!({"name": "a-start", "trace_id": "t", "parent_id": "p", "timestamp": "yesterday"}),
            ev("a-start", "t", "b", &t(1)),
            ev("a-start", "t", "b", &t(1)),
            json!({"name": "a-stop", "trace_id": "t", "parent_id": "b", "timestamp": t(3), "info": "not a dict"}),
        ];
        let r = build(events);
        assert_eq!(r.skipped(), 6);
        let v = r.to_value();
        assert_eq!(v["children"][0]["info"]["finished"], 2);
        assert_eq!(v["children"][0]["info"]["exception"], "None");
        assert_eq!(v["children"][0]["info"]["host"], "h");
    }

    #[test]
    fn cycles_keep_every_node_once() {
        let events = vec![
            ev("a-start", "1", "3", &t(1)),
            ev("a-start", "2", "1", &t(2)),
            ev("a-start", "3", "2", &t(3)),
            ev("a-start", "4", "4", &t(4)),
            ev("a-start", "5", "3", &t(5)),
        ];
        let r = build(events);
        assert_eq!(r.cycles_broken(), 2);
        let roots: Vec<_> = r.roots().map(|n| n.trace_id()).collect();
        assert_eq!(roots, ["1", "4"]);
        let mut seen = Vec::new();
        let mut stack: Vec<_> = r.roots().collect();
        while let Some(n) = stack.pop() {
            seen.push(n.trace_id().to_owned());
            stack.extend(n.children());
        }
        seen.sort();
        assert_eq!(seen, ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn siblings_sorted_stably_by_start() {
        let events = vec![
            ev("c-start", "c", "b", &t(5)),
            ev("a-start", "a", "b", &t(1)),
            ev("d-start", "d", "b", &t(5)),
            ev("e-start", "e", "b", &t(0)),
        ];
        let r = build(events);
        let order: Vec<_> = r.roots().map(|n| n.trace_id()).collect();
        assert_eq!(order, ["e", "a", "c", "d"]);
    }

    /// `cargo test --release -p osprofiler --lib -- --ignored million`
    #[test]
    #[ignore = "large: run in release"]
    fn million_events() {
        let nodes = 500_000u64;
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut events = Vec::with_capacity(2 * nodes as usize);
        for i in 0..nodes {
            let parent = if i == 0 {
                "b".to_string()
            } else {
                format!("n{}", rand(i))
            };
            for (name, ms) in [("f-start", rand(60_000)), ("f-stop", rand(60_000))] {
                events.push(
                    json!({"name": name, "base_id": "b", "trace_id": format!("n{i}"),
                    "parent_id": parent, "timestamp": t(ms as u32), "info": {"host": "h"},
                    "project": "p", "service": "s"}),
                );
            }
        }
        // CPU time of this thread, in clock ticks (the machine may be busy).
        let cpu = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let tick = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            tick(11) + tick(12)
        };
        let (cpu0, started) = (cpu(), std::time::Instant::now());
        let report = build(events);
        let (cpu1, built) = (cpu(), started.elapsed());
        let mut out = Vec::new();
        serde_json::to_writer(&mut out, &report).unwrap();
        eprintln!(
            "CPU ticks (1/100 s): build {}, serialize {}",
            cpu1 - cpu0,
            cpu() - cpu1
        );
        eprintln!(
            "1M events: built in {built:?}, serialized {} MB in {:?}",
            out.len() >> 20,
            started.elapsed() - built
        );
        assert_eq!(report.len(), nodes as usize);
        assert_eq!(report.skipped(), 0);
    }

    #[test]
    fn deep_chain_serializes_without_overflow() {
        let depth = 100_000u32;
        let mut events = Vec::with_capacity(depth as usize);
        for i in 0..depth {
            let parent = if i == 0 {
                "b".to_string()
            } else {
                format!("n{}", i - 1)
            };
            events.push(
                json!({"name": "f-start", "trace_id": format!("n{i}"), "parent_id": parent,
                               "timestamp": t(i % 60_000), "project": null, "service": null}),
            );
        }
        let r = build(events);
        assert_eq!(r.len(), depth as usize);
        let mut out = Vec::new();
        serde_json::to_writer(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\"children\":[").count(), depth as usize + 1);
        let mut depth_seen = 0;
        let mut node = r.roots().next();
        while let Some(n) = node {
            depth_seen += 1;
            node = n.children().next();
        }
        assert_eq!(depth_seen, depth);
    }
}
