//! The `trace show --html` page in a real browser: Debian's Chromium,
//! headless, offline. Checks what a person would see (the DOM after the
//! scripts ran, a screenshot in `artifacts/html_viewer.png`), that hostile
//! payloads stay text, that expand/collapse, filtering and the details
//! panel work when clicked and typed into, and that a 100,000-span trace
//! stays a few dozen DOM rows.

mod browser;

// The renderers live in the binary crate; include them here as a module.
#[allow(dead_code)]
#[path = "../src/render/mod.rs"]
mod render;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use browser::{Session, TempDir};
use render::fixtures;

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts");
    std::fs::create_dir_all(&dir).expect("create artifacts/");
    dir
}

/// Text as the DOM serializer writes it in a text node.
fn as_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// The dumped DOM without its two `<script>` elements (the data block and
/// the viewer code): what is left is what the page shows.
fn without_scripts(dom: &str) -> String {
    let mut out = String::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<script") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</script>").expect("closed script") + start;
        rest = &rest[end + "</script>".len()..];
    }
    out.push_str(rest);
    out
}

/// The sample trace plus a chain of nested spans deeper than the levels
/// the viewer opens by default.
fn interactive_report() -> Value {
    let mut payloads = fixtures::payloads();
    let mut parent = "w".to_string();
    for level in 1..=7u64 {
        let id = format!("level{level}");
        for (kind, ts) in [("start", 9_900 + level), ("stop", 10_200 - level)] {
            payloads.push(fixtures::event(
                &format!("level{level}-{kind}"),
                &id,
                &parent,
                ts,
                "conductor",
                json!({}),
            ));
        }
        parent = id;
    }
    osprofiler::report::build(payloads).to_value()
}

#[test]
fn every_span_is_visible_text_and_no_payload_runs() {
    let report = fixtures::report();
    let dir = TempDir::new("dom");
    let (_, url) = browser::write_page(&dir, "trace.html", &render::html::html(&report));

    let dom = browser::dump_dom(&url);
    let shown = without_scripts(&dom);
    // The viewer ran: rows were built, the title was set from the data.
    assert!(
        shown.contains("class=\"row grid"),
        "no rows rendered:\n{shown}"
    );
    assert!(
        dom.contains("<title>Trace 7a3f1c2e-0000-4000-8000-000000000001 · OSProfiler</title>"),
        "title: {}",
        &dom[dom.find("<title>").unwrap()..][..120]
    );
    assert!(!dom.contains("pwned</title>"));

    for name in ["wsgi", "https", "db", "rpc", "driver", "evil", "orphan"] {
        assert!(
            shown.contains(&format!("<span class=\"name\">{name}</span>")),
            "{name} not shown"
        );
    }
    for function in fixtures::FUNCTIONS {
        assert!(shown.contains(&as_text(function)), "{function} not shown");
    }
    for text in [
        "GET /v2.1/servers",
        "POST /identity/v3/auth/tokens",
        "サービス",
        "compute-1",
        "ValueError",
        "10.25 ms",
    ] {
        assert!(shown.contains(&as_text(text)), "{text} not shown");
    }
    assert!(!shown.contains("<img"), "an <img> element was created");
    assert!(!dom.contains("<img"), "an <img> element was created");
    assert_eq!(dom.matches("<script").count(), 2, "extra script elements");
    // Stats table lists every operation.
    let stats = &shown[shown.find("id=\"stats\"").expect("stats table")..];
    for name in ["wsgi", "db", "rpc", "driver", "evil", "orphan", "https"] {
        assert!(stats.contains(&format!("<td>{name}</td>")), "{name} stats");
    }
}

#[test]
fn screenshot_of_the_sample_trace() {
    let dir = TempDir::new("shot");
    let page = render::html::html(&interactive_report());
    let (_, url) = browser::write_page(&dir, "trace.html", &page);
    // The page too, to open by hand.
    std::fs::write(artifacts().join("html_viewer.html"), &page).expect("write page");
    let png = artifacts().join("html_viewer.png");
    browser::screenshot(&url, &png);
}

/// Names of the rows currently in the DOM, top to bottom.
const ROW_NAMES: &str =
    "[...document.querySelectorAll('#rows .row .name')].map(e => e.textContent)";

fn row_names(session: &mut Session) -> Vec<String> {
    serde_json::from_value(session.eval(ROW_NAMES)).expect("names")
}

/// Selector of the toggle button in the row of the span named `name`.
fn toggle_of(session: &mut Session, name: &str) -> String {
    let index = session.eval(&format!(
        "(() => {{ const n = [...document.querySelectorAll('#rows .row')]\
         .find(r => r.querySelector('.name').textContent === {}); return n ? n.dataset.index : null; }})()",
        json!(name)
    ));
    let index = index.as_str().unwrap_or_else(|| panic!("no row {name}"));
    format!("#rows .row[data-index=\"{index}\"] .toggle")
}

#[test]
fn clicks_expand_collapse_filter_and_select() {
    let dir = TempDir::new("cdp");
    let (_, url) = browser::write_page(
        &dir,
        "trace.html",
        &render::html::html(&interactive_report()),
    );
    let mut s = Session::start();
    s.open(
        &url,
        "window.osprofilerViewer && window.osprofilerViewer.ready",
        Duration::from_secs(30),
    );

    // Nothing was fetched but the page itself.
    let urls = s.requested_urls();
    assert!(!urls.is_empty(), "no request recorded at all");
    for u in &urls {
        assert!(
            u.starts_with("file://") || u.starts_with("data:"),
            "the page requested {u}"
        );
    }

    // Levels 0-3 are open; level3 is collapsed, showing a count of its 4
    // hidden descendants.
    let names = row_names(&mut s);
    assert!(names.contains(&"level3".to_string()), "{names:?}");
    assert!(!names.contains(&"level4".to_string()), "{names:?}");
    let level3 = toggle_of(&mut s, "level3");
    assert_eq!(
        s.eval(&format!(
            "document.querySelector({}).closest('.row').querySelector('.count').textContent",
            json!(level3)
        )),
        "4"
    );

    // Expand level3: level4 appears (itself collapsed).
    s.click_selector(&level3);
    let names = row_names(&mut s);
    assert!(names.contains(&"level4".to_string()), "{names:?}");
    assert!(!names.contains(&"level5".to_string()), "{names:?}");

    // Collapse rpc: driver disappears; expand again: it is back.
    let rpc = toggle_of(&mut s, "rpc");
    assert!(row_names(&mut s).contains(&"driver".to_string()));
    s.click_selector(&rpc);
    let names = row_names(&mut s);
    assert!(!names.contains(&"driver".to_string()), "{names:?}");
    assert!(names.contains(&"rpc".to_string()));
    assert_eq!(
        s.eval(&format!(
            "document.querySelector({}).getAttribute('aria-expanded')",
            json!(rpc)
        )),
        "false"
    );
    s.click_selector(&rpc);
    assert!(row_names(&mut s).contains(&"driver".to_string()));

    // Collapse the root: only it is left.
    let wsgi = toggle_of(&mut s, "wsgi");
    s.click_selector(&wsgi);
    assert_eq!(row_names(&mut s), ["wsgi"]);
    s.click_selector(&wsgi);

    // Filter by service: the matches and their ancestors (dimmed).
    s.click_selector("#filter");
    s.type_text("compute");
    s.press("Enter", 13);
    assert_eq!(row_names(&mut s), ["wsgi", "rpc", "driver"]);
    assert_eq!(
        s.eval("document.querySelector('#rows .row').classList.contains('context')"),
        true
    );
    assert_eq!(
        s.eval("document.getElementById('filter-count').textContent"),
        "2 of 14 spans match"
    );
    // `field:` terms.
    s.eval("(() => { const f = document.getElementById('filter'); f.value = ''; f.focus(); })()");
    s.type_text("host:compute name:driver");
    s.press("Enter", 13);
    assert_eq!(row_names(&mut s), ["wsgi", "rpc", "driver"]);
    s.eval("(() => { const f = document.getElementById('filter'); f.value = ''; f.focus(); })()");
    s.press("Enter", 13);
    assert!(row_names(&mut s).len() > 10);

    // Select the hostile span: its fields and payloads show as text, and
    // no element or script came out of them.
    let evil = s.eval(
        "(() => { const r = [...document.querySelectorAll('#rows .row')]\
         .find(r => r.querySelector('.name').textContent === 'evil'); return r.dataset.index; })()",
    );
    s.click_selector(&format!(
        "#rows .row[data-index=\"{}\"] .c-service",
        evil.as_str().unwrap()
    ));
    let details = s.eval("document.getElementById('details').textContent");
    let details = details.as_str().unwrap();
    assert!(details.contains(fixtures::XSS_IMG), "{details}");
    assert!(details.contains(fixtures::XSS_SCRIPT), "{details}");
    assert!(details.contains("meta.raw_payload.evil-start"));
    assert!(details.contains("\"kwargs\": \"{\\\"k\\\": \\\"&amp; \u{2029}\\\"}\""));
    assert_eq!(s.eval("document.querySelectorAll('img').length"), 0);
    assert_eq!(s.eval("document.scripts.length"), 2);
    assert_eq!(s.eval("typeof window.__pwned"), "undefined");
    assert_eq!(
        s.eval("document.title"),
        "Trace 7a3f1c2e-0000-4000-8000-000000000001 · OSProfiler"
    );

    // Keyboard: ArrowDown selects the next row, ArrowLeft goes to the parent.
    s.click_selector(&format!(
        "#rows .row[data-index=\"{}\"] .c-detail",
        evil.as_str().unwrap()
    ));
    s.press("ArrowDown", 40);
    assert_eq!(
        s.eval("document.querySelector('#rows .row.selected .name').textContent"),
        "orphan"
    );
    s.press("ArrowLeft", 37);
    assert_eq!(
        s.eval("document.querySelector('#rows .row.selected .name').textContent"),
        "wsgi"
    );

    // "Next error" selects the first failed span and shows its message.
    s.click_selector("#next-error");
    assert_eq!(
        s.eval("document.querySelector('#rows .row.selected .name').textContent"),
        "rpc"
    );
    let error = s.eval("document.querySelector('#details .error-box').textContent");
    assert_eq!(error, "ValueError: build failed");
    s.screenshot(&artifacts().join("html_viewer_interaction.png"));
}

/// Payloads of a trace with `wide` spans under one root, each with
/// `per_child` children, plus a chain `deep` levels deep.
fn big_payloads(wide: usize, per_child: usize, deep: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(2 * (1 + wide * (1 + per_child) + deep));
    let mut t = 0u64;
    let span = |out: &mut Vec<Value>, name: &str, id: &str, parent: &str, t0: u64, t1: u64| {
        let base = "00000000-0000-4000-8000-00000000b16b";
        for (kind, ts) in [("start", t0), ("stop", t1)] {
            out.push(json!({
                "name": format!("{name}-{kind}"), "base_id": base, "trace_id": id,
                "parent_id": parent,
                "timestamp": format!("2026-11-21T09:{:02}:{:02}.{:06}",
                                     ts / 60_000_000, ts / 1_000_000 % 60, ts % 1_000_000),
                "info": {"host": format!("host-{}", id.len() % 3)},
                "project": "nova", "service": if name == "db" { "db" } else { "api" },
            }));
        }
    };
    let total = (wide * (per_child + 1) + deep) as u64 * 10 + 10;
    span(&mut out, "wsgi", "root", "b", 0, total);
    for i in 0..wide {
        let rpc = format!("r{i}");
        let t0 = t;
        t += 10;
        for j in 0..per_child {
            span(&mut out, "db", &format!("d{i}-{j}"), &rpc, t, t + 5);
            t += 10;
        }
        span(&mut out, "rpc", &rpc, "root", t0, t);
    }
    let mut parent = "root".to_string();
    for k in 0..deep {
        let id = format!("c{k}");
        span(&mut out, "chain", &id, &parent, t, total - 1);
        t += 1;
        parent = id;
    }
    out
}

/// 100,000 spans: the page opens in seconds, keeps only the rows in view
/// in the DOM, filters, and "Expand all" on a 20,000-deep chain works
/// (nothing in the page recurses).
#[test]
fn hundred_thousand_spans_stay_virtualized() {
    // Building and dropping a 20,000-deep serde_json::Value recurses; give
    // that thread room. The renderer itself does not recurse.
    let html = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(|| {
            let report = osprofiler::report::build(big_payloads(800, 99, 20_000)).to_value();
            render::html::html(&report)
        })
        .unwrap()
        .join()
        .unwrap();
    let dir = TempDir::new("big");
    let (_, url) = browser::write_page(&dir, "big.html", &html);
    drop(html);

    let mut s = Session::start();
    let started = Instant::now();
    s.open(
        &url,
        "window.osprofilerViewer && window.osprofilerViewer.ready",
        Duration::from_secs(120),
    );
    let load = started.elapsed();
    let spans = s.eval("window.osprofilerViewer.spans").as_u64().unwrap();
    assert_eq!(spans, 1 + 800 * 100 + 20_000);
    let visible = s
        .eval("window.osprofilerViewer.visibleCount()")
        .as_u64()
        .unwrap();
    assert!(visible > 80_000, "{visible} rows visible");
    let rendered = s
        .eval("window.osprofilerViewer.renderedRows()")
        .as_u64()
        .unwrap();
    assert!(rendered < 120, "{rendered} rows in the DOM");
    assert!(load < Duration::from_secs(60), "page took {load:?} to open");

    // Scroll to the bottom: the last rows are rendered, still few of them.
    s.eval("(() => { const e = document.getElementById('scroller'); e.scrollTop = e.scrollHeight; })()");
    s.wait_for(
        "[...document.querySelectorAll('#rows .row .name')].some(e => e.textContent === 'chain')",
        Duration::from_secs(10),
    );
    let rendered = s
        .eval("window.osprofilerViewer.renderedRows()")
        .as_u64()
        .unwrap();
    assert!(rendered < 120, "{rendered} rows in the DOM");

    // Expand everything (the 20,000-deep chain included) and go to the end.
    let t = Instant::now();
    s.click_selector("#expand-all");
    let expand = t.elapsed();
    let visible = s
        .eval("window.osprofilerViewer.visibleCount()")
        .as_u64()
        .unwrap();
    assert_eq!(visible, spans);
    s.eval("document.getElementById('scroller').focus()");
    s.press("End", 35);
    s.wait_for(
        "(document.querySelector('#rows .row.selected .depth') || {}).textContent === 'depth 20000'",
        Duration::from_secs(10),
    );

    // Filter all 100,000 spans.
    s.eval("(() => { const f = document.getElementById('filter'); f.value = ''; f.focus(); })()");
    let t = Instant::now();
    s.type_text("name:rpc");
    s.press("Enter", 13);
    let filter = t.elapsed();
    assert_eq!(
        s.eval("document.getElementById('filter-count').textContent"),
        format!("800 of {spans} spans match")
    );
    // Only the root keeps a toggle: the rpc spans' children all fail the
    // filter.
    assert_eq!(
        s.eval("document.querySelectorAll('#rows .toggle').length"),
        1
    );
    s.eval("document.getElementById('scroller').scrollTop = 0");
    s.wait_for(
        "document.querySelectorAll('#rows .row').length > 5",
        Duration::from_secs(5),
    );
    s.screenshot(&artifacts().join("html_viewer_100k.png"));
    eprintln!("100k spans: open {load:?}, expand all {expand:?}, filter {filter:?}");
    assert!(expand < Duration::from_secs(10) && filter < Duration::from_secs(10));
}
