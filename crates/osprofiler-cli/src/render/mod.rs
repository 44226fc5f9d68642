//! Renderers for `osprofiler trace show`: each one a pure function of the
//! report JSON (Python's `get_report` shape, see `osprofiler::report`).
//!
//! - [`html::html`]: one self-contained, offline, interactive viewer file.
//! - [`dot::dot`]: a Graphviz digraph, like upstream's `--dot`.
//! - [`tree::tree`]: an indented call tree for the terminal.
//! - [`chrome::chrome`]: Chrome trace-event JSON (Perfetto, chrome://tracing).
//!
//! Every renderer walks the tree without recursion ([`flatten`]), so a chain
//! of 100,000 nested calls renders like a flat list.
//!
//! The report's top level is `{"info": {"name": "total", ...}, "children":
//! [...], "stats": {...}}`; a node is `{"info": {"name", "project",
//! "service", "host", "meta.raw_payload.<notification>": payload, ...,
//! "started", "finished", "exception"}, "trace_id", "parent_id",
//! "children"}`. Renderers accept any JSON: missing or mistyped fields show
//! as empty rather than failing.

pub(crate) mod chrome;
pub(crate) mod dot;
pub(crate) mod html;
pub(crate) mod tree;

use osprofiler::notification::parse_timestamp;
use serde_json::{Map, Value};

const RAW_PAYLOAD: &str = "meta.raw_payload.";

/// One node of the report in pre-order (parents before children, siblings
/// in report order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flat<'a> {
    /// The report node (`{"info", "trace_id", "parent_id", "children"}`).
    pub(crate) node: &'a Value,
    /// 0 for the report's top-level children.
    pub(crate) depth: usize,
    /// Index of the parent in the flattened list.
    pub(crate) parent: Option<usize>,
    /// Index just past this node's last descendant: the subtree is
    /// `index..end`.
    pub(crate) end: usize,
}

impl<'a> Flat<'a> {
    /// The node's `info` object (empty if missing).
    pub(crate) fn info(&self) -> &'a Map<String, Value> {
        info_of(self.node)
    }
}

/// The nodes under the report's top level (the "total" pseudo-node is not
/// included), in pre-order, without recursion.
pub(crate) fn flatten(report: &Value) -> Vec<Flat<'_>> {
    let mut out: Vec<Flat<'_>> = Vec::new();
    // (node, depth, parent); children are pushed in reverse so they pop in
    // order.
    let mut stack: Vec<(&Value, usize, Option<usize>)> = children_of(report)
        .iter()
        .rev()
        .map(|n| (n, 0, None))
        .collect();
    while let Some((node, depth, parent)) = stack.pop() {
        let index = out.len();
        out.push(Flat {
            node,
            depth,
            parent,
            end: index + 1,
        });
        stack.extend(
            children_of(node)
                .iter()
                .rev()
                .map(|c| (c, depth + 1, Some(index))),
        );
    }
    // In pre-order every descendant comes after its ancestors, so one
    // backwards pass propagates subtree ends upwards.
    for i in (0..out.len()).rev() {
        if let Some(p) = out[i].parent {
            out[p].end = out[p].end.max(out[i].end);
        }
    }
    out
}

/// The `children` array of a node (empty if missing).
pub(crate) fn children_of(node: &Value) -> &[Value] {
    node.get("children")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The `info` object of a node (empty if missing).
pub(crate) fn info_of(node: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match node.get("info") {
        Some(Value::Object(info)) => info,
        _ => EMPTY.get_or_init(Map::new),
    }
}

/// The raw payloads of a node: `(notification name, payload)` for every
/// `meta.raw_payload.<notification name>` key, in report order.
pub(crate) fn raw_payloads(info: &Map<String, Value>) -> impl Iterator<Item = (&str, &Value)> {
    info.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(RAW_PAYLOAD)?, v)))
}

/// The payload of the node's start notification (the report treats every
/// notification whose name does not end in `stop` as a start).
pub(crate) fn start_payload(info: &Map<String, Value>) -> Option<&Value> {
    raw_payloads(info)
        .find(|(name, _)| !name.ends_with("stop"))
        .map(|(_, p)| p)
}

/// The payload of the node's stop notification.
pub(crate) fn stop_payload(info: &Map<String, Value>) -> Option<&Value> {
    raw_payloads(info)
        .find(|(name, _)| name.ends_with("stop"))
        .map(|(_, p)| p)
}

/// The one line that says what a node did: `METHOD path` for a web server
/// (`wsgi`, `info.request`) or HTTP client (`info.requests`) span, the SQL
/// statement of a `db` span, the function name of a traced function; else
/// `None`. Read from the start payload's `info`.
pub(crate) fn key_detail(node: &Value) -> Option<String> {
    let info = start_payload(info_of(node))?.get("info")?;
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    if let Some(req) = info.get("request").or_else(|| info.get("requests")) {
        match (str_at(req, "method"), str_at(req, "path")) {
            (Some(method), Some(path)) => return Some(format!("{method} {path}")),
            (Some(one), None) | (None, Some(one)) => return Some(one),
            (None, None) => {}
        }
    }
    if let Some(statement) = info.get("db").and_then(|db| str_at(db, "statement")) {
        return Some(statement);
    }
    info.get("function").and_then(|f| str_at(f, "name"))
}

/// The exception type of a failed node (`info.exception` unless it is the
/// string `"None"` or missing).
pub(crate) fn error_type(info: &Map<String, Value>) -> Option<&str> {
    match info.get("exception") {
        Some(Value::String(e)) if e != "None" => Some(e),
        _ => None,
    }
}

/// A JSON value as display text: strings as they are, `null` as empty,
/// anything else as JSON.
pub(crate) fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// An integer field (`started`, `finished`) of an info object.
pub(crate) fn int(info: &Map<String, Value>, key: &str) -> Option<i64> {
    let v = info.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// `finished - started` in milliseconds, as the report has them.
pub(crate) fn duration_ms(info: &Map<String, Value>) -> i64 {
    match (int(info, "started"), int(info, "finished")) {
        (Some(s), Some(f)) => f - s,
        _ => 0,
    }
}

/// Start and end of a node in microseconds since the epoch, from the
/// timestamps of its raw payloads (a node missing its start or stop gets a
/// zero-length span, as in the report). `None` when no timestamp parses.
pub(crate) fn span_epoch_us(info: &Map<String, Value>) -> Option<(i64, i64)> {
    let ts = |p: Option<&Value>| {
        p.and_then(|p| p.get("timestamp"))
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
    };
    match (ts(start_payload(info)), ts(stop_payload(info))) {
        (Some(s), Some(f)) => Some((s, f.max(s))),
        (Some(t), None) | (None, Some(t)) => Some((t, t)),
        (None, None) => None,
    }
}

/// Start and duration of every flattened node in microseconds since the
/// trace's first event: microsecond precision from the raw payload
/// timestamps where they parse, else the report's milliseconds.
pub(crate) fn timings_us(nodes: &[Flat<'_>]) -> Vec<(i64, i64)> {
    let epoch: Vec<Option<(i64, i64)>> = nodes.iter().map(|n| span_epoch_us(n.info())).collect();
    let origin = epoch.iter().flatten().map(|(s, _)| *s).min();
    nodes
        .iter()
        .zip(&epoch)
        .map(|(n, e)| match (e, origin) {
            (Some((s, f)), Some(origin)) => (s - origin, f - s),
            _ => {
                let info = n.info();
                let started = int(info, "started").unwrap_or(0);
                (started * 1000, duration_ms(info).max(0) * 1000)
            }
        })
        .collect()
}

/// The trace id (`base_id`) named in the first raw payload found.
pub(crate) fn base_id(nodes: &[Flat<'_>]) -> Option<String> {
    nodes.iter().find_map(|n| {
        raw_payloads(n.info()).find_map(|(_, p)| p.get("base_id")?.as_str().map(str::to_owned))
    })
}

/// Formats microseconds as milliseconds with 3 significant decimals at
/// most: `0.153 ms`, `12.5 ms`, `1204 ms`.
pub(crate) fn format_ms(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    let text = if us % 1000 == 0 {
        format!("{}", us / 1000)
    } else if ms.abs() < 10.0 {
        format!("{ms:.3}")
    } else if ms.abs() < 100.0 {
        format!("{ms:.2}")
    } else if ms.abs() < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    };
    format!("{text} ms")
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// Hand-written payloads and their report, shared by the renderers' tests
/// (and the browser test, which includes this module).
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{json, Value};

    /// A payload as a driver stores it.
    pub(crate) fn event(
        name: &str,
        trace: &str,
        parent: &str,
        ts_us: u64,
        service: &str,
        info: Value,
    ) -> Value {
        let mut info = info;
        if info.get("host").is_none() {
            info["host"] = json!("node-1");
        }
        json!({
            "name": name, "base_id": "7a3f1c2e-0000-4000-8000-000000000001",
            "trace_id": trace, "parent_id": parent,
            "timestamp": format!("2026-11-21T09:31:{:02}.{:06}", 10 + ts_us / 1_000_000, ts_us % 1_000_000),
            "info": info, "project": "nova", "service": service,
        })
    }

    /// Whether this module was compiled into another crate (the browser
    /// test includes it with `#[path]`), where the slow unit tests would
    /// only run a second time.
    pub(crate) fn included_elsewhere() -> bool {
        !module_path!().starts_with("osprofiler::")
    }

    /// The XSS payload that would retitle the page if it ever became markup.
    pub(crate) const XSS_IMG: &str = "<img src=x onerror=\"document.title='pwned'\">";
    /// A payload that would end the data block if pasted raw into a page.
    pub(crate) const XSS_SCRIPT: &str =
        "</script><script>document.title='pwned';window.__pwned=1</script>";

    /// Payloads of a small trace: a wsgi request calling an HTTP service, a
    /// SQL query, a traced function that fails, a function whose name is an
    /// XSS attempt, unicode everywhere, and a span that never stopped.
    pub(crate) fn payloads() -> Vec<Value> {
        let base = "7a3f1c2e-0000-4000-8000-000000000001";
        vec![
            event(
                "wsgi-start",
                "w",
                base,
                0,
                "api",
                json!({"request": {
                "path": "/v2.1/servers", "query": "limit=1", "method": "GET", "scheme": "http"}}),
            ),
            event(
                "https-start",
                "h",
                "w",
                1_200,
                "api",
                json!({"requests": {
                "method": "POST", "path": "/identity/v3/auth/tokens", "hostname": "keystone.example",
                "port": 443, "scheme": "https", "query": ""}}),
            ),
            event(
                "https-stop",
                "h",
                "w",
                3_700,
                "api",
                json!({"requests": {"status_code": 201}}),
            ),
            event(
                "db-start",
                "d",
                "w",
                4_000,
                "api",
                json!({"db": {
                "statement": "SELECT instances.uuid \"quoted\" FROM instances WHERE instances.host = %(host)s",
                "params": {"host": "compute-1 </script>"}}}),
            ),
            event(
                "db-stop",
                "d",
                "w",
                4_512,
                "api",
                json!({"db": {"result": "1 row"}}),
            ),
            event(
                "rpc-start",
                "r",
                "w",
                5_000,
                "compute",
                json!({"function": {
                "name": "nova.compute.manager.ComputeManager.build_and_run_instance",
                "args": "(<Instance 'vm-ünïcødé ✓'>,)", "kwargs": "{}"}, "host": "compute-1"}),
            ),
            event(
                "driver-start",
                "v",
                "r",
                5_500,
                "compute",
                json!({"function": {
                "name": "nova.virt.libvirt.driver.LibvirtDriver.spawn", "args": "()", "kwargs": "{}"},
                "host": "compute-1"}),
            ),
            event(
                "driver-stop",
                "v",
                "r",
                9_000,
                "compute",
                json!({"etype": "ValueError",
                "message": "disk \u{2028}image missing", "host": "compute-1"}),
            ),
            event(
                "rpc-stop",
                "r",
                "w",
                9_250,
                "compute",
                json!({"etype": "ValueError",
                "message": "build failed", "host": "compute-1"}),
            ),
            event(
                "evil-start",
                "x",
                "w",
                9_400,
                "サービス",
                json!({"function": {
                "name": super::fixtures::XSS_IMG, "args": XSS_SCRIPT, "kwargs": "{\"k\": \"&amp; \u{2029}\"}"}}),
            ),
            event("evil-stop", "x", "w", 9_600, "サービス", json!({})),
            event("orphan-start", "o", "w", 9_700, "api", json!({})),
            event("wsgi-stop", "w", base, 10_250, "api", json!({})),
        ]
    }

    /// The report of [`payloads`].
    pub(crate) fn report() -> Value {
        osprofiler::report::build(payloads()).to_value()
    }

    /// Names of the traced functions in [`payloads`].
    pub(crate) const FUNCTIONS: [&str; 3] = [
        "nova.compute.manager.ComputeManager.build_and_run_instance",
        "nova.virt.libvirt.driver.LibvirtDriver.spawn",
        XSS_IMG,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_is_preorder_with_depth_parent_and_end() {
        let report = fixtures::report();
        let flat = flatten(&report);
        let names: Vec<_> = flat.iter().map(|n| text(n.info().get("name"))).collect();
        assert_eq!(
            names,
            ["wsgi", "https", "db", "rpc", "driver", "evil", "orphan"]
        );
        let depths: Vec<_> = flat.iter().map(|n| n.depth).collect();
        assert_eq!(depths, [0, 1, 1, 1, 2, 1, 1]);
        assert_eq!(flat[0].parent, None);
        assert_eq!(flat[4].parent, Some(3));
        let ends: Vec<_> = flat.iter().map(|n| n.end).collect();
        assert_eq!(ends, [7, 2, 3, 5, 5, 6, 7]);
    }

    #[test]
    fn flatten_handles_a_deep_chain_without_recursion() {
        if fixtures::included_elsewhere() {
            return;
        }
        // Built by hand: a Value this deep cannot be dropped recursively on
        // a test thread's stack, so it is taken apart iteratively below.
        let depth = 50_000;
        let report = chain(depth);
        let flat = flatten(&report);
        assert_eq!(flat.len(), depth + 1);
        assert_eq!(flat[depth].depth, depth);
        assert!(flat.iter().all(|n| n.end == depth + 1));
        drop(flat);
        dismantle(report);
    }

    /// Every renderer walks a 30,000-deep chain on a test thread's 2 MiB
    /// stack (a recursive walk would overflow well before that).
    #[test]
    fn renderers_do_not_recurse() {
        if fixtures::included_elsewhere() {
            return;
        }
        let depth = 30_000;
        let report = chain(depth);
        let html = html::html(&report);
        assert!(html.contains(&format!("\"d\":{depth},")));
        let dot = dot::dot(&report);
        assert_eq!(dot.matches(" -> ").count(), depth + 1);
        let tree = tree::tree(&report, false);
        assert_eq!(tree.lines().count(), depth + 2);
        let chrome = chrome::chrome_value(&report);
        assert_eq!(
            chrome["traceEvents"].as_array().unwrap().len(),
            depth + 1 + 3
        );
        dismantle(report);
    }

    /// `{"children": [f, [f, ... [leaf]]]}` with `depth` nodes above the
    /// leaf, built without recursion (`json!` would clone `node` through
    /// serde, recursively).
    pub(crate) fn chain(depth: usize) -> Value {
        let node = |name: &str, children: Vec<Value>| {
            let mut map = Map::new();
            map.insert("info".into(), json!({ "name": name }));
            map.insert("children".into(), Value::Array(children));
            Value::Object(map)
        };
        let mut current = node("leaf", vec![]);
        for _ in 0..depth {
            current = node("f", vec![current]);
        }
        let mut top = Map::new();
        top.insert("children".into(), Value::Array(vec![current]));
        Value::Object(top)
    }

    /// Drops a deep Value without recursion.
    pub(crate) fn dismantle(value: Value) {
        let mut stack = vec![value];
        while let Some(mut v) = stack.pop() {
            match &mut v {
                Value::Array(a) => stack.append(a),
                Value::Object(o) => {
                    let keys: Vec<String> = o.keys().cloned().collect();
                    for k in keys {
                        if let Some(child) = o.remove(&k) {
                            stack.push(child);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn key_detail_per_known_shape() {
        let report = fixtures::report();
        let flat = flatten(&report);
        let details: Vec<_> = flat.iter().map(|n| key_detail(n.node)).collect();
        assert_eq!(details[0].as_deref(), Some("GET /v2.1/servers"));
        assert_eq!(details[1].as_deref(), Some("POST /identity/v3/auth/tokens"));
        assert!(details[2]
            .as_deref()
            .unwrap()
            .starts_with("SELECT instances.uuid"));
        assert_eq!(
            details[3].as_deref(),
            Some("nova.compute.manager.ComputeManager.build_and_run_instance")
        );
        assert_eq!(details[5].as_deref(), Some(fixtures::XSS_IMG));
        assert_eq!(details[6], None);
        for function in fixtures::FUNCTIONS {
            assert!(details.contains(&Some(function.to_owned())), "{function}");
        }
        assert_eq!(key_detail(&json!({})), None);
        assert_eq!(key_detail(&json!({"info": "not an object"})), None);
    }

    #[test]
    fn errors_and_timings() {
        let report = fixtures::report();
        let flat = flatten(&report);
        let errors: Vec<_> = flat.iter().map(|n| error_type(n.info())).collect();
        assert_eq!(
            errors,
            [
                None,
                None,
                None,
                Some("ValueError"),
                Some("ValueError"),
                None,
                None
            ]
        );
        let t = timings_us(&flat);
        assert_eq!(t[0], (0, 10_250));
        assert_eq!(t[2], (4_000, 512));
        // The orphan never stopped: zero length, like the report's ms.
        assert_eq!(t[6], (9_700, 0));
        assert_eq!(
            base_id(&flat).as_deref(),
            Some("7a3f1c2e-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn timings_fall_back_to_report_milliseconds() {
        let report = json!({"children": [
            {"info": {"name": "a", "started": 3, "finished": 10}, "children": []}
        ]});
        assert_eq!(timings_us(&flatten(&report)), [(3_000, 7_000)]);
    }

    #[test]
    fn formats_and_truncates() {
        assert_eq!(format_ms(153), "0.153 ms");
        assert_eq!(format_ms(12_500), "12.50 ms");
        assert_eq!(format_ms(250_000), "250 ms");
        assert_eq!(format_ms(1_204_400), "1204 ms");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ünï", 3), "ünï");
    }
}
