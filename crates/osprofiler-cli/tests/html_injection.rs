//! `trace show --html` with markup in every field a stored event controls
//! (issue #8 item 6), in headless Chromium. `html_viewer.rs` covers hostile
//! function names and arguments in `info`; this puts injection attempts in
//! the span names, ids, project, service, host, exception, `info` keys and
//! the base id (the page title), and checks that no element was created
//! and no script ran.

// Only the DOM dump of the shared browser helpers is used here.
#[allow(dead_code)]
mod browser;

// The renderers live in the binary crate; include them here as a module.
#[allow(dead_code)]
#[path = "../src/render/mod.rs"]
mod render;

use serde_json::{json, Value};

use browser::TempDir;

/// Runs if it ever becomes markup: marks the page, which the dump shows.
const IMG: &str = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">";
/// Ends a `<script>` data block if pasted raw, then runs.
const SCRIPT: &str = "</script><script>document.body.setAttribute('data-pwned','script')</script>";
/// Breaks out of a double-quoted attribute.
const ATTR: &str = "\" onmouseover=\"document.body.setAttribute('data-pwned','attr')\" x=\"";
/// Breaks out of a single-quoted JS string or attribute.
const QUOTE: &str = "';document.body.setAttribute('data-pwned','quote');'";

fn hostile_payloads() -> Vec<Value> {
    let base = format!("{IMG}{SCRIPT}");
    let event = |name: &str, trace: &str, parent: &str, second: u32, info: Value| {
        json!({
            "name": name, "base_id": base, "trace_id": trace, "parent_id": parent,
            "timestamp": format!("2026-01-01T00:00:0{second}.000000"),
            "info": info, "project": IMG, "service": SCRIPT,
        })
    };
    let root = format!("{ATTR}root");
    let child = format!("{QUOTE}child");
    vec![
        event(
            &format!("{IMG}-start"),
            &root,
            &base,
            0,
            json!({"host": ATTR}),
        ),
        event(
            &format!("{SCRIPT}-start"),
            &child,
            &root,
            1,
            json!({"host": QUOTE, IMG: SCRIPT, "request": {"path": IMG}}),
        ),
        event(
            &format!("{SCRIPT}-stop"),
            &child,
            &root,
            2,
            json!({"host": QUOTE, "etype": IMG, "message": SCRIPT}),
        ),
        event(
            &format!("{IMG}-stop"),
            &root,
            &base,
            3,
            json!({"host": ATTR}),
        ),
    ]
}

#[test]
fn markup_in_any_field_stays_text() {
    let report = osprofiler::report::build(hostile_payloads());
    assert_eq!((report.len(), report.skipped()), (2, 0));
    let html = render::html::html(&report.to_value());
    let dir = TempDir::new("inject");
    let (_, url) = browser::write_page(&dir, "trace.html", &html);
    let dom = browser::dump_dom(&url);

    // The viewer ran and drew both spans.
    assert!(dom.contains("class=\"row grid"), "no rows rendered:\n{dom}");
    // Set, the attribute serializes as `data-pwned="..."`; the payload
    // text itself (shown escaped) only has single quotes.
    assert!(!dom.contains("data-pwned=\""), "a payload ran:\n{dom}");
    assert!(!dom.contains("<img"), "an <img> element was created");
    // The attribute breakout shows as text, or inside an attribute value
    // with its quotes as `&quot;`. A real attribute would be `onmouseover="`
    // inside a tag: after a `<` with no `>` since (text escapes both).
    for (at, _) in dom.match_indices("onmouseover=\"") {
        let before = &dom[..at];
        assert!(
            before.rfind('<') < before.rfind('>'),
            "an attribute was injected at byte {at}"
        );
    }
    assert_eq!(dom.matches("<script").count(), 2, "extra script elements");
    let escaped = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // The hostile span names are shown, as text, cut at the first `-` as
    // every name is (the payloads hold one in `data-pwned`).
    for name in [IMG, SCRIPT] {
        let op = name.split('-').next().unwrap();
        assert!(
            dom.contains(&format!("<span class=\"name\">{}</span>", escaped(op))),
            "{op} not shown as text"
        );
    }
}
