//! `report::build_from_json` (what the Redis driver and `trace show` use)
//! on hostile stored texts: corrupt JSON, missing fields, wrong types,
//! duplicate keys, parent loops, self-parents, duplicate events, huge
//! strings, deep chains. Never panics; every text is used or counted;
//! every node is in the tree once; the JSON text path agrees with the
//! `Value` path.

use std::collections::HashSet;

use osprofiler::report::{self, Report};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Walks the tree without recursion; returns the nodes seen, asserting each
/// appears once and times lie within the total.
fn check_tree(report: &Report) -> usize {
    let total = report.finished().unwrap_or(0);
    let mut seen = HashSet::new();
    let mut stack: Vec<_> = report.roots().collect();
    while let Some(node) = stack.pop() {
        assert!(seen.insert(node.trace_id()), "{} twice", node.trace_id());
        assert!(
            seen.len() <= report.len(),
            "more nodes in the tree than built"
        );
        assert!((0..=total).contains(&node.started()));
        assert!((0..=total).contains(&node.finished()));
        stack.extend(node.children());
    }
    assert_eq!(seen.len(), report.len(), "every node reachable from a root");
    let counted: i64 = report.stats().map(|(_, count, _)| count).sum();
    assert_eq!(counted as usize, report.len(), "stats count every node");
    seen.len()
}

fn pretty(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_python_json(&mut out).expect("writes");
    String::from_utf8(out).expect("ASCII output")
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "c", "d", "e", "base"]).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => "\\PC{0,3}".prop_map(Value::from),
    ]
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0u32..3, 0u32..1_000_000)
            .prop_map(|(s, us)| Value::from(format!("2024-02-29T23:59:5{s}.{us:06}"))),
        1 => "[0-9T:.-]{0,27}".prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Quarters: serde_json's own float parsing (used by the reference
        // path) is not always correctly rounded; the text path's is, as
        // Python's. Exactly representable values compare equal on both.
        (-4_000_000i64..4_000_000).prop_map(|q| Value::from(q as f64 / 4.0)),
        "\\PC{0,6}".prop_map(Value::from),
        "[\\x00-\\x1f\"\\\\/\u{7f}-\u{ff}\u{1F600}]{0,4}".prop_map(Value::from),
    ]
}

fn garbage() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(("\\PC{0,5}", inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A stored payload, mostly well formed.
fn event() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        6 => prop::sample::select(vec!["x-start", "x-stop", "y-start", "y-stop", "stop", "-", "é-stop"])
            .prop_map(Value::from),
        1 => garbage(),
    ];
    let info = prop_oneof![
        4 => (prop::option::of("[a-z]{0,3}"), garbage())
            .prop_map(|(etype, extra)| json!({"host": "h", "etype": etype, "extra": extra})),
        1 => garbage(),
    ];
    let project = prop_oneof![3 => "[a-z]{1,4}".prop_map(Value::from), 1 => garbage()];
    (name, id(), id(), timestamp(), info, project).prop_map(
        |(name, trace_id, parent_id, ts, info, project)| {
            json!({"name": name, "base_id": "base", "trace_id": trace_id, "parent_id": parent_id,
                   "timestamp": ts, "info": info, "project": project, "service": "api"})
        },
    )
}

/// How a stored text may be damaged.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    FlipByte(usize, u8),
    DuplicateKey,
    Garbage(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        8 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::FlipByte(i, b)),
        1 => Just(Damage::DuplicateKey),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Damage::Garbage),
    ]
}

fn apply(event: &Value, damage: &Damage) -> Vec<u8> {
    let mut text = event.to_string().into_bytes();
    match damage {
        Damage::None => {}
        Damage::Truncate(at) => text.truncate(at % (text.len() + 1)),
        Damage::FlipByte(at, b) => {
            let at = at % text.len();
            text[at] = *b;
        }
        Damage::DuplicateKey => {
            // A second `"name"` first: Python keeps the last value.
            text = format!(r#"{{"name": 7, {}"#, &event.to_string()[1..]).into_bytes();
        }
        Damage::Garbage(bytes) => text = bytes.clone(),
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Damaged texts: no panic, every text used or counted, each node once,
    /// and the report equals the one built from the texts that parse as
    /// JSON (the reference `Value` path).
    #[test]
    fn damaged_texts_are_counted_and_match_the_value_path(
        events in prop::collection::vec((event(), damage()), 0..40)
    ) {
        let texts: Vec<Vec<u8>> = events.iter().map(|(e, d)| apply(e, d)).collect();
        let report = report::build_from_json(texts.iter().map(|t| t.as_slice()));
        let mut builder = report::ReportBuilder::new();
        let mut used = 0;
        for text in &texts {
            used += usize::from(builder.push_json(text));
        }
        let again = builder.finish();
        prop_assert_eq!(used + again.skipped(), texts.len(), "each text used or counted");
        prop_assert!(again.len() <= used);
        check_tree(&report);

        let values: Vec<Value> = texts
            .iter()
            .filter_map(|t| serde_json::from_slice(t).ok())
            .collect();
        let unparsed = texts.len() - values.len();
        let reference = report::build(values);
        prop_assert_eq!(report.skipped(), reference.skipped() + unparsed);
        prop_assert_eq!(report.cycles_broken(), reference.cycles_broken());
        prop_assert_eq!(report.to_value(), reference.to_value());
        prop_assert_eq!(pretty(&report), pretty(&reference));
    }

    /// Arbitrary bytes as stored events.
    #[test]
    fn arbitrary_bytes_never_panic(texts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..20)) {
        let report = report::build_from_json(texts.clone());
        prop_assert!(report.skipped() <= texts.len());
        check_tree(&report);
        let text = pretty(&report);
        prop_assert!(text.ends_with('}'), "{}", text);
    }
}

fn payload(trace_id: &str, parent_id: &str, name: &str, us: u32) -> Vec<u8> {
    json!({"name": name, "base_id": "base", "trace_id": trace_id, "parent_id": parent_id,
           "timestamp": format!("2024-01-01T00:00:{:02}.{:06}", us / 1_000_000, us % 1_000_000),
           "info": {"host": "h"}, "project": "p", "service": "s"})
    .to_string()
    .into_bytes()
}

#[test]
fn loops_self_parents_and_duplicates() {
    let mut texts = Vec::new();
    // A loop of 50,000 elements, a self-parent, a loop hanging off a root.
    let n = 50_000u32;
    for i in 0..n {
        let parent = format!("l{}", (i + 1) % n);
        texts.push(payload(&format!("l{i}"), &parent, "f-start", i));
    }
    texts.push(payload("self", "self", "f-start", 1));
    texts.push(payload("r", "base", "f-start", 2));
    texts.push(payload("x", "y", "f-start", 3));
    texts.push(payload("y", "x", "f-start", 4));
    // Duplicates: counted, not used.
    texts.push(payload("r", "base", "f-start", 2));
    texts.push(payload("l7", "l8", "f-start", 7));
    let report = report::build_from_json(texts);
    assert_eq!(report.skipped(), 2);
    assert_eq!(
        report.cycles_broken(),
        3,
        "the long loop, the self-parent, x<->y"
    );
    assert_eq!(check_tree(&report), n as usize + 4);
    // The first-seen element of each loop becomes a root.
    let roots: HashSet<_> = report.roots().map(|n| n.trace_id()).collect();
    assert_eq!(roots, HashSet::from(["l0", "self", "r", "x"]));
}

#[test]
fn megabyte_strings_and_a_100k_chain() {
    let big = "é\"\\".repeat(350_000);
    let mut texts = vec![
        json!({"name": "big-start", "trace_id": big, "parent_id": big,
        "timestamp": "2024-01-01T00:00:00.000000", "info": {"host": big, "etype": big},
        "project": big, "service": big, big.clone(): big})
        .to_string()
        .into_bytes(),
    ];
    let depth = 100_000u32;
    for i in 0..depth {
        let parent = if i == 0 {
            "base".to_string()
        } else {
            format!("n{}", i - 1)
        };
        texts.push(payload(&format!("n{i}"), &parent, "f-start", i));
    }
    let input: usize = texts.iter().map(Vec::len).sum();
    let report = report::build_from_json(texts);
    assert_eq!((report.len(), report.skipped()), (depth as usize + 1, 0));
    assert_eq!(check_tree(&report), depth as usize + 1);
    let mut deepest = 0;
    let mut node = report.roots().find(|n| n.trace_id().starts_with('n'));
    while let Some(n) = node {
        deepest += 1;
        node = n.children().next();
    }
    assert_eq!(deepest, depth);
    // Compact JSON of the whole tree: no recursion limit on the way out.
    let text = serde_json::to_vec(&report).expect("serializes");
    assert!(text.len() > input, "every payload is in the report");
}
