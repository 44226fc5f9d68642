//! `trace show --dot`: the call tree as a Graphviz digraph.
//!
//! Same graph as upstream's `_create_dot_graph`: nodes numbered in
//! pre-order from `0` (the "total" pseudo-node), each labelled
//! `service:name - N ms`, an edge from every node to each child, written
//! as Python's `graphviz` package writes it (tab-indented `id [label=...]`
//! lines, a child's edge after the child's own subtree). Second label line,
//! as upstream: `METHOD path..` (path cut to 30 characters) for `wsgi`, the
//! last dotted part of the function name for `rpc` and `driver`.
//!
//! Beyond upstream: the second line also names the method and path of HTTP
//! client spans, the start of a `db` statement and the function of any
//! other traced function; failed nodes are drawn in red with their
//! exception type; labels are escaped so that no trace data can end the
//! string (upstream leaves backslashes and newlines to Graphviz); nodes
//! without a service (Python crashes on them) and malformed nodes render.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::{children_of, duration_ms, error_type, info_of, start_payload};

/// The DOT source of the report's call tree.
pub(crate) fn dot(report: &Value) -> String {
    let mut out = String::from("digraph {\n");
    let mut next_id = 0usize;
    // (node id, the node's children, index of the next child to visit).
    let mut stack: Vec<(usize, &[Value], usize)> = Vec::new();
    let root_id = write_node(&mut out, &mut next_id, info_of(report));
    stack.push((root_id, children_of(report), 0));
    while let Some(top) = stack.last_mut() {
        let (parent_id, children, next) = *top;
        match children.get(next) {
            Some(child) => {
                top.2 += 1;
                let id = write_node(&mut out, &mut next_id, info_of(child));
                stack.push((id, children_of(child), 0));
            }
            None => {
                stack.pop();
                if let Some(&(grand_parent, ..)) = stack.last() {
                    let _ = writeln!(out, "\t{grand_parent} -> {parent_id}");
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

fn write_node(out: &mut String, next_id: &mut usize, info: &Map<String, Value>) -> usize {
    let id = *next_id;
    *next_id += 1;
    let name = super::text(info.get("name"));
    let mut label = String::new();
    if let Some(Value::String(service)) = info.get("service") {
        label.push_str(service);
        label.push(':');
    }
    let _ = write!(label, "{name} - {} ms", duration_ms(info));
    if let Some(second) = second_line(&name, info) {
        label.push('\n');
        label.push_str(&second);
    }
    let error = error_type(info);
    if let Some(error) = error {
        label.push('\n');
        label.push_str(error);
    }
    let _ = write!(out, "\t{id} [label={}", quote(&label));
    if error.is_some() {
        out.push_str(" color=red fontcolor=red");
    }
    out.push_str("]\n");
    id
}

/// The second label line: upstream's for `wsgi`, `rpc` and `driver`, then
/// ours for other known shapes.
fn second_line(name: &str, info: &Map<String, Value>) -> Option<String> {
    let start = start_payload(info)?.get("info")?;
    let field = |outer: &str, key: &str| start.get(outer)?.get(key)?.as_str();
    let short_function = || {
        let function = field("function", "name")?;
        Some(function.rsplit('.').next().unwrap_or(function).to_owned())
    };
    let method_path = |outer: &str| {
        let method = field(outer, "method").unwrap_or_default();
        let path = field(outer, "path").unwrap_or_default();
        Some(format!("{method} {}..", take_chars(path, 30)))
    };
    match name {
        "wsgi" if start.get("request").is_some() => method_path("request"),
        "rpc" | "driver" => short_function(),
        _ if start.get("requests").is_some() => method_path("requests"),
        _ => {
            if let Some(statement) = field("db", "statement") {
                let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
                let cut = take_chars(&flat, 30);
                let more = if cut.len() < flat.len() { ".." } else { "" };
                return Some(format!("{cut}{more}"));
            }
            short_function()
        }
    }
}

fn take_chars(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A DOT double-quoted string whose content is exactly `text`: quotes and
/// backslashes escaped, line breaks as Graphviz's centred-line `\n`.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use serde_json::json;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    #[test]
    fn labels_and_edges_like_upstream() {
        let out = dot(&fixtures::report());
        let expected = [
            "digraph {",
            "\t0 [label=\"total - 10 ms\"]",
            "\t1 [label=\"api:wsgi - 10 ms\\nGET /v2.1/servers..\"]",
            "\t2 [label=\"api:https - 2 ms\\nPOST /identity/v3/auth/tokens..\"]",
            "\t1 -> 2",
            "\t3 [label=\"api:db - 0 ms\\nSELECT instances.uuid \\\"quoted\\\"..\"]",
            "\t1 -> 3",
            "\t4 [label=\"compute:rpc - 4 ms\\nbuild_and_run_instance\\nValueError\" color=red fontcolor=red]",
            "\t5 [label=\"compute:driver - 4 ms\\nspawn\\nValueError\" color=red fontcolor=red]",
            "\t4 -> 5",
            "\t1 -> 4",
            "\t6 [label=\"サービス:evil - 0 ms\\ntitle='pwned'\\\">\"]",
            "\t1 -> 6",
            "\t7 [label=\"api:orphan - 0 ms\"]",
            "\t1 -> 7",
            "\t0 -> 1",
            "}",
        ];
        assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn escapes_everything_that_could_end_a_string() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\r\u{7}"), r#""x\ny ""#);
        assert_eq!(quote("\\\""), r#""\\\"""#);
    }

    #[test]
    fn malformed_nodes_still_render() {
        let out = dot(&json!({"children": [{"info": {"service": null}}, 3, {"children": "x"}]}));
        assert_eq!(
            out,
            "digraph {\n\t0 [label=\" - 0 ms\"]\n\t1 [label=\" - 0 ms\"]\n\t0 -> 1\n\
             \t2 [label=\" - 0 ms\"]\n\t0 -> 2\n\t3 [label=\" - 0 ms\"]\n\t0 -> 3\n}\n"
        );
    }

    /// Graphviz itself must accept the output, including hostile labels.
    #[test]
    fn graphviz_accepts_the_output() {
        let mut payloads = fixtures::payloads();
        payloads.push(fixtures::event(
            "edge-start",
            "e",
            "w",
            9_800,
            "back\\slash\"",
            json!({"function": {"name": "a\\\"}; x -> y; \"\\"}}),
        ));
        let report = osprofiler::report::build(payloads).to_value();
        let source = dot(&report);
        let mut child = match Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("graphviz `dot` is needed (apt-get install graphviz): {e}"),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(source.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let svg = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "dot rejected:\n{source}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 9 nodes, 8 edges: no injected edge.
        assert_eq!(svg.matches("class=\"node\"").count(), 9);
        assert_eq!(svg.matches("class=\"edge\"").count(), 8);
        assert!(svg.contains("build_and_run_instance"));
        assert!(svg.contains("サービス:evil"));
        assert!(svg.contains("spawn"));
    }
}
