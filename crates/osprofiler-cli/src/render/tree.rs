//! The call tree for a terminal:
//!
//! ```text
//! trace 7a3f…: 7 spans, 10.25 ms, 2 failed
//! wsgi  api  10.25 ms  GET /v2.1/servers
//! ├─ db  api  0.512 ms  SELECT instances.uuid FROM instances
//! └─ rpc  compute  4.250 ms  nova.compute.manager.ComputeManager.build  error: ValueError
//! ```
//!
//! One line per span: name, service, duration (microsecond precision when
//! the raw timestamps have it), the key detail and the error type. Colour
//! (bold names, dim services, red errors) only when the caller asks, which
//! it does when stdout is a terminal. Trace data is printed with control
//! characters replaced, so a payload cannot move the cursor or recolour the
//! terminal. Very deep nesting is drawn to [`MAX_INDENT`] levels, then
//! marked with its depth.

use std::fmt::Write;

use serde_json::Value;

use super::{error_type, flatten, format_ms, key_detail, text, timings_us, truncate};

/// Levels drawn before deeper nodes are shown with a depth marker instead.
pub(crate) const MAX_INDENT: usize = 48;
/// Key details longer than this are cut.
const MAX_DETAIL: usize = 120;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// The report as an indented tree, one line per span.
pub(crate) fn tree(report: &Value, color: bool) -> String {
    let nodes = flatten(report);
    let timings = timings_us(&nodes);
    let paint = |code: &'static str, s: &str| {
        if color && !s.is_empty() {
            format!("{code}{s}{RESET}")
        } else {
            s.to_owned()
        }
    };

    let mut out = String::new();
    let total_us = timings.iter().map(|(s, d)| s + d).max().unwrap_or(0);
    let failed = nodes
        .iter()
        .filter(|n| error_type(n.info()).is_some())
        .count();
    let id = super::base_id(&nodes).map(|id| format!(" {}", clean(&id)));
    let _ = write!(
        out,
        "trace{}: {} span{}, {}",
        id.unwrap_or_default(),
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        format_ms(total_us)
    );
    if failed > 0 {
        out.push_str(", ");
        out.push_str(&paint(RED, &format!("{failed} failed")));
    }
    out.push('\n');

    // last[d]: whether the current ancestor at depth d is its parent's
    // last child (then no vertical line continues below it).
    let mut last: Vec<bool> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let is_last = match node.parent {
            Some(p) => node.end == nodes[p].end,
            None => node.end == nodes.len(),
        };
        last.truncate(node.depth);
        last.push(is_last);
        if node.depth > 0 {
            let mut prefix = String::new();
            for &ancestor_last in &last[1..node.depth.min(MAX_INDENT)] {
                prefix.push_str(if ancestor_last { "   " } else { "│  " });
            }
            if node.depth > MAX_INDENT {
                let _ = write!(prefix, "┄ depth {} ", node.depth);
            }
            prefix.push_str(if is_last { "└─ " } else { "├─ " });
            out.push_str(&paint(DIM, &prefix));
        }

        let info = node.info();
        out.push_str(&paint(BOLD, &clean(&text(info.get("name")))));
        let service = clean(&text(info.get("service")));
        if !service.is_empty() {
            out.push_str("  ");
            out.push_str(&paint(DIM, &service));
        }
        out.push_str("  ");
        out.push_str(&format_ms(timings[i].1));
        if let Some(detail) = key_detail(node.node) {
            out.push_str("  ");
            out.push_str(&truncate(&clean(&detail), MAX_DETAIL));
        }
        if let Some(error) = error_type(info) {
            out.push_str("  ");
            out.push_str(&paint(RED, &format!("error: {}", clean(error))));
        }
        out.push('\n');
    }
    out
}

/// One line of trace data, safe for a terminal: whitespace runs become one
/// space; control characters (escape sequences) and bidirectional
/// overrides become U+FFFD.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        let unsafe_char = c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        out.push(if unsafe_char { '\u{fffd}' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_tree() {
        let out = tree(&fixtures::report(), false);
        let expected = "\
trace 7a3f1c2e-0000-4000-8000-000000000001: 7 spans, 10.25 ms, 2 failed
wsgi  api  10.25 ms  GET /v2.1/servers
├─ https  api  2.500 ms  POST /identity/v3/auth/tokens
├─ db  api  0.512 ms  SELECT instances.uuid \"quoted\" FROM instances WHERE instances.host = %(host)s
├─ rpc  compute  4.250 ms  nova.compute.manager.ComputeManager.build_and_run_instance  error: ValueError
│  └─ driver  compute  3.500 ms  nova.virt.libvirt.driver.LibvirtDriver.spawn  error: ValueError
├─ evil  サービス  0.200 ms  <img src=x onerror=\"document.title='pwned'\">
└─ orphan  api  0 ms
";
        assert_eq!(out, expected);
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked() {
        let out = tree(&fixtures::report(), true);
        assert!(out.contains(&format!("{RED}error: ValueError{RESET}")));
        assert!(out.contains(&format!("{BOLD}wsgi{RESET}")));
        assert!(out.contains(&format!("{RED}2 failed{RESET}")));
        // Stripping the escapes gives the plain tree back.
        let stripped = out
            .replace(BOLD, "")
            .replace(DIM, "")
            .replace(RED, "")
            .replace(RESET, "");
        assert_eq!(stripped, tree(&fixtures::report(), false));
    }

    #[test]
    fn trace_data_cannot_drive_the_terminal() {
        let mut payloads = fixtures::payloads();
        payloads.push(fixtures::event(
            "\x1b[2Jwipe-start",
            "z",
            "w",
            9_900,
            "svc\x1b]0;title\x07",
            json!({"function": {"name": "f\u{202e}txt.exe\r\nnext line\x1b[31m"}}),
        ));
        let out = tree(&osprofiler::report::build(payloads).to_value(), false);
        assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains('\u{202e}'));
        assert!(out.contains("�[2Jwipe  svc�]0;title�  0 ms  f�txt.exe next line�[31m"));
        assert_eq!(out.lines().count(), 9);
    }

    #[test]
    fn deep_nesting_is_capped_and_marked() {
        let out = tree(&super::super::tests::chain(60), false);
        let leaf = out.lines().last().unwrap();
        assert_eq!(
            leaf,
            format!("{}┄ depth 60 └─ leaf  0 ms", "   ".repeat(MAX_INDENT - 1))
        );
        assert_eq!(out.lines().count(), 62);
    }

    #[test]
    fn empty_report() {
        assert_eq!(
            tree(&json!({"info": {}, "children": []}), false),
            "trace: 0 spans, 0 ms\n"
        );
    }
}
