//! Checks and renders stored payloads as the call tree the report shows.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// One element: its start and stop payloads.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub parent_id: String,
    pub start: Value,
    pub stop: Value,
    /// Position of the start among the payloads (ties of timestamps).
    pub order: usize,
}

/// The elements of trace `base_id`, by trace id. Panics unless every
/// element has exactly one start and one stop, with the same name and
/// parent, and every payload of the trace carries `base_id`.
pub fn elements(payloads: &[Value], base_id: &str) -> HashMap<String, Element> {
    let mut starts: HashMap<String, (usize, Value)> = HashMap::new();
    let mut stops: HashMap<String, (usize, Value)> = HashMap::new();
    for (order, p) in payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| p["base_id"] == base_id)
    {
        let trace_id = p["trace_id"].as_str().expect("trace_id").to_string();
        let name = p["name"].as_str().expect("name");
        let slot = if name.ends_with("-start") {
            &mut starts
        } else if name.ends_with("-stop") {
            &mut stops
        } else {
            panic!("payload neither start nor stop: {p}")
        };
        if let Some((_, old)) = slot.insert(trace_id, (order, p.clone())) {
            panic!("two payloads for one element:\n{old}\n{p}");
        }
    }
    let mut out = HashMap::new();
    for (trace_id, (order, start)) in starts {
        let (_, stop) = stops
            .remove(&trace_id)
            .unwrap_or_else(|| panic!("element never stopped: {start}"));
        let name = start["name"].as_str().unwrap().trim_end_matches("-start");
        assert_eq!(
            stop["name"].as_str().unwrap(),
            format!("{name}-stop"),
            "start and stop names differ: {start} / {stop}"
        );
        assert_eq!(
            start["parent_id"], stop["parent_id"],
            "start and stop parents differ: {start} / {stop}"
        );
        out.insert(
            trace_id,
            Element {
                name: name.to_string(),
                parent_id: start["parent_id"].as_str().unwrap().to_string(),
                start,
                stop,
                order,
            },
        );
    }
    assert!(stops.is_empty(), "stops without a start: {stops:?}");
    out
}

/// Sort key of an element among its siblings: start time, arrival, id.
type Key<'a> = (&'a str, usize, &'a str);

/// The trace as indented names, children in start order:
/// `"a\n  b\n  c\n"`. Elements whose parent is not an element of the
/// trace are roots.
pub fn render(payloads: &[Value], base_id: &str) -> String {
    let elements = elements(payloads, base_id);
    let mut children: BTreeMap<String, Vec<Key<'_>>> = BTreeMap::new();
    let mut roots = Vec::new();
    for (id, e) in &elements {
        let key = (
            e.start["timestamp"].as_str().unwrap_or(""),
            e.order,
            id.as_str(),
        );
        if elements.contains_key(&e.parent_id) {
            children.entry(e.parent_id.clone()).or_default().push(key);
        } else {
            roots.push(key);
        }
    }
    fn walk(
        out: &mut String,
        depth: usize,
        mut ids: Vec<Key<'_>>,
        elements: &HashMap<String, Element>,
        children: &BTreeMap<String, Vec<Key<'_>>>,
    ) {
        ids.sort();
        for (_, _, id) in ids {
            out.push_str(&"  ".repeat(depth));
            out.push_str(&elements[id].name);
            out.push('\n');
            let kids = children.get(id).cloned().unwrap_or_default();
            walk(out, depth + 1, kids, elements, children);
        }
    }
    let mut out = String::new();
    walk(&mut out, 0, roots, &elements, &children);
    out
}

/// The one element named `name`.
pub fn only(payloads: &[Value], base_id: &str, name: &str) -> Element {
    let mut found: Vec<Element> = elements(payloads, base_id)
        .into_values()
        .filter(|e| e.name == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {name} element, got {found:?}");
    found.pop().unwrap()
}
