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
//! [`build_from_json`] does the same from the stored JSON texts (what the
//! Redis driver reads), without building JSON trees, and
//! [`Report::write_python_json`] prints what Python's `osprofiler trace
//! show --json` prints, byte for byte. Neither panics on any input; they
//! are the entry points for fuzzing.
//!
//! # Where it differs from Python
//!
//! Only on input Python cannot handle (it raises, or silently loses nodes):
//! - Texts that are not valid UTF-8 JSON are skipped and counted in
//!   [`Report::skipped`] (Python's `get_report` raises). serde_json's
//!   limits apply: nesting deeper than 128 levels, or a float beyond the
//!   f64 range, makes the text invalid.
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
//! Duplicate keys inside a payload are read as Python reads them (first
//! position, last value). Numbers in payloads kept as text are written as
//! Python writes them (every digit of a big integer); through [`build`]
//! or [`Report::to_value`] they are serde_json numbers (an integer beyond
//! 64 bits becomes a float).
//!
//! # Size
//!
//! Building is O(n log n) in time and O(n) in memory: the report holds the
//! input texts (or values) once, plus a few ids per node, with `project`,
//! `service`, `host` and `exception` values shared. No step recurses on
//! the tree's depth: loops are cut iteratively, [`Report::write_python_json`]
//! walks the tree with an explicit stack, and serde serialization grows the
//! stack on the heap as needed, so a chain of 100,000 nested calls is fine.
//! A [`serde_json::Value`] that deep is another matter (serde_json drops and
//! prints it recursively): for very deep traces prefer
//! `serde_json::to_writer(w, &report)` over [`Report::to_value`]. Python's
//! indented layout itself grows with the square of the depth.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::notification::parse_timestamp;

/// Maps keyed by stored ids and names. foldhash (already serde_json's
/// hasher here) is several times faster than SipHash on uuid-sized keys,
/// and its per-process random seed still keeps hostile ids from
/// colliding on purpose.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// Builds the report of one trace from its stored payloads (each the JSON
/// object a Redis-style driver stores: the notification plus `project` and
/// `service`), in the order the store returned them.
pub fn build<I: IntoIterator<Item = Value>>(events: I) -> Report {
    let events = events.into_iter();
    let mut builder = ReportBuilder::sized_for(events.size_hint().0);
    for event in events {
        builder.push(event);
    }
    builder.finish()
}

/// Builds the report of one trace from the JSON texts of its stored
/// payloads (what a Redis list holds), in the order the store returned
/// them. Anything that is not such a payload (invalid UTF-8 or JSON, wrong
/// types, ...) is skipped and counted in [`Report::skipped`]; this never
/// panics, whatever the bytes.
///
/// Faster than [`build`]: payloads are checked and their few needed fields
/// read without building a JSON tree, and the text is kept and re-read
/// only when the report is serialized.
///
/// Owned texts (`Vec<u8>`, `String`) are kept without a copy. Big traces
/// are read on two threads (the result is the same).
pub fn build_from_json<I, B>(events: I) -> Report
where
    I: IntoIterator<Item = B>,
    B: Into<Vec<u8>>,
{
    let texts: Vec<Vec<u8>> = events.into_iter().map(Into::into).collect();
    let mut builder = ReportBuilder::sized_for(texts.len());
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if texts.len() < 2 * PARSE_CHUNK || !two_cores {
        for text in texts {
            builder.push_json_owned(text);
        }
    } else {
        parse_on_two_threads(&mut builder, texts);
    }
    builder.finish()
}

/// Texts a thread takes at a time in [`parse_on_two_threads`].
const PARSE_CHUNK: usize = 1024;

/// Pushes `texts` in order while a helper thread parses chunks from the
/// end: this thread parses and pushes chunks from the front, then pushes
/// the helper's, in input order, so the report is the one a single thread
/// builds. They meet wherever their speeds put them: a helper that gets
/// little CPU (a busy machine) costs at most the wait for one chunk.
fn parse_on_two_threads(builder: &mut ReportBuilder, texts: Vec<Vec<u8>>) {
    use std::sync::{Mutex, MutexGuard, PoisonError};

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
    let mut rest = texts.into_iter();
    let chunks: Vec<Mutex<Vec<Vec<u8>>>> = std::iter::from_fn(|| {
        let chunk: Vec<Vec<u8>> = rest.by_ref().take(PARSE_CHUNK).collect();
        (!chunk.is_empty()).then_some(Mutex::new(chunk))
    })
    .collect();
    let parsed: Vec<Mutex<Vec<Parsed>>> = chunks.iter().map(|_| Mutex::default()).collect();
    // Chunks before `front` are this thread's, from `back` on the helper's.
    let claims = Mutex::new((0, chunks.len()));
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().spawn_scoped(scope, || loop {
            let (i, mut slot) = {
                let mut claims = lock(&claims);
                if claims.0 >= claims.1 {
                    break;
                }
                claims.1 -= 1;
                // Locked before the claim shows: whoever sees chunk `i`
                // claimed waits here for its results.
                (claims.1, lock(&parsed[claims.1]))
            };
            let texts = std::mem::take(&mut *lock(&chunks[i]));
            *slot = texts.into_iter().map(Parsed::new).collect();
        });
        let helping = helper.is_ok();
        for i in 0..chunks.len() {
            let mine = !helping || {
                let mut claims = lock(&claims);
                let free = claims.0 < claims.1;
                if free {
                    claims.0 += 1;
                }
                free
            };
            if mine {
                for text in std::mem::take(&mut *lock(&chunks[i])) {
                    builder.push_json_owned(text);
                }
            } else {
                for parsed in std::mem::take(&mut *lock(&parsed[i])) {
                    builder.push_parsed(parsed);
                }
            }
        }
    });
}

/// Writes any JSON value the way [`Report::write_python_json`] writes a
/// report (for a report saved as JSON and read back).
pub fn write_python_json_value<W: io::Write>(value: &Value, writer: W) -> io::Result<()> {
    crate::pyjson::to_writer_pretty(writer, value)
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
    index: FastMap<Box<str>, u32>,
    /// Every node's `trace_id` and `parent_id`, end to end: one buffer
    /// instead of two allocations per node.
    ids: String,
    /// Payload names (`db-start`, ...), interned: nodes repeat a few.
    names: Interner,
    /// `project`, `service`, `host` and `exception` values, shared: most
    /// nodes of a trace repeat the same few.
    values: Values,
    /// Operation names (`name` up to the first `-`), first-seen order.
    ops: Vec<Box<str>>,
    op_index: FastMap<Box<str>, usize>,
    /// Payload names of nodes with many of them, so that the duplicate
    /// check stays O(1) for hostile input.
    many_names: FastMap<u32, FastSet<u32>>,
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

/// Interned JSON values; strings and `null` are shared.
#[derive(Default)]
struct Values {
    list: Vec<Value>,
    strings: FastMap<Box<str>, usize>,
    null: Option<usize>,
    recent: [usize; 4],
}

impl Values {
    fn intern(&mut self, value: Option<FieldRef<'_>>) -> usize {
        match value {
            None | Some(FieldRef::Value(Value::Null)) => match self.null {
                Some(i) => i,
                None => {
                    let i = self.add(Value::Null);
                    self.null = Some(i);
                    i
                }
            },
            Some(FieldRef::Str(s)) => self.intern_str(s),
            Some(FieldRef::Value(Value::String(s))) => self.intern_str(s),
            Some(FieldRef::Value(other)) => self.add(other.clone()),
        }
    }

    fn intern_str(&mut self, s: &str) -> usize {
        // Nodes mostly repeat the last few strings: skip the hashing.
        for &i in &self.recent {
            if matches!(self.list.get(i), Some(Value::String(r)) if r == s) {
                return i;
            }
        }
        let i = match self.strings.get(s) {
            Some(&i) => i,
            None => {
                let i = self.add(Value::from(s));
                self.strings.insert(s.into(), i);
                i
            }
        };
        self.recent.rotate_right(1);
        self.recent[0] = i;
        i
    }

    fn add(&mut self, value: Value) -> usize {
        self.list.push(value);
        self.list.len() - 1
    }
}

/// Strings numbered in first-seen order.
#[derive(Default)]
struct Interner {
    list: Vec<Box<str>>,
    index: FastMap<Box<str>, u32>,
    /// The last string looked up: events mostly alternate between two
    /// names, and a start is often followed by the same start.
    recent: [u32; 2],
}

impl Interner {
    /// The number of `s`; `None` past `u32::MAX` strings.
    fn intern(&mut self, s: &str) -> Option<u32> {
        for &i in &self.recent {
            if matches!(self.list.get(i as usize), Some(r) if **r == *s) {
                return Some(i);
            }
        }
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.list.len()).ok()?;
                self.list.push(s.into());
                self.index.insert(s.into(), i);
                i
            }
        };
        self.recent = [i, self.recent[0]];
        Some(i)
    }
}

/// Where a node's `info` keys go, in Python's insertion order (a dict keeps
/// the position of a key's first assignment).
enum Entry {
    /// `meta.raw_payload.<name>`, by interned name.
    Payload(u32, Payload),
    Started,
    Finished,
    Exception,
}

/// One stored notification, kept as parsed or as its JSON text.
enum Payload {
    Value(Box<Value>),
    /// Valid JSON without duplicate keys, re-read when serialized.
    Json(Box<str>),
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Value(value) => value.serialize(serializer),
            Payload::Json(text) => JsonText::new(text).value(serializer),
        }
    }
}

struct Node {
    /// Where `trace_id` and `parent_id` are in the ids buffer.
    trace_id: Span,
    parent_id: Span,
    op: usize,
    project: usize,
    service: usize,
    host: usize,
    /// Value index of the last stop's exception.
    exception: usize,
    entries: Vec<Entry>,
    /// Microseconds since the epoch until `finish`, then ms since the
    /// trace's start.
    started: Option<i64>,
    finished: Option<i64>,
}

/// A range of the ids buffer.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn push(ids: &mut String, s: &str) -> Span {
        let start = ids.len();
        ids.push_str(s);
        Span {
            start,
            end: ids.len(),
        }
    }

    fn of(self, ids: &str) -> &str {
        ids.get(self.start..self.end).unwrap_or_default()
    }
}

const NO_PARENT: u32 = u32::MAX;

/// Entries of a node with one start and one stop: payload, `started`,
/// payload, `finished`, `exception`.
const USUAL_ENTRIES: usize = 5;

/// Nodes with more payloads than this get a set of their names.
const LINEAR_NAMES: usize = 16;

/// What the builder reads from one event, borrowed from wherever it is.
struct EventRef<'a> {
    trace_id: &'a str,
    parent_id: &'a str,
    name: &'a str,
    project: Option<FieldRef<'a>>,
    service: Option<FieldRef<'a>>,
    host: Option<FieldRef<'a>>,
}

/// A JSON value read from an event: most are strings, which stay borrowed
/// from the text until interned.
enum Field<'a> {
    Str(Cow<'a, str>),
    Value(Value),
}

#[derive(Clone, Copy)]
enum FieldRef<'a> {
    Str(&'a str),
    Value(&'a Value),
}

impl<'a> From<&'a Value> for FieldRef<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::String(s) => FieldRef::Str(s),
            other => FieldRef::Value(other),
        }
    }
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> ReportBuilder {
        ReportBuilder::default()
    }

    /// An empty builder with room for about `events` events (a start and
    /// a stop per node), so that big traces do not regrow and rehash.
    fn sized_for(events: usize) -> ReportBuilder {
        // A bound, in case an iterator's size hint is wild.
        let nodes = (events / 2).min(1 << 22);
        ReportBuilder {
            nodes: Vec::with_capacity(nodes),
            index: FastMap::with_capacity_and_hasher(nodes, Default::default()),
            ..ReportBuilder::default()
        }
    }

    /// Adds one stored payload, reading it as Python's Redis driver does.
    /// Returns false when the payload was skipped (see the module docs).
    pub fn push(&mut self, payload: Value) -> bool {
        let Value::Object(obj) = &payload else {
            self.skipped += 1;
            return false;
        };
        // One pass over the (small) object instead of a hashed lookup per
        // field.
        let (mut trace_id, mut parent_id, mut name, mut timestamp) = (None, None, None, None);
        let (mut project, mut service, mut info) = (None, None, None);
        for (key, value) in obj {
            match key.as_str() {
                "trace_id" => trace_id = Some(value),
                "parent_id" => parent_id = Some(value),
                "name" => name = Some(value),
                "timestamp" => timestamp = Some(value),
                "project" => project = Some(value),
                "service" => service = Some(value),
                "info" => info = Some(value),
                _ => {}
            }
        }
        let (Some(trace_id), Some(parent_id), Some(name), Some(timestamp)) = (
            trace_id.and_then(Value::as_str),
            parent_id.and_then(Value::as_str),
            name.and_then(Value::as_str),
            timestamp.and_then(Value::as_str),
        ) else {
            self.skipped += 1;
            return false;
        };
        let Some(ts) = parse_timestamp(timestamp) else {
            self.skipped += 1;
            return false;
        };
        let event = EventRef {
            trace_id,
            parent_id,
            name,
            project: project.map(FieldRef::from),
            service: service.map(FieldRef::from),
            host: info.and_then(|i| i.get("host")).map(FieldRef::from),
        };
        let Some((id, name_id)) = self.node_for(&event) else {
            return false;
        };
        let exception = match info {
            Some(Value::Object(info)) => info.get("etype").map(FieldRef::from),
            _ => None,
        };
        let exception = self.exception_of(name, exception);
        self.record(
            id,
            name_id,
            ts,
            exception,
            Payload::Value(Box::new(payload)),
        );
        true
    }

    /// Adds one stored payload given as JSON text (see [`build_from_json`]).
    /// Returns false when it was skipped.
    pub fn push_json(&mut self, json: &[u8]) -> bool {
        self.push_json_owned(json.to_vec())
    }

    /// [`push_json`](Self::push_json) of a text the builder may keep.
    pub fn push_json_owned(&mut self, json: Vec<u8>) -> bool {
        self.push_parsed(Parsed::new(json))
    }

    /// Adds a text read by [`Parsed::new`] (maybe on another thread).
    fn push_parsed(&mut self, parsed: Parsed) -> bool {
        let (text, fields) = match parsed {
            Parsed::NotUtf8 => {
                self.skipped += 1;
                return false;
            }
            Parsed::Text(text, Some(fields)) => (text, fields),
            // Duplicate keys, mistyped fields and the like: read it the
            // general way, which gives Python's answer (or skips it).
            Parsed::Text(text, None) => {
                return match serde_json::from_str::<Value>(&text) {
                    Ok(value) => self.push(value),
                    Err(_) => {
                        self.skipped += 1;
                        false
                    }
                };
            }
        };
        let Some(ts) = fields.timestamp else {
            self.skipped += 1;
            return false;
        };
        // The fields borrow `text`; what the node keeps is copied out
        // first, then the text itself moves into the payload.
        let name = fields.name.get(&text);
        let found = EventRef {
            trace_id: fields.trace_id.get(&text),
            parent_id: fields.parent_id.get(&text),
            name,
            project: fields.project.as_ref().map(|f| f.get(&text)),
            service: fields.service.as_ref().map(|f| f.get(&text)),
            host: fields.host.as_ref().map(|f| f.get(&text)),
        };
        let Some((id, name_id)) = self.node_for(&found) else {
            return false;
        };
        let etype = fields.etype.as_ref().map(|f| f.get(&text));
        let exception = self.exception_of(name, etype);
        self.record(id, name_id, ts, exception, Payload::Json(text.into()));
        true
    }

    /// Adds one notification (Python's `_append_results`). Returns false
    /// when it was skipped: unparseable timestamp, or a duplicate.
    pub fn append(&mut self, event: Event) -> bool {
        let Some(ts) = parse_timestamp(&event.timestamp) else {
            self.skipped += 1;
            return false;
        };
        let found = EventRef {
            trace_id: &event.trace_id,
            parent_id: &event.parent_id,
            name: &event.name,
            project: Some(FieldRef::from(&event.project)),
            service: Some(FieldRef::from(&event.service)),
            host: Some(FieldRef::from(&event.host)),
        };
        let Some((id, name)) = self.node_for(&found) else {
            return false;
        };
        let exception = match event.raw_payload.get("info") {
            Some(Value::Object(info)) => info.get("etype").map(FieldRef::from),
            _ => None,
        };
        let exception = self.exception_of(&event.name, exception);
        let payload = Payload::Value(Box::new(event.raw_payload));
        self.record(id, name, ts, exception, payload);
        true
    }

    /// The `exception` a stop sets (`info.etype`, else `"None"`); `None`
    /// for a start.
    fn exception_of(&mut self, name: &str, etype: Option<FieldRef<'_>>) -> Option<usize> {
        if !name.ends_with("stop") {
            return None;
        }
        Some(match etype {
            Some(value) => self.values.intern(Some(value)),
            None => self.values.intern_str("None"),
        })
    }

    /// The node of `event.trace_id`, created if it is the first event of
    /// that element, and the number of the event's name. `None` (counted
    /// as skipped) for a duplicate event or past `u32::MAX - 1` nodes or
    /// names.
    fn node_for(&mut self, event: &EventRef<'_>) -> Option<(u32, u32)> {
        let Some(name) = self.names.intern(event.name) else {
            self.skipped += 1;
            return None;
        };
        if let Some(&id) = self.index.get(event.trace_id) {
            if self.has_payload(id, name) {
                self.skipped += 1;
                return None;
            }
            return Some((id, name));
        }
        let id = match u32::try_from(self.nodes.len()) {
            Ok(id) if id != NO_PARENT => id,
            _ => {
                self.skipped += 1;
                return None;
            }
        };
        let op_name = event.name.split('-').next().unwrap_or_default();
        let op = match self.op_index.get(op_name) {
            Some(&op) => op,
            None => {
                self.ops.push(op_name.into());
                self.op_index.insert(op_name.into(), self.ops.len() - 1);
                self.ops.len() - 1
            }
        };
        let project = self.values.intern(event.project);
        let service = self.values.intern(event.service);
        let host = self.values.intern(event.host);
        self.index.insert(event.trace_id.into(), id);
        let trace_id = Span::push(&mut self.ids, event.trace_id);
        let parent_id = Span::push(&mut self.ids, event.parent_id);
        self.nodes.push(Node {
            trace_id,
            parent_id,
            op,
            project,
            service,
            host,
            exception: 0,
            entries: Vec::with_capacity(USUAL_ENTRIES),
            started: None,
            finished: None,
        });
        Some((id, name))
    }

    fn has_payload(&self, id: u32, name: u32) -> bool {
        if let Some(names) = self.many_names.get(&id) {
            return names.contains(&name);
        }
        self.nodes[id as usize]
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Payload(n, _) if *n == name))
    }

    /// The rest of `_append_results` once the node is known.
    fn record(&mut self, id: u32, name: u32, ts: i64, exception: Option<usize>, payload: Payload) {
        let node = &mut self.nodes[id as usize];
        if let Some(names) = self.many_names.get_mut(&id) {
            names.insert(name);
        } else if node.entries.len() >= LINEAR_NAMES {
            let mut names: FastSet<u32> = node
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Payload(n, _) => Some(*n),
                    _ => None,
                })
                .collect();
            names.insert(name);
            self.many_names.insert(id, names);
        }
        node.entries.push(Entry::Payload(name, payload));
        match exception {
            Some(exception) => {
                // A key keeps its first position; the last stop wins.
                if node.finished.is_none() {
                    node.entries.push(Entry::Finished);
                    node.entries.push(Entry::Exception);
                }
                node.exception = exception;
                node.finished = Some(ts);
            }
            None => {
                if node.started.is_none() {
                    node.entries.push(Entry::Started);
                }
                node.started = Some(ts);
                if !matches!(self.last_started_at, Some(last) if last >= ts) {
                    self.last_started_at = Some(ts);
                }
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
            ids,
            names,
            values,
            ops,
            started_at,
            finished_at,
            last_started_at,
            skipped,
            ..
        } = self;
        let origin = started_at.unwrap_or(0);
        let mut stats: Vec<(Box<str>, i64, i64)> = ops.into_iter().map(|op| (op, 0, 0)).collect();
        for node in &mut nodes {
            // A node has at least one of the two: it was created by an event.
            let (started, finished) = match (node.started, node.finished) {
                (Some(s), Some(f)) => (s, f),
                (Some(s), None) => {
                    node.entries.push(Entry::Finished);
                    (s, s)
                }
                (None, Some(f)) => {
                    node.entries.push(Entry::Started);
                    (f, f)
                }
                (None, None) => (origin, origin),
            };
            let (started, finished) = (msec(started - origin), msec(finished - origin));
            node.started = Some(started);
            node.finished = Some(finished);
            let stat = &mut stats[node.op];
            stat.1 += 1;
            stat.2 += finished - started;
        }

        let mut parents: Vec<u32> = nodes
            .iter()
            .map(|n| {
                index
                    .get(n.parent_id.of(&ids))
                    .copied()
                    .unwrap_or(NO_PARENT)
            })
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
            let siblings = &mut children[offsets[i] as usize..offsets[i + 1] as usize];
            if siblings.len() > 1 {
                siblings.sort_by_key(started_of);
            }
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
            nodes,
            ids,
            names: names.list,
            values: values.list,
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

/// A stored text, checked and its few needed fields located: the part of
/// [`ReportBuilder::push_json_owned`] that does not touch the builder, so
/// that it can run on another thread.
// Nearly every text is a `Text`: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    NotUtf8,
    /// The text, and its fields unless it needs the general reading.
    Text(String, Option<Fields>),
}

impl Parsed {
    fn new(json: Vec<u8>) -> Parsed {
        let Ok(text) = String::from_utf8(json) else {
            return Parsed::NotUtf8;
        };
        let fields = serde_json::from_str::<RawEvent<'_>>(&text)
            .ok()
            .map(|event| Fields::new(&text, event));
        Parsed::Text(text, fields)
    }
}

/// [`RawEvent`] without the borrow: strings as places in the text.
struct Fields {
    name: Piece,
    trace_id: Piece,
    parent_id: Piece,
    /// `None` when the timestamp does not parse.
    timestamp: Option<i64>,
    project: Option<FieldPiece>,
    service: Option<FieldPiece>,
    host: Option<FieldPiece>,
    /// `info.etype`, when `info` is an object.
    etype: Option<FieldPiece>,
}

impl Fields {
    fn new(text: &str, event: RawEvent<'_>) -> Fields {
        let field = |f: Option<Field<'_>>| f.map(|f| FieldPiece::new(text, f));
        Fields {
            timestamp: parse_timestamp(&event.timestamp),
            name: Piece::new(text, event.name),
            trace_id: Piece::new(text, event.trace_id),
            parent_id: Piece::new(text, event.parent_id),
            project: field(event.project),
            service: field(event.service),
            host: field(event.info.host),
            etype: if event.info.is_object {
                field(event.info.etype)
            } else {
                None
            },
        }
    }
}

/// A string of a text: where it is, or unescaped when it had escapes.
enum Piece {
    At(usize, usize),
    Unescaped(Box<str>),
}

impl Piece {
    fn new(text: &str, s: Cow<'_, str>) -> Piece {
        match s {
            // Borrowed strings are slices of `text` (serde_json borrows
            // from its input).
            Cow::Borrowed(s) => {
                let start = (s.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
                Piece::At(start, start.wrapping_add(s.len()))
            }
            Cow::Owned(s) => Piece::Unescaped(s.into()),
        }
    }

    fn get<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            Piece::At(start, end) => text.get(*start..*end).unwrap_or_default(),
            Piece::Unescaped(s) => s,
        }
    }
}

/// [`Field`] without the borrow (a value other than a string is rare:
/// boxed, to keep parsed texts small while they wait).
enum FieldPiece {
    Str(Piece),
    Value(Box<Value>),
}

impl FieldPiece {
    fn new(text: &str, field: Field<'_>) -> FieldPiece {
        match field {
            Field::Str(s) => FieldPiece::Str(Piece::new(text, s)),
            Field::Value(v) => FieldPiece::Value(Box::new(v)),
        }
    }

    fn get<'a>(&'a self, text: &'a str) -> FieldRef<'a> {
        match self {
            FieldPiece::Str(s) => FieldRef::Str(s.get(text)),
            FieldPiece::Value(v) => FieldRef::Value(v),
        }
    }
}

/// The fields of a stored payload the report needs, read straight from its
/// JSON text. Fails (and the caller falls back to a [`Value`]) on anything
/// unusual: a missing or non-string id field, duplicate keys anywhere.
struct RawEvent<'a> {
    name: Cow<'a, str>,
    trace_id: Cow<'a, str>,
    parent_id: Cow<'a, str>,
    timestamp: Cow<'a, str>,
    project: Option<Field<'a>>,
    service: Option<Field<'a>>,
    info: RawInfo<'a>,
}

#[derive(Default)]
struct RawInfo<'a> {
    is_object: bool,
    host: Option<Field<'a>>,
    etype: Option<Field<'a>>,
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field<'de>, E> {
                Ok(Field::Value(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<'de>, E> {
                Ok(Field::Value(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<'de>, E> {
                Ok(Field::Value(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<'de>, E> {
                Ok(Field::Value(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
                Ok(Field::Value(Value::Null))
            }
            // An object or array here is rare; read the whole event the
            // general way then (it also handles duplicate keys inside).
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// A map key, borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The keys of one object, to refuse duplicates (Python keeps the last
/// value at the first position; the `Value` fallback does the same).
/// Small objects with plain keys are checked on the stack: no allocation
/// per payload.
struct KeySet<'a> {
    keys: [&'a str; LINEAR_NAMES],
    len: usize,
    set: Option<FastSet<Cow<'a, str>>>,
}

impl Default for KeySet<'_> {
    fn default() -> Self {
        KeySet {
            keys: [""; LINEAR_NAMES],
            len: 0,
            set: None,
        }
    }
}

impl<'a> KeySet<'a> {
    /// False if the key was already there.
    fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(key);
        }
        let known = &self.keys[..self.len];
        match key {
            Cow::Borrowed(key) if known.len() < LINEAR_NAMES => {
                if known.contains(&key) {
                    return false;
                }
                self.keys[self.len] = key;
                self.len += 1;
                true
            }
            // Many keys, or one with escapes (rare): hash them all.
            key => {
                let mut set: FastSet<Cow<'a, str>> =
                    known.iter().map(|&k| Cow::Borrowed(k)).collect();
                let new = set.insert(key);
                self.set = Some(set);
                new
            }
        }
    }
}

fn duplicate<E: de::Error>() -> E {
    E::custom("duplicate key")
}

/// Any JSON value, checked (no duplicate keys) and thrown away.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut keys = KeySet::default();
        while let Some(Key(key)) = map.next_key()? {
            if !keys.insert(key) {
                return Err(duplicate());
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

impl<'de> Deserialize<'de> for RawInfo<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InfoVisitor;
        impl<'de> Visitor<'de> for InfoVisitor {
            type Value = RawInfo<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawInfo<'de>, E> {
                Ok(RawInfo::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawInfo<'de>, A::Error> {
                CheckedVisitor.visit_seq(seq)?;
                Ok(RawInfo::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawInfo<'de>, A::Error> {
                let mut info = RawInfo {
                    is_object: true,
                    ..RawInfo::default()
                };
                let mut keys = KeySet::default();
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "host" => info.host = Some(map.next_value()?),
                        "etype" => info.etype = Some(map.next_value()?),
                        _ => {
                            map.next_value::<Checked>()?;
                        }
                    }
                    if !keys.insert(key) {
                        return Err(duplicate());
                    }
                }
                Ok(info)
            }
        }
        deserializer.deserialize_any(InfoVisitor)
    }
}

impl<'de> Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = RawEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a notification object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
                let (mut name, mut trace_id, mut parent_id, mut timestamp) =
                    (None, None, None, None);
                let (mut project, mut service, mut info) = (None, None, None);
                let mut keys = KeySet::default();
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "name" => name = Some(map.next_value::<Key<'de>>()?.0),
                        "trace_id" => trace_id = Some(map.next_value::<Key<'de>>()?.0),
                        "parent_id" => parent_id = Some(map.next_value::<Key<'de>>()?.0),
                        "timestamp" => timestamp = Some(map.next_value::<Key<'de>>()?.0),
                        "project" => project = Some(map.next_value()?),
                        "service" => service = Some(map.next_value()?),
                        "info" => info = Some(map.next_value()?),
                        _ => {
                            map.next_value::<Checked>()?;
                        }
                    }
                    if !keys.insert(key) {
                        return Err(duplicate());
                    }
                }
                let missing = || de::Error::custom("missing field");
                Ok(RawEvent {
                    name: name.ok_or_else(missing)?,
                    trace_id: trace_id.ok_or_else(missing)?,
                    parent_id: parent_id.ok_or_else(missing)?,
                    timestamp: timestamp.ok_or_else(missing)?,
                    project,
                    service,
                    info: info.unwrap_or_default(),
                })
            }
        }
        deserializer.deserialize_map(EventVisitor)
    }
}

/// Serializes a JSON text that serde_json has already accepted, token by
/// token, without building a tree. Nesting is bounded by serde_json's
/// limit (128) on the way in. On text it did not accept it still
/// terminates and never panics: every step consumes input or stops.
struct JsonText<'a> {
    text: &'a str,
    pos: Cell<usize>,
}

/// The value at the cursor, as a `Serialize` for nested calls.
struct At<'c, 'a>(&'c JsonText<'a>);

impl Serialize for At<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value(serializer)
    }
}

impl<'a> JsonText<'a> {
    fn new(text: &'a str) -> JsonText<'a> {
        JsonText {
            text,
            pos: Cell::new(0),
        }
    }

    fn peek(&self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        let mut pos = self.pos.get();
        while let Some(&b) = bytes.get(pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos.set(pos);
                return Some(b);
            }
            pos += 1;
        }
        self.pos.set(pos);
        None
    }

    fn bump(&self, n: usize) {
        self.pos.set((self.pos.get() + n).min(self.text.len()));
    }

    fn value<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.peek() {
            Some(b'{') => {
                self.bump(1);
                let mut map = serializer.serialize_map(None)?;
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            let key = self.string();
                            if self.peek() == Some(b':') {
                                self.bump(1);
                            }
                            map.serialize_entry(&*key, &At(self))?;
                        }
                        Some(b',') => self.bump(1),
                        Some(b'}') => {
                            self.bump(1);
                            break;
                        }
                        _ => break,
                    }
                }
                map.end()
            }
            Some(b'[') => {
                self.bump(1);
                let mut seq = serializer.serialize_seq(None)?;
                loop {
                    match self.peek() {
                        Some(b',') => self.bump(1),
                        Some(b']') => {
                            self.bump(1);
                            break;
                        }
                        None => break,
                        Some(_) => {
                            let before = self.pos.get();
                            seq.serialize_element(&At(self))?;
                            if self.pos.get() == before {
                                break;
                            }
                        }
                    }
                }
                seq.end()
            }
            Some(b'"') => serializer.serialize_str(&self.string()),
            Some(b't') => {
                self.bump(4);
                serializer.serialize_bool(true)
            }
            Some(b'f') => {
                self.bump(5);
                serializer.serialize_bool(false)
            }
            Some(b'n') => {
                self.bump(4);
                serializer.serialize_unit()
            }
            _ => self.number(serializer),
        }
    }

    /// A number as serde_json's `Value` reads it: integers as i64/u64
    /// when they fit, anything else as f64.
    fn number<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let start = self.pos.get();
        let len = self.text.as_bytes()[start..]
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        self.bump(len);
        let digits = &self.text[start..start + len];
        if !digits.contains(['.', 'e', 'E']) {
            if let Ok(n) = digits.parse::<i64>() {
                return serializer.serialize_i64(n);
            }
            if let Ok(n) = digits.parse::<u64>() {
                return serializer.serialize_u64(n);
            }
        }
        match digits.parse::<f64>() {
            Ok(f) => serializer.serialize_f64(f),
            Err(_) => serializer.serialize_unit(),
        }
    }

    /// The string at the cursor (which is on its opening quote), unescaped.
    fn string(&self) -> Cow<'a, str> {
        self.bump(1);
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.pos.get();
        let mut pos = start;
        while pos < bytes.len() && bytes[pos] != b'"' && bytes[pos] != b'\\' {
            pos += 1;
        }
        if pos >= bytes.len() || bytes[pos] == b'"' {
            self.pos.set((pos + 1).min(bytes.len()));
            return Cow::Borrowed(&text[start..pos]);
        }
        let mut out = String::from(&text[start..pos]);
        while pos < bytes.len() {
            match bytes[pos] {
                b'"' => {
                    pos += 1;
                    break;
                }
                b'\\' => {
                    let escape = bytes.get(pos + 1).copied().unwrap_or(b'\\');
                    pos += 2;
                    match escape {
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = hex4(text, pos);
                            pos += 4;
                            let mut code = unit.map(u32::from);
                            if let Some(high @ 0xD800..=0xDBFF) = unit {
                                if bytes.get(pos..pos + 2) == Some(b"\\u") {
                                    if let Some(low @ 0xDC00..=0xDFFF) = hex4(text, pos + 2) {
                                        pos += 6;
                                        code = Some(
                                            0x10000
                                                + ((u32::from(high) - 0xD800) << 10)
                                                + (u32::from(low) - 0xDC00),
                                        );
                                    }
                                }
                            }
                            out.push(code.and_then(char::from_u32).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(char::from(other)),
                    }
                }
                _ => {
                    let run = bytes[pos..]
                        .iter()
                        .take_while(|&&b| b != b'"' && b != b'\\')
                        .count();
                    // Runs end at ASCII bytes, so they are char boundaries.
                    out.push_str(text.get(pos..pos + run).unwrap_or_default());
                    pos += run;
                }
            }
        }
        self.pos.set(pos.min(bytes.len()));
        Cow::Owned(out)
    }
}

fn hex4(text: &str, at: usize) -> Option<u16> {
    u16::from_str_radix(text.get(at..at + 4)?, 16).ok()
}

/// `"started": 12` / `"finished": 12` (`null` cannot happen after
/// `finish`, but is written as Python would).
fn write_ms<W: ?Sized + io::Write>(w: &mut W, key: &str, ms: Option<i64>) -> io::Result<()> {
    match ms {
        Some(ms) => write!(w, "\"{key}\": {ms}"),
        None => write!(w, "\"{key}\": null"),
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

/// The call tree of one trace. Serializes to Python's report JSON.
pub struct Report {
    nodes: Vec<Node>,
    /// Spans of `trace_id`s and `parent_id`s.
    ids: String,
    /// Payload names.
    names: Vec<Box<str>>,
    values: Vec<Value>,
    /// Children of node `i` are `children[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    children: Vec<u32>,
    roots: Vec<u32>,
    total_finished: Option<i64>,
    last_trace_started: Option<i64>,
    stats: Vec<(Box<str>, i64, i64)>,
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

    /// Writes the report exactly as Python's `osprofiler trace show --json`
    /// prints it (`json.dumps(report, indent=2, separators=(",", ": "))`:
    /// ASCII only, floats in `repr` form), without the final newline.
    ///
    /// Streams straight into `writer` (buffer it), walking the tree without
    /// recursion (any depth), and re-reads payloads kept as JSON text
    /// without building them.
    pub fn write_python_json<W: io::Write>(&self, mut writer: W) -> io::Result<()> {
        use crate::pyjson::{to_writer_pretty_at, write_newline, write_python_str};
        /// An open `children` array: ids left, its level, whether the next
        /// element is its first.
        struct Frame<'r> {
            ids: &'r [u32],
            level: usize,
            first: bool,
        }
        let w = &mut writer;
        w.write_all(b"{")?;
        write_newline(w, 1)?;
        w.write_all(b"\"info\": ")?;
        let total = TotalInfo {
            finished: self.total_finished,
            last_trace_started: self.last_trace_started,
        };
        to_writer_pretty_at(w, &total, 1)?;
        w.write_all(b",")?;
        write_newline(w, 1)?;
        w.write_all(b"\"children\": ")?;
        let mut stack: Vec<Frame<'_>> = Vec::new();
        if self.roots.is_empty() {
            w.write_all(b"[]")?;
        } else {
            w.write_all(b"[")?;
            stack.push(Frame {
                ids: &self.roots,
                level: 1,
                first: true,
            });
        }
        while let Some(frame) = stack.last_mut() {
            let level = frame.level;
            let Some((&id, rest)) = frame.ids.split_first() else {
                stack.pop();
                write_newline(w, level)?;
                w.write_all(b"]")?;
                if !stack.is_empty() {
                    // These were a node's children: close that node.
                    write_newline(w, level - 1)?;
                    w.write_all(b"}")?;
                }
                continue;
            };
            frame.ids = rest;
            if !std::mem::replace(&mut frame.first, false) {
                w.write_all(b",")?;
            }
            let node = ReportNode { report: self, id };
            let (outer, inner) = (level + 1, level + 2);
            write_newline(w, outer)?;
            w.write_all(b"{")?;
            write_newline(w, inner)?;
            w.write_all(b"\"info\": ")?;
            self.write_info(w, node, inner)?;
            w.write_all(b",")?;
            write_newline(w, inner)?;
            w.write_all(b"\"trace_id\": ")?;
            write_python_str(w, node.trace_id())?;
            w.write_all(b",")?;
            write_newline(w, inner)?;
            w.write_all(b"\"parent_id\": ")?;
            write_python_str(w, node.parent_id())?;
            w.write_all(b",")?;
            write_newline(w, inner)?;
            w.write_all(b"\"children\": ")?;
            let children = self.children_of(id);
            if children.is_empty() {
                w.write_all(b"[]")?;
                write_newline(w, outer)?;
                w.write_all(b"}")?;
            } else {
                w.write_all(b"[")?;
                stack.push(Frame {
                    ids: children,
                    level: inner,
                    first: true,
                });
            }
        }
        w.write_all(b",")?;
        write_newline(w, 1)?;
        w.write_all(b"\"stats\": ")?;
        to_writer_pretty_at(w, &Stats(&self.stats), 1)?;
        write_newline(w, 0)?;
        w.write_all(b"}")
    }

    /// A node's `info` object at `level`, as `write_python_json` lays it.
    fn write_info<W: ?Sized + io::Write>(
        &self,
        w: &mut W,
        node: ReportNode<'_>,
        level: usize,
    ) -> io::Result<()> {
        use crate::pyjson::{
            to_writer_pretty_at, transcode_pretty, write_newline, write_python_str,
        };
        let data = node.data();
        let inner = level + 1;
        let value = |i: usize| self.values.get(i).unwrap_or(&Value::Null);
        let entry = |w: &mut W, key: &str, v: &Value| -> io::Result<()> {
            w.write_all(b",")?;
            write_newline(w, inner)?;
            write_python_str(w, key)?;
            w.write_all(b": ")?;
            to_writer_pretty_at(w, v, inner)
        };
        w.write_all(b"{")?;
        write_newline(w, inner)?;
        w.write_all(b"\"name\": ")?;
        write_python_str(w, node.name())?;
        entry(w, "project", value(data.project))?;
        entry(w, "service", value(data.service))?;
        entry(w, "host", value(data.host))?;
        for item in &data.entries {
            w.write_all(b",")?;
            write_newline(w, inner)?;
            match item {
                Entry::Payload(name, payload) => {
                    let name = self.name_of(*name);
                    let mut key = String::with_capacity(17 + name.len());
                    key.push_str("meta.raw_payload.");
                    key.push_str(name);
                    write_python_str(w, &key)?;
                    w.write_all(b": ")?;
                    match payload {
                        Payload::Value(v) => to_writer_pretty_at(w, &**v, inner)?,
                        Payload::Json(text) => transcode_pretty(w, text, inner)?,
                    }
                }
                Entry::Started => write_ms(w, "started", data.started)?,
                Entry::Finished => write_ms(w, "finished", data.finished)?,
                Entry::Exception => {
                    w.write_all(b"\"exception\": ")?;
                    to_writer_pretty_at(w, value(data.exception), inner)?;
                }
            }
        }
        write_newline(w, level)?;
        w.write_all(b"}")
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
            .map(|(name, count, duration)| (&**name, *count, *duration))
    }

    /// Top-level nodes, sorted by start.
    pub fn roots(&self) -> impl Iterator<Item = ReportNode<'_>> + '_ {
        self.roots
            .iter()
            .map(move |&id| ReportNode { report: self, id })
    }

    fn name_of(&self, name: u32) -> &str {
        self.names.get(name as usize).map_or("", |n| n)
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
    fn data(&self) -> &'a Node {
        &self.report.nodes[self.id as usize]
    }

    /// The node's `info` object (`name`, `project`, `service`, `host`,
    /// `meta.raw_payload.*`, `started`, `finished`, `exception`), built on
    /// each call: prefer [`name`](Self::name), [`started`](Self::started)
    /// and [`finished`](Self::finished) when they are enough.
    pub fn info(&self) -> Map<String, Value> {
        match serde_json::to_value(NodeInfo(*self)) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// `info.name`: the notification name up to the first `-`.
    pub fn name(&self) -> &'a str {
        &self.report.stats[self.data().op].0
    }

    /// `info.started`: ms since the start of the trace.
    pub fn started(&self) -> i64 {
        self.data().started.unwrap_or(0)
    }

    /// `info.finished`: ms since the start of the trace.
    pub fn finished(&self) -> i64 {
        self.data().finished.unwrap_or(0)
    }

    /// The element's id.
    pub fn trace_id(&self) -> &'a str {
        self.data().trace_id.of(&self.report.ids)
    }

    /// The id of the enclosing element as stored (for a root, usually the
    /// base id).
    pub fn parent_id(&self) -> &'a str {
        self.data().parent_id.of(&self.report.ids)
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

struct Stats<'a>(&'a [(Box<str>, i64, i64)]);

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
            map.serialize_entry(&**name, &Stat(*count, *duration))?;
        }
        map.end()
    }
}

/// A node's `info` object, in Python's key order.
struct NodeInfo<'a>(ReportNode<'a>);

/// `meta.raw_payload.<name>`, written without building the string.
struct MetaKey<'a>(&'a str);

impl Serialize for MetaKey<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("meta.raw_payload.{}", self.0))
    }
}

impl Serialize for NodeInfo<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let report = self.0.report;
        let node = self.0.data();
        let value = |i: usize| report.values.get(i).unwrap_or(&Value::Null);
        let mut map = serializer.serialize_map(Some(4 + node.entries.len()))?;
        map.serialize_entry("name", self.0.name())?;
        map.serialize_entry("project", value(node.project))?;
        map.serialize_entry("service", value(node.service))?;
        map.serialize_entry("host", value(node.host))?;
        for entry in &node.entries {
            match entry {
                Entry::Payload(name, payload) => {
                    map.serialize_entry(&MetaKey(report.name_of(*name)), payload)?
                }
                Entry::Started => map.serialize_entry("started", &node.started)?,
                Entry::Finished => map.serialize_entry("finished", &node.finished)?,
                Entry::Exception => map.serialize_entry("exception", value(node.exception))?,
            }
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
            let mut map = serializer.serialize_map(Some(4))?;
            map.serialize_entry("info", &NodeInfo(*self))?;
            map.serialize_entry("trace_id", self.trace_id())?;
            map.serialize_entry("parent_id", self.parent_id())?;
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

    /// Big inputs are parsed on two threads: same report as one builder
    /// fed in order, whatever the mix of good, damaged, duplicate and
    /// escaped texts.
    #[test]
    fn two_thread_parse_matches_one_thread() {
        let mut texts = Vec::new();
        for i in 0..3 * PARSE_CHUNK + 17 {
            let parent = if i % 7 == 0 {
                "b".to_string()
            } else {
                format!("n{}", i / 3)
            };
            let mut event = ev(
                "db-start",
                &format!("n{i}"),
                &parent,
                &t((i % 60_000) as u32),
            );
            if i % 5 == 0 {
                event["info"]["etype"] = json!("E\u{e9}");
                event["name"] = json!("db-stop");
            }
            let text = match i % 97 {
                0 => b"{\"name\": \"\xff\"}".to_vec(),
                1 => b"[1, 2".to_vec(),
                2 => format!("{{\"name\": \"a-start\", \"name\": \"x-start\", \"trace_id\": \"d{i}\", \"parent_id\": \"b\", \"timestamp\": \"{}\"}}", t(3)).into_bytes(),
                3 => texts.last().cloned().unwrap_or_default(),
                _ => event.to_string().replace("n1", "n\\u0031").into_bytes(),
            };
            texts.push(text);
        }
        let mut one = ReportBuilder::new();
        for text in texts.clone() {
            one.push_json_owned(text);
        }
        let one = one.finish();
        let two = build_from_json(texts);
        assert!(one.skipped() > 0 && one.len() > 2 * PARSE_CHUNK);
        assert_eq!((one.skipped(), one.len()), (two.skipped(), two.len()));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        one.write_python_json(&mut a).unwrap();
        two.write_python_json(&mut b).unwrap();
        assert!(a == b);
    }

    /// JSON texts through `build_from_json` give the report `build` gives
    /// for the parsed values, whatever the escapes, numbers and nesting.
    #[test]
    fn json_texts_report_like_values() {
        let texts = [
            r#"{"name": "wsgi-start", "trace_id": "a", "parent_id": "b", "timestamp": "2024-01-01T00:00:00.000001", "info": {"host": "h\u00e9", "x": [1, -3, 2.50, 1e-7, 1E20, 18446744073709551615, -9223372036854775808, true, false, null, {}, []]}, "project": "p", "service": {"s": 1}}"#,
            r#"{"name": "wsgi-stop", "trace_id": "a", "parent_id": "b", "timestamp": "2024-01-01T00:00:00.005", "info": {"etype": "Err\"or", "s": "\ud83d\ude00 \n\t\/\\ \u0001 é😀"}, "project": "p", "service": "s"}"#,
            r#"  {"trace_id": "c", "parent_id": "a", "name": "db-stop", "timestamp": "2024-01-01T00:00:00.003000", "info": "text"}  "#,
            // Duplicate keys, top level and nested: Python keeps the first
            // position and the last value.
            r#"{"name": "x", "name": "rpc-start", "trace_id": "d", "parent_id": "a", "timestamp": "2024-01-01T00:00:00.002000", "info": {"host": 1, "host": "h2"}}"#,
            r#"{"name": "rpc-stop", "trace_id": "d", "parent_id": "a", "timestamp": "2024-01-01T00:00:00.004000", "info": {"k": {"a": 1, "a": 2}}}"#,
            // Skipped: duplicate event, mistyped, corrupt, not an object;
            // and invalid UTF-8 below.
            r#"{"name": "rpc-stop", "trace_id": "d", "parent_id": "a", "timestamp": "2024-01-01T00:00:00.004000"}"#,
            r#"{"name": "rpc-stop", "trace_id": 5, "parent_id": "a", "timestamp": "2024-01-01T00:00:00.004000"}"#,
            r#"{"name": "rpc-stop", "trace_id": "#,
            "[]",
        ];
        let mut bytes: Vec<Vec<u8>> = texts.iter().map(|t| t.as_bytes().to_vec()).collect();
        bytes.push(b"{\"name\": \"\xff\"}".to_vec());
        let values: Vec<Value> = texts
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect();
        let from_values = build(values);
        let from_text = build_from_json(bytes);
        assert_eq!(from_values.skipped(), 3);
        assert_eq!(from_text.skipped(), 5);
        assert_eq!(from_text.len(), 3);
        let (a, b) = (from_values.to_value(), from_text.to_value());
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        from_values.write_python_json(&mut pa).unwrap();
        from_text.write_python_json(&mut pb).unwrap();
        let text = String::from_utf8(pb).unwrap();
        assert_eq!(String::from_utf8(pa).unwrap(), text);
        // The hand-written walk lays out what serde + the formatter do.
        let mut via_serde = Vec::new();
        crate::pyjson::to_writer_pretty(&mut via_serde, &from_values).unwrap();
        assert_eq!(String::from_utf8(via_serde).unwrap(), text);
        // Python's numbers: every digit of an integer, `-0` is `0`.
        let big = br#"{"name": "a-start", "trace_id": "a", "parent_id": "b", "timestamp": "2024-01-01T00:00:00.000001", "n": [-0, 123456789012345678901234, -0.0]}"#;
        let mut out = Vec::new();
        build_from_json([&big[..]])
            .write_python_json(&mut out)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        let numbers: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.contains("\"n\": ["))
            .skip(1)
            .take(3)
            .map(str::trim)
            .collect();
        assert_eq!(
            numbers,
            ["0,", "123456789012345678901234,", "-0.0"],
            "{out}"
        );
        let huge = br#"{"name": "a-start", "trace_id": "a", "parent_id": "b", "timestamp": "2024-01-01T00:00:00.000001", "n": 1E400}"#;
        assert_eq!(
            build_from_json([&huge[..]]).skipped(),
            1,
            "serde_json refuses 1E400"
        );
        assert!(text.is_ascii());
        assert!(text.contains(r#""exception": "Err\"or""#), "{text}");
        assert!(
            text.contains(r#""\ud83d\ude00 \n\t/\\ \u0001 \u00e9\ud83d\ude00""#),
            "{text}"
        );
        assert!(
            text.contains("1e-07,\n") && text.contains("1e+20,\n"),
            "{text}"
        );
        let d = &b["children"][0]["children"][0];
        assert_eq!(d["info"]["host"], "h2");
        assert_eq!(
            d["info"]["meta.raw_payload.rpc-stop"]["info"]["k"],
            json!({"a": 2})
        );
    }

    #[test]
    fn many_payload_names_on_one_node_stay_unique() {
        let mut events: Vec<Value> = (0..100)
            .map(|i| ev(&format!("n{i}-start"), "a", "b", &t(i)))
            .collect();
        events.push(ev("n50-start", "a", "b", &t(1)));
        let r = build(events);
        assert_eq!((r.len(), r.skipped()), (1, 1));
        let node = r.roots().next().unwrap();
        assert_eq!(node.info().len(), 4 + 100 + 2);
        assert_eq!(
            (node.name(), node.started(), node.finished()),
            ("n0", 99, 99)
        );
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

    fn chain(depth: u32) -> Report {
        build((0..depth).map(|i| {
            let parent = if i == 0 {
                "b".to_string()
            } else {
                format!("n{}", i - 1)
            };
            ev("f-start", &format!("n{i}"), &parent, &t(i % 60_000))
        }))
    }

    /// Counts lines of output too big to keep (Python's indentation makes
    /// a deep tree's text quadratic in its depth).
    #[derive(Default)]
    struct LineCounter {
        lines: usize,
        last: u8,
    }

    impl io::Write for LineCounter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.lines += buf.iter().filter(|&&b| b == b'\n').count();
            if let Some(&b) = buf.last() {
                self.last = b;
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn deep_chain_pretty_json_without_recursion() {
        let lines = |depth| {
            let mut out = LineCounter::default();
            chain(depth).write_python_json(&mut out).unwrap();
            assert_eq!(out.last, b'}');
            out.lines
        };
        let (one, two) = (lines(1), lines(2));
        let depth = 5_000;
        // A recursive writer would need far more than the test thread's
        // stack for this depth.
        assert_eq!(lines(depth), one + (two - one) * (depth as usize - 1));
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
