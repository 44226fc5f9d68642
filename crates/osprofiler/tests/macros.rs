//! `#[trace]` and `#[trace_impl]`: the payloads they produce, checked
//! against what Python's `@profiler.trace` produces for equivalent code.
//!
//! Every test installs its own in-memory driver into the global notifier,
//! so they run one at a time (`#[serial]`).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::{notifier, profiler, trace, trace_impl};
use serde_json::{json, Value};
use serial_test::serial;

/// Runs `work` inside a fresh trace and returns the payloads it produced.
fn capture(work: impl FnOnce()) -> Vec<Value> {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    profiler::init("SECRET_KEY", None, None);
    work();
    profiler::clean();
    notifier::flush(Duration::from_secs(5)).expect("flush");
    notifier::reset();
    store.payloads()
}

fn names(payloads: &[Value]) -> Vec<&str> {
    payloads
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("?"))
        .collect()
}

/// The `info` of a payload without the collector's `host`.
fn info(payload: &Value) -> Value {
    let mut info = payload["info"].clone();
    if let Some(map) = info.as_object_mut() {
        assert!(
            map.remove("host").is_some(),
            "every info has a host: {payload}"
        );
    }
    info
}

#[derive(Debug, PartialEq)]
struct Flavor {
    vcpus: u32,
}

struct NoDebug;

#[derive(Debug)]
struct ApiError(&'static str);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api failed: {}", self.0)
    }
}

impl std::error::Error for ApiError {}

#[derive(Debug)]
struct DebugOnlyError;

#[trace("rpc", info = json!({"k": "v"}))]
fn add(a: i32, b: &str) -> i32 {
    a + b.len() as i32
}

#[trace("rpc")]
fn no_args() {}

#[trace("rpc")]
fn one_arg(flavor: Flavor) -> u32 {
    flavor.vcpus
}

#[trace("rpc")]
fn odd_args(_opaque: NoDebug, (x, _): (u8, u8), _: u8, mut y: String) -> String {
    y.push(x as char);
    y
}

#[trace("rpc", hide_args = true, info = json!({"request": {"id": id}}))]
fn login(id: u32, password: &str) -> usize {
    password.len() + id as usize
}

#[trace("rpc", hide_result = false)]
fn shown(x: u8) -> Option<u8> {
    x.checked_mul(2)
}

#[trace("rpc")]
fn fails(fail: bool) -> Result<u8, ApiError> {
    if fail {
        return Err(ApiError("quota"));
    }
    Ok(1)
}

#[trace("rpc", hide_result = false)]
fn parses(text: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let n: u32 = text.parse()?;
    Ok(n * 2)
}

#[trace("rpc")]
fn debug_error() -> std::result::Result<(), DebugOnlyError> {
    Err(DebugOnlyError)
}

#[trace("rpc")]
fn panics(x: u8) -> u8 {
    if x > 0 {
        panic!("boom");
    }
    x
}

#[trace("outer")]
fn outer() -> i32 {
    add(1, "xy") + add(2, "")
}

#[test]
#[serial]
fn sync_fn_start_and_stop() {
    let payloads = capture(|| assert_eq!(add(1, "x"), 2));
    assert_eq!(names(&payloads), ["rpc-start", "rpc-stop"]);
    assert_eq!(
        info(&payloads[0]),
        json!({"k": "v", "function": {"name": "macros::add", "args": "(1, \"x\")", "kwargs": "{}"}})
    );
    // Key order as in Python: the caller's info, then function, then host.
    let keys: Vec<_> = payloads[0]["info"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["k", "function", "host"]);
    assert_eq!(info(&payloads[1]), json!({}));
    assert_eq!(payloads[0]["trace_id"], payloads[1]["trace_id"]);
}

#[test]
#[serial]
fn a_call_site_without_arguments_records_its_info_every_time() {
    // The info is built on the first call and reused by later ones.
    let payloads = capture(|| {
        for _ in 0..3 {
            no_args();
        }
    });
    let starts: Vec<_> = payloads
        .iter()
        .filter(|p| p["name"] == "rpc-start")
        .map(info)
        .collect();
    let expected = json!({"function": {"name": "macros::no_args", "args": "()", "kwargs": "{}"}});
    assert_eq!(starts, [expected.clone(), expected.clone(), expected]);
}

#[test]
#[serial]
fn args_render_like_a_tuple() {
    let payloads = capture(|| {
        no_args();
        one_arg(Flavor { vcpus: 2 });
        odd_args(NoDebug, (b'a', 0), 0, "s".into());
    });
    let args: Vec<_> = payloads
        .iter()
        .filter(|p| p["name"] == "rpc-start")
        .map(|p| p["info"]["function"]["args"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        args,
        [
            "()",
            "(Flavor { vcpus: 2 },)",
            "(<macros::NoDebug>, _, _, \"s\")"
        ]
    );
}

#[test]
#[serial]
fn hide_args_leaves_out_args_and_kwargs() {
    let payloads = capture(|| assert_eq!(login(7, "secret"), 13));
    assert_eq!(
        info(&payloads[0]),
        json!({"request": {"id": 7}, "function": {"name": "macros::login"}})
    );
    let text = serde_json::to_string(&payloads).unwrap();
    assert!(!text.contains("secret"));
}

#[test]
#[serial]
fn hide_result_false_shows_the_result() {
    let payloads = capture(|| {
        shown(3);
        shown(200);
    });
    assert_eq!(
        info(&payloads[1]),
        json!({"function": {"result": "Some(6)"}})
    );
    assert_eq!(info(&payloads[3]), json!({"function": {"result": "None"}}));
}

#[test]
#[serial]
fn err_result_records_etype_and_message() {
    let payloads = capture(|| {
        assert!(fails(false).is_ok());
        assert!(fails(true).is_err());
        assert!(parses("x").is_err());
        assert_eq!(parses("21").unwrap(), 42);
        assert!(debug_error().is_err());
    });
    assert_eq!(payloads.len(), 10);
    assert_eq!(info(&payloads[1]), json!({}));
    assert_eq!(
        info(&payloads[3]),
        json!({"etype": "macros::ApiError", "message": "api failed: quota"})
    );
    assert_eq!(
        info(&payloads[5]),
        json!({"etype": "alloc::boxed::Box<dyn core::error::Error>",
               "message": "invalid digit found in string"})
    );
    assert_eq!(
        info(&payloads[7]),
        json!({"function": {"result": "Ok(42)"}})
    );
    assert_eq!(
        info(&payloads[9]),
        json!({"etype": "macros::DebugOnlyError", "message": "DebugOnlyError"})
    );
}

#[test]
#[serial]
fn panic_is_recorded_and_propagates() {
    let payloads = capture(|| {
        let caught = std::panic::catch_unwind(|| panics(1));
        assert!(caught.is_err());
    });
    assert_eq!(names(&payloads), ["rpc-start", "rpc-stop"]);
    assert_eq!(info(&payloads[1])["etype"], "panic");
}

#[test]
#[serial]
fn nested_calls_nest() {
    let payloads = capture(|| assert_eq!(outer(), 5));
    assert_eq!(
        names(&payloads),
        [
            "outer-start",
            "rpc-start",
            "rpc-stop",
            "rpc-start",
            "rpc-stop",
            "outer-stop"
        ]
    );
    assert_eq!(payloads[1]["parent_id"], payloads[0]["trace_id"]);
    assert_eq!(payloads[3]["parent_id"], payloads[0]["trace_id"]);
}

#[test]
#[serial]
fn nothing_without_a_profiler() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    profiler::clean();
    assert_eq!(add(1, "x"), 2);
    assert!(fails(true).is_err());
    assert_eq!(shown(1), Some(2));
    assert_eq!(block_on(fetch(3)).unwrap(), 3);
    notifier::flush(Duration::from_secs(5)).expect("flush");
    notifier::reset();
    assert!(store.payloads().is_empty());
}

static FORMATTED: AtomicUsize = AtomicUsize::new(0);

/// Counts how often it is formatted.
struct Counted;

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("Counted")
    }
}

fn counted_info() -> Value {
    FORMATTED.fetch_add(1, Ordering::SeqCst);
    json!({})
}

#[trace("rpc", hide_result = false, info = counted_info())]
fn lazy(c: Counted) -> Counted {
    c
}

#[test]
#[serial]
fn formats_only_what_is_recorded() {
    FORMATTED.store(0, Ordering::SeqCst);
    // No profiler: nothing formatted.
    profiler::clean();
    lazy(Counted);
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 0);
    // A profiler but the no-op notifier: the element is still opened (its
    // id is the parent of what follows) but nothing is formatted.
    notifier::reset();
    profiler::init("SECRET_KEY", None, None);
    lazy(Counted);
    profiler::clean();
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 0);
    // Recorded: the argument, the info and the result.
    let payloads = capture(|| {
        lazy(Counted);
    });
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 3);
    assert_eq!(payloads[0]["info"]["function"]["args"], "(Counted,)");
    assert_eq!(payloads[1]["info"]["function"]["result"], "Counted");
}

// ---- async fn ----

#[trace("api", hide_result = false)]
async fn fetch(id: u32) -> Result<u32, ApiError> {
    tokio::task::yield_now().await;
    if id == 0 {
        return Err(ApiError("not found"));
    }
    Ok(id)
}

#[trace("api")]
async fn slow(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
#[serial]
fn async_fn_spans_its_body() {
    let payloads = capture(|| {
        assert_eq!(block_on(fetch(5)).unwrap(), 5);
        assert!(block_on(fetch(0)).is_err());
    });
    assert_eq!(
        names(&payloads),
        ["api-start", "api-stop", "api-start", "api-stop"]
    );
    assert_eq!(
        info(&payloads[0]),
        json!({"function": {"name": "macros::fetch", "args": "(5,)", "kwargs": "{}"}})
    );
    assert_eq!(info(&payloads[1]), json!({"function": {"result": "Ok(5)"}}));
    assert_eq!(
        info(&payloads[3]),
        json!({"etype": "macros::ApiError", "message": "api failed: not found"})
    );
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

#[test]
#[serial]
fn dropped_async_fn_stops_its_element() {
    let payloads = capture(|| {
        let waker = Waker::from(Arc::new(NoopWaker));
        let mut cx = Context::from_waker(&waker);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _entered = runtime.enter();
        {
            let mut future = pin!(slow(60_000));
            assert!(future.as_mut().poll(&mut cx).is_pending());
        } // cancelled here
    });
    assert_eq!(names(&payloads), ["api-start", "api-stop"]);
}

// ---- methods ----

#[derive(Debug)]
struct Compute {
    servers: Vec<String>,
}

#[trace_impl("rpc")]
impl Compute {
    const LIMIT: usize = 10;

    fn new() -> Compute {
        Compute {
            servers: Vec::new(),
        }
    }

    pub fn boot(&mut self, name: &str) -> Result<&mut String, ApiError> {
        if self.servers.len() >= Self::LIMIT {
            return Err(ApiError("quota"));
        }
        self.servers.push(name.to_owned());
        self.servers.last_mut().ok_or(ApiError("lost"))
    }

    fn count(&self) -> usize {
        self._cached() + self.__internal()
    }

    fn _cached(&self) -> usize {
        self.servers.len()
    }

    fn __internal(&self) -> usize {
        0
    }

    #[no_trace]
    fn hot(&self) -> usize {
        1
    }

    #[trace("db", hide_args = true)]
    fn own(&self) {}

    async fn refresh(&self, force: bool) -> bool {
        force
    }
}

trait Service {
    fn status(&self, verbose: bool) -> String;
}

#[trace_impl("rpc", hide_result = false)]
impl Service for Compute {
    fn status(&self, verbose: bool) -> String {
        format!("{} {verbose}", self.servers.len())
    }
}

struct Pool<T>(Vec<T>);

#[trace_impl(
    "rpc",
    trace_private = true,
    trace_static_methods = true,
    hide_args = true
)]
impl<T: Clone> Pool<T> {
    fn with(item: T) -> Self {
        Pool(vec![item])
    }

    fn _take(&mut self) -> Option<T> {
        self.0.pop()
    }

    fn __never(&self) {}

    fn len(&self) -> usize {
        self.__never();
        self.0.len()
    }
}

fn function_names(payloads: &[Value]) -> Vec<(&str, &str)> {
    payloads
        .iter()
        .filter_map(|p| {
            let name = p["info"]["function"]["name"].as_str()?;
            Some((p["name"].as_str()?, name))
        })
        .collect()
}

#[test]
#[serial]
fn trace_impl_traces_public_methods() {
    let payloads = capture(|| {
        let mut compute = Compute::new();
        compute.boot("vm1").unwrap().push('!');
        assert_eq!(compute.count(), 1);
        assert_eq!(compute.hot(), 1);
        compute.own();
        assert!(block_on(compute.refresh(true)));
        assert_eq!(compute.status(true), "1 true");
    });
    assert_eq!(
        function_names(&payloads),
        [
            ("rpc-start", "macros::Compute::boot"),
            ("rpc-start", "macros::Compute::count"),
            ("db-start", "macros::Compute::own"),
            ("rpc-start", "macros::Compute::refresh"),
            ("rpc-start", "<macros::Compute as macros::Service>::status"),
        ]
    );
    // `self` is not part of `args`.
    assert_eq!(payloads[0]["info"]["function"]["args"], "(\"vm1\",)");
    assert!(payloads[4]["info"]["function"].get("args").is_none());
    let last = payloads.last().unwrap();
    assert_eq!(info(last), json!({"function": {"result": "\"1 true\""}}));
}

#[test]
#[serial]
fn trace_impl_private_and_static_options() {
    let payloads = capture(|| {
        let mut pool = Pool::with(1u8);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool._take(), Some(1));
    });
    assert_eq!(
        function_names(&payloads),
        [
            ("rpc-start", "macros::Pool::with"),
            ("rpc-start", "macros::Pool::len"),
            ("rpc-start", "macros::Pool::_take"),
        ]
    );
    assert_eq!(
        info(&payloads[0]),
        json!({"function": {"name": "macros::Pool::with"}})
    );
}

// ---- against the Python reference ----

/// The referee interpreter; a missing one FAILS the test (interop is never
/// skipped silently).
fn python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "Python referee not found at {}: run scripts/python-env",
        python.display()
    );
    Some(python)
}

/// Python's `@profiler.trace` on the same functions as the Rust ones below.
const PYTHON_SCRIPT: &str = r#"
import json
from osprofiler import notifier, profiler

events = []
notifier.set(events.append)
profiler.init("SECRET_KEY")

@profiler.trace("rpc", info={"k": "v"})
def add(a, b):
    return a + len(b)

@profiler.trace("rpc")
def two_ints(a, b):
    return a + b

@profiler.trace("rpc")
def one(a):
    return a

@profiler.trace("rpc")
def none():
    return None

@profiler.trace("rpc", hide_args=True)
def login(id, password):
    return id

@profiler.trace("rpc", hide_result=False)
def shown(x):
    return x * 2

@profiler.trace("rpc")
def fails(x):
    raise ValueError("api failed: quota")

add(1, "x")
two_ints(1, 2)
one(7)
none()
login(7, "secret")
shown(3)
try:
    fails(1)
except ValueError:
    pass
print(json.dumps(events))
"#;

#[trace("rpc", info = json!({"k": "v"}))]
fn py_add(a: i32, b: &str) -> i32 {
    a + b.len() as i32
}

#[trace("rpc")]
fn py_two_ints(a: i32, b: i32) -> i32 {
    a + b
}

#[trace("rpc")]
fn py_one(a: i32) -> i32 {
    a
}

#[trace("rpc")]
fn py_none() {}

#[trace("rpc", hide_args = true)]
fn py_login(id: u32, _password: &str) -> u32 {
    id
}

#[trace("rpc", hide_result = false)]
fn py_shown(x: i32) -> i32 {
    x * 2
}

#[trace("rpc")]
fn py_fails(_x: i32) -> Result<(), ApiError> {
    Err(ApiError("quota"))
}

/// Replaces what legitimately differs between the languages (function
/// names, type names) so the rest can be compared exactly.
fn normalize(mut info: Value) -> Value {
    if let Some(function) = info.get_mut("function").and_then(Value::as_object_mut) {
        if let Some(name) = function.get_mut("name") {
            assert!(name.as_str().is_some_and(|n| !n.is_empty()));
            *name = json!("<name>");
        }
        if let Some(args) = function.get_mut("args") {
            // Python reprs strings with single quotes, Rust's Debug with
            // double quotes: the only difference for simple values.
            *args = json!(args.as_str().unwrap().replace('\'', "\""));
        }
    }
    if let Some(etype) = info.get_mut("etype") {
        *etype = json!("<etype>");
    }
    info
}

#[test]
#[serial]
fn payload_shapes_match_python() {
    let Some(python) = python() else { return };
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(PYTHON_SCRIPT)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let py: Vec<Value> = serde_json::from_slice(&output.stdout).expect("python json");

    let rust = capture(|| {
        py_add(1, "x");
        py_two_ints(1, 2);
        py_one(7);
        py_none();
        py_login(7, "secret");
        py_shown(3);
        let _ = py_fails(1);
    });
    assert_eq!(names(&py), names(&rust));
    for (py, rust) in py.iter().zip(&rust) {
        // Same keys in the same order, same values once names are masked.
        let py_info = normalize(info(py));
        let rust_info = normalize(info(rust));
        assert_eq!(py_info, rust_info, "python {py}\nrust {rust}");
        assert_eq!(
            serde_json::to_string(&py_info).unwrap(),
            serde_json::to_string(&rust_info).unwrap()
        );
    }
    // The error message itself is the error's text in both.
    assert_eq!(py[13]["info"]["message"], rust[13]["info"]["message"]);
    assert_eq!(py[13]["info"]["etype"], "ValueError");
}
