//! `trace show --html`: one self-contained HTML file that works offline.
//!
//! Unlike upstream's template (AngularJS and friends from public CDNs, the
//! report pasted raw into a `<script>`), the page here has:
//! - all CSS and JS inline (`assets/viewer.{html,css,js}`, compiled in), no
//!   URL that would be fetched, and a Content-Security-Policy that forbids
//!   any fetch and any script but the viewer's own (by hash), so even an
//!   injected inline event handler would not run;
//! - the data in a `<script type="application/json">` block with `<`, `>`,
//!   `&`, U+2028 and U+2029 written as `\u` escapes, so no payload can end
//!   the block; the viewer puts data on the page only as text;
//! - a flat pre-order node array (depth, parent, end of subtree) instead of
//!   the nested report, so neither this renderer nor the page recurses,
//!   and a virtualized list (only rows in view are in the DOM), which keeps
//!   100,000-span traces usable.

use serde_json::Value;

use super::{base_id, flatten, key_detail, timings_us};

const TEMPLATE: &str = include_str!("../../assets/viewer.html");
const CSS: &str = include_str!("../../assets/viewer.css");
const JS: &str = include_str!("../../assets/viewer.js");

/// CSP source allowing exactly the viewer script: base64 of the SHA-256 of
/// `assets/viewer.js`. After editing the script, `cargo test
/// script_hash_matches` prints the new value.
const JS_CSP_HASH: &str = "sha256-3z2YWiV9XRPggpYILaS+2d6UGoM4M9Iv3mQY/PHfDI8=";

/// Levels of the tree that are open when the page loads; deeper spans are
/// one click (or "Expand all") away.
pub(crate) const COLLAPSE_DEPTH: usize = 4;

/// The viewer page for the report.
pub(crate) fn html(report: &Value) -> String {
    let data = escape_script_json(&viewer_data(report));
    let parts = [
        ("__SCRIPT_HASH__", JS_CSP_HASH),
        ("/*__VIEWER_CSS__*/", CSS),
        ("__TRACE_DATA__", data.as_str()),
        ("/*__VIEWER_JS__*/", JS),
    ];
    let mut out = String::with_capacity(TEMPLATE.len() + CSS.len() + JS.len() + data.len());
    let mut rest = TEMPLATE;
    for (marker, value) in parts {
        // The template is a constant; the tests check every marker is there
        // once, in this order.
        let at = rest.find(marker).unwrap_or(rest.len());
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = rest.get(at + marker.len()..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The JSON the viewer reads (see the comment at the top of viewer.js).
fn viewer_data(report: &Value) -> String {
    let nodes = flatten(report);
    let timings = timings_us(&nodes);
    let total_us = timings.iter().map(|(s, d)| s + d).max().unwrap_or(0);
    let json = |v: &Value| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let null = Value::Null;

    let mut out = String::with_capacity(nodes.len() * 512 + 256);
    out.push_str("{\"format\":\"osprofiler-rs-viewer/1\",\"base_id\":");
    out.push_str(&json(&base_id(&nodes).map_or(Value::Null, Value::from)));
    out.push_str(&format!(
        ",\"total_us\":{total_us},\"collapse_depth\":{COLLAPSE_DEPTH},\"total\":"
    ));
    out.push_str(&json(report.get("info").unwrap_or(&null)));
    out.push_str(",\"stats\":");
    out.push_str(&json(report.get("stats").unwrap_or(&null)));
    out.push_str(",\"nodes\":[");
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let parent = node.parent.map_or(-1, |p| p as i64);
        let (start, duration) = timings[i];
        out.push_str(&format!(
            "\n{{\"d\":{},\"p\":{parent},\"e\":{},\"s\":{start},\"u\":{duration},\"k\":",
            node.depth, node.end
        ));
        out.push_str(&json(
            &key_detail(node.node).map_or(Value::Null, Value::from),
        ));
        out.push_str(",\"trace_id\":");
        out.push_str(&json(node.node.get("trace_id").unwrap_or(&null)));
        out.push_str(",\"parent_id\":");
        out.push_str(&json(node.node.get("parent_id").unwrap_or(&null)));
        out.push_str(",\"info\":");
        out.push_str(&json(node.node.get("info").unwrap_or(&null)));
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// JSON text made safe inside a `<script>` element: `<`, `>` and `&`
/// (which could form `</script>` or `<!--`) and U+2028/U+2029 become `\u`
/// escapes. In JSON these characters can only occur inside strings, where
/// the escapes mean the same characters.
fn escape_script_json(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len() + json.len() / 32);
    let mut plain = 0;
    for (at, &b) in bytes.iter().enumerate() {
        // Every match starts a character (ASCII, or the lead byte of
        // U+2028/U+2029: E2 80 A8/A9), so the slices below are on
        // character boundaries.
        let (escape, len) = match b {
            b'<' => ("\\u003c", 1),
            b'>' => ("\\u003e", 1),
            b'&' => ("\\u0026", 1),
            0xE2 if bytes.get(at + 1) == Some(&0x80) => match bytes.get(at + 2) {
                Some(0xA8) => ("\\u2028", 3),
                Some(0xA9) => ("\\u2029", 3),
                _ => continue,
            },
            _ => continue,
        };
        out.push_str(&json[plain..at]);
        out.push_str(escape);
        plain = at + len;
    }
    out.push_str(&json[plain..]);
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use serde_json::json;

    /// The text of `<script type="application/json" id="trace-data">`.
    pub(crate) fn data_block(page: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"trace-data\">";
        let start = page.find(open).expect("data block") + open.len();
        let len = page[start..].find("</script>").expect("end of data block");
        &page[start..start + len]
    }

    #[test]
    fn template_has_each_marker_once_in_order() {
        let markers = [
            "__SCRIPT_HASH__",
            "/*__VIEWER_CSS__*/",
            "__TRACE_DATA__",
            "/*__VIEWER_JS__*/",
        ];
        let mut last = 0;
        for m in markers {
            assert_eq!(TEMPLATE.matches(m).count(), 1, "{m}");
            let at = TEMPLATE.find(m).unwrap();
            assert!(at > last, "{m} out of order");
            last = at;
        }
        // Nothing in the assets can end their element early.
        assert!(!CSS.to_ascii_lowercase().contains("</style"));
        assert!(!JS.to_ascii_lowercase().contains("</script"));
        assert!(!JS.contains("<!--"));
    }

    #[test]
    fn data_survives_the_round_trip_and_cannot_end_the_block() {
        let report = fixtures::report();
        let page = html(&report);
        let block = data_block(&page);
        for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            assert!(!block.contains(bad), "{bad:?} in data block");
        }
        // The data block runs to the only `</script>` after it: the
        // payloads' `</script>` did not end it.
        let data: Value = serde_json::from_str(block).expect("valid JSON");
        let nodes = data["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 7);
        assert_eq!(data["base_id"], "7a3f1c2e-0000-4000-8000-000000000001");
        assert_eq!(data["total_us"], 10_250);
        assert_eq!(data["total"], report["info"]);
        assert_eq!(data["stats"], report["stats"]);
        assert_eq!(data["collapse_depth"], COLLAPSE_DEPTH);
        // Every info field, raw payloads included, unchanged.
        let evil = &nodes[5];
        assert_eq!(evil["info"], report["children"][0]["children"][3]["info"]);
        assert_eq!(evil["k"], fixtures::XSS_IMG);
        assert_eq!(
            evil["info"]["meta.raw_payload.evil-start"]["info"]["function"]["args"],
            fixtures::XSS_SCRIPT
        );
        let driver = &nodes[4];
        assert_eq!(
            (&driver["d"], &driver["p"], &driver["e"]),
            (&json!(2), &json!(3), &json!(5))
        );
        assert_eq!((&driver["s"], &driver["u"]), (&json!(5_500), &json!(3_500)));
        assert_eq!(
            driver["info"]["meta.raw_payload.driver-stop"]["info"]["message"],
            "disk \u{2028}image missing"
        );
        assert_eq!(nodes[0]["p"], -1);
        assert_eq!(nodes[0]["trace_id"], "w");
    }

    #[test]
    fn escaping_is_exact() {
        assert_eq!(
            escape_script_json(r#"{"a":"</script><!-- & \u2028","é":"x"}"#),
            r#"{"a":"\u003c/script\u003e\u003c!-- \u0026 \u2028","é":"x"}"#
        );
        assert_eq!(
            escape_script_json("\"\u{2028}\u{2029}\""),
            "\"\\u2028\\u2029\""
        );
        let tricky = json!({"s": "\\<\u{2029}>&amp;"});
        let escaped = escape_script_json(&tricky.to_string());
        assert_eq!(serde_json::from_str::<Value>(&escaped).unwrap(), tricky);
    }

    /// Everything the page needs is in the page: no attribute, CSS or
    /// script names a URL with a scheme or a network path.
    #[test]
    fn nothing_is_fetched() {
        let page = html(&fixtures::report());
        // The data block holds `src=x` as escaped text that no parser reads
        // as markup; scan everything else.
        let markup = page.replace(data_block(&page), "").to_ascii_lowercase();
        for attr in ["src=", "href=", "action=", "poster=", "srcset=", "data="] {
            for (at, _) in markup.match_indices(attr) {
                let value = markup[at + attr.len()..]
                    .trim_start_matches(['"', '\''])
                    .split(['"', '\'', ' ', '>'])
                    .next()
                    .unwrap_or_default();
                assert!(
                    !value.starts_with("http:")
                        && !value.starts_with("https:")
                        && !value.starts_with("//"),
                    "{attr}{value}"
                );
            }
        }
        for needle in [
            "http://",
            "https://",
            "url(",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "import(",
        ] {
            assert!(!markup.contains(needle), "{needle} in the viewer");
        }
        assert!(markup.contains("href=\"data:,\""));
        assert!(page.contains("default-src 'none'; script-src 'sha256-"));
    }

    #[test]
    fn script_hash_matches() {
        // Python's hashlib as the reference SHA-256 (python3 is needed by
        // the interop tests anyway).
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import base64,hashlib,sys;\
                 print('sha256-'+base64.b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode())",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(JS.as_bytes())?;
                child.wait_with_output()
            })
            .expect("python3 runs");
        let expected = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            JS_CSP_HASH,
            expected.trim(),
            "update JS_CSP_HASH in render/html.rs"
        );
    }

    #[test]
    fn empty_report_renders() {
        let page = html(&json!({"info": {"name": "total"}, "children": [], "stats": {}}));
        let data: Value = serde_json::from_str(data_block(&page)).unwrap();
        assert_eq!(data["nodes"], json!([]));
        assert_eq!(data["base_id"], Value::Null);
    }
}
