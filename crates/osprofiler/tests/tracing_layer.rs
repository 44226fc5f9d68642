//! `tracing` spans as trace elements: nesting with osprofiler's own
//! elements, async spans, spans closed on other threads, out-of-order
//! closes.
#![cfg(feature = "tracing")]

mod common {
    pub mod tree;
}

use std::time::Duration;

use common::tree;
use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use osprofiler::profiler::{self, FutureExt as _, Trace};
use osprofiler::tracing_layer::OsprofilerLayer;
use serde_json::{json, Value};
use serial_test::serial;
use tracing::{info_span, Instrument as _};
use tracing_subscriber::layer::SubscriberExt;

const KEY: &str = "SECRET_KEY";

/// Runs `work` with the layer installed on this thread, inside a fresh
/// trace under a `root` element; returns the base id and the payloads.
fn run(layer: OsprofilerLayer, work: impl FnOnce()) -> (String, Vec<Value>) {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let subscriber = tracing_subscriber::registry().with(layer);
    let base_id = tracing::subscriber::with_default(subscriber, || {
        profiler::clean();
        let p = profiler::init(KEY, None, None);
        {
            let _root = Trace::new("root", None);
            work();
        }
        profiler::clean();
        p.base_id()
    });
    notifier::flush(Duration::from_secs(5)).unwrap();
    (base_id, store.payloads())
}

#[test]
#[serial]
fn spans_nest_with_osprofiler_elements() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let outer = info_span!(
            "outer",
            flavor = 42,
            name = "m1.small",
            state = tracing::field::Empty
        );
        let entered = outer.enter();
        {
            let _db = Trace::new("db", None);
            let _inner = info_span!("inner").entered();
        }
        outer.record("state", "done");
        drop(entered);
        drop(outer);
        let _after = Trace::new("after", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "root\n  outer\n    db\n      inner\n  after\n"
    );
    let outer = tree::only(&payloads, &base_id, "outer");
    assert_eq!(
        outer.start["info"]["tracing"],
        json!({"name": "outer", "target": "tracing_layer", "level": "INFO",
               "fields": {"flavor": 42, "name": "m1.small"}})
    );
    assert_eq!(
        outer.stop["info"]["tracing"],
        json!({"fields": {"state": "done"}})
    );
    let inner = tree::only(&payloads, &base_id, "inner");
    assert_eq!(inner.stop["info"].get("tracing"), None);
}

#[test]
#[serial]
fn async_span_is_one_element_across_polls() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        runtime.block_on(profiler::scope(async {
            profiler::init(KEY, None, None);
            let _request = Trace::new("request", None);
            let handler = async {
                // A guard held across `.await`s inside the span.
                let db = Trace::new("db", None);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                drop(db);
                let _cache = Trace::new("cache", None);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            .instrument(info_span!("handler"));
            let sibling = async {
                tokio::task::yield_now().await;
                let _s = Trace::new("sibling", None);
                tokio::task::yield_now().await;
            };
            tokio::join!(handler.in_current_profiler(), sibling.in_current_profiler());
            let _after = Trace::new("after", None);
        }));
    });
    // The scope's own trace is the one recorded.
    let elements: Vec<_> = payloads
        .iter()
        .filter(|p| p["name"] == "request-start")
        .collect();
    assert_eq!(elements.len(), 1);
    let base_id_async = elements[0]["base_id"].as_str().unwrap();
    assert_ne!(base_id_async, base_id);
    assert_eq!(
        tree::render(&payloads, base_id_async),
        "request\n  handler\n    db\n    cache\n  sibling\n  after\n"
    );
}

#[test]
#[serial]
fn span_closed_on_another_thread() {
    let mut ids = None;
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let span = info_span!("moved");
        span.in_scope(|| ids = profiler::get().map(|p| (p.parent_id(), p.id())));
        std::thread::spawn(move || drop(span)).join().unwrap();
        let _after = Trace::new("after", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "root\n  moved\n  after\n"
    );
    let moved = tree::only(&payloads, &base_id, "moved");
    let (parent, id) = ids.unwrap();
    assert_eq!(moved.parent_id, parent);
    assert_eq!(moved.stop["trace_id"], id.as_str());
}

#[test]
#[serial]
fn spans_outside_a_trace_are_ignored() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let subscriber = tracing_subscriber::registry().with(OsprofilerLayer::new());
    let base_id = tracing::subscriber::with_default(subscriber, || {
        profiler::clean();
        // No trace at all.
        info_span!("nothing").in_scope(|| {});
        // Created outside a trace, entered inside one.
        let early = info_span!("early");
        let p = profiler::init(KEY, None, None);
        early.in_scope(|| {
            let _db = Trace::new("db", None);
        });
        profiler::clean();
        // Created inside a trace, entered outside: stays unrecorded.
        profiler::init(KEY, Some(&p.base_id()), None);
        let late = info_span!("late");
        profiler::clean();
        late.in_scope(|| {});
        drop(late);
        p.base_id()
    });
    notifier::flush(Duration::from_secs(5)).unwrap();
    let payloads = store.payloads();
    assert_eq!(tree::render(&payloads, &base_id), "db\n");
    assert_eq!(payloads.len(), 2);
}

#[test]
#[serial]
fn stop_never_closes_a_span_element() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        // `a` is opened before the span and stopped while it is entered.
        profiler::start("a", None);
        let span = info_span!("span").entered();
        profiler::stop(None);
        let _inside = Trace::new("inside", None);
        drop(_inside);
        drop(span);
        let _next = Trace::new("next", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "root\n  a\n    span\n      inside\n  next\n"
    );
    let a = tree::only(&payloads, &base_id, "a");
    let span = tree::only(&payloads, &base_id, "span");
    // `a` was stopped by the `stop()`, the span by its close.
    assert!(a.stop["timestamp"].as_str() <= span.stop["timestamp"].as_str());
}

#[test]
#[serial]
fn span_exited_before_elements_it_contains() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let span = info_span!("span").entered();
        profiler::start("x", None);
        drop(span); // exits and closes the span while `x` is open
        profiler::start("y", None); // `x` is still the current element
        profiler::stop(None);
        profiler::stop(None); // closes `x`; the span leaves the stack
        let _z = Trace::new("z", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "root\n  span\n    x\n      y\n  z\n"
    );
}

#[test]
#[serial]
fn spans_exited_out_of_order() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let a = info_span!("a").entered();
        let b = info_span!("b").entered();
        drop(a); // `a` exits first: `b` stays current
        {
            let _mid = Trace::new("mid", None);
        }
        drop(b); // both leave the stack
        let _after = Trace::new("after", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "root\n  a\n    b\n      mid\n  after\n"
    );
}

#[test]
#[serial]
fn span_of_another_trace_is_not_entered() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let span = info_span!("first");
        span.in_scope(|| {});
        // Another trace is current when the span is entered again.
        let fresh = {
            let _guard = osprofiler::rpc::extract(
                &serde_json::from_value(json!({
                    "trace_info": {"hmac_key": KEY, "base_id": "other", "parent_id": "p"}
                }))
                .unwrap(),
            )
            .unwrap()
            .enter();
            span.in_scope(|| {
                let _t = Trace::new("in-other", None);
                profiler::get().unwrap()
            })
        };
        assert_eq!(fresh.base_id(), "other");
        assert_eq!(fresh.parent_id(), "p");
    });
    assert_eq!(tree::render(&payloads, &base_id), "root\n  first\n");
    let in_other: Vec<_> = payloads
        .iter()
        .filter(|p| p["base_id"] == "other")
        .collect();
    assert_eq!(in_other.len(), 2);
    assert_eq!(in_other[0]["parent_id"], "p");
}

#[tracing::instrument(err)]
fn fails(code: u32) -> Result<(), String> {
    Err(format!("boom {code}"))
}

#[test]
#[serial]
fn instrument_err_stops_with_an_error() {
    let (base_id, payloads) = run(OsprofilerLayer::new(), || {
        let _ = fails(7);
    });
    let fails = tree::only(&payloads, &base_id, "fails");
    assert_eq!(fails.start["info"]["tracing"]["fields"], json!({"code": 7}));
    assert_eq!(fails.stop["info"]["etype"], "Error");
    assert_eq!(fails.stop["info"]["message"], "boom 7");
}

#[test]
#[serial]
fn fixed_name() {
    let (base_id, payloads) = run(OsprofilerLayer::new().with_fixed_name("tracing"), || {
        info_span!("load").in_scope(|| {});
    });
    assert_eq!(tree::render(&payloads, &base_id), "root\n  tracing\n");
    let element = tree::only(&payloads, &base_id, "tracing");
    assert_eq!(element.start["info"]["tracing"]["name"], "load");
}

#[derive(Debug, Clone)]
enum Op {
    NewSpan,
    Enter(usize),
    Exit(usize),
    DropSpan(usize),
    Start,
    Stop,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Op::NewSpan),
        any::<usize>().prop_map(Op::Enter),
        any::<usize>().prop_map(Op::Exit),
        any::<usize>().prop_map(Op::DropSpan),
        Just(Op::Start),
        Just(Op::Stop),
    ]
}

/// Any interleaving of span enters/exits/closes and `start`/`stop`: no
/// panic, every element gets exactly one start and one stop with the same
/// parent, and nothing is left on the stack afterwards.
#[test]
#[serial]
fn any_interleaving_keeps_the_trace_well_formed() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&proptest::collection::vec(op(), 0..40), |ops| {
            let mut entered_spans = 0;
            let mut starts = 0;
            let (base_id, payloads) = run(OsprofilerLayer::new(), || {
                let mut spans: Vec<tracing::Span> = Vec::new();
                let mut guards: Vec<tracing::span::EnteredSpan> = Vec::new();
                let mut ever_entered = std::collections::HashSet::new();
                for op in &ops {
                    match *op {
                        Op::NewSpan => spans.push(info_span!("s")),
                        Op::Enter(i) if !spans.is_empty() => {
                            let span = spans[i % spans.len()].clone();
                            ever_entered.insert(span.id());
                            guards.push(span.entered());
                        }
                        Op::Exit(i) if !guards.is_empty() => {
                            let n = guards.len();
                            drop(guards.remove(i % n));
                        }
                        Op::DropSpan(i) if !spans.is_empty() => {
                            let n = spans.len();
                            drop(spans.remove(i % n));
                        }
                        Op::Start => {
                            starts += 1;
                            profiler::start("own", None);
                        }
                        Op::Stop => profiler::stop(None),
                        _ => {}
                    }
                }
                drop(guards);
                drop(spans);
                entered_spans = ever_entered.len();
                for _ in 0..starts {
                    profiler::stop(None);
                }
                // Only `root` is left open.
                assert_eq!(profiler::get().unwrap().parent_id(), base_id_of_current());
            });
            let elements = tree::elements(&payloads, &base_id);
            assert_eq!(elements.len(), 1 + entered_spans + starts);
            Ok(())
        })
        .unwrap();
}

fn base_id_of_current() -> String {
    profiler::get().unwrap().base_id()
}
