//! The profiler of the current request context: Python's
//! `osprofiler.profiler`, with the same names.
//!
//! A context is one stack of open trace elements. Synchronous code has one
//! per thread; async code carries one per task (see [`FutureExt`]), so
//! concurrent requests on one thread never share a stack.

mod future;
pub(crate) mod id;

use std::fmt;
use std::sync::Arc;

use serde_json::{json, Value};

#[cfg(feature = "tokio")]
pub use future::spawn;
pub use future::{scope, FutureExt, WithProfiler};
pub use id::{get_shorten_id, shorten_id, uuid_to_int128, Id};

pub use crate::local::Name;
use crate::local::{self, Context};

/// A view of the active profiler: its ids and key.
///
/// It is a snapshot; starting or stopping elements afterwards does not
/// change it. Pass it to [`FutureExt::in_profiler`] or [`Profiler::enter`]
/// to continue the trace in another task or thread.
#[derive(Clone)]
pub struct Profiler {
    hmac_key: Arc<str>,
    base_id: Id,
    parent_id: Id,
    id: Id,
}

impl Profiler {
    pub(crate) fn of(ctx: &Context) -> Profiler {
        Profiler {
            hmac_key: ctx.hmac_key.clone(),
            base_id: ctx.base_id().clone(),
            parent_id: ctx.current_parent_id(),
            id: ctx.current_id(),
        }
    }

    /// The id shared by every element of the trace (`get_base_id`).
    pub fn base_id(&self) -> String {
        self.base_id.to_string()
    }

    /// The id of the parent of the current element (`get_parent_id`).
    pub fn parent_id(&self) -> String {
        self.parent_id.to_string()
    }

    /// The id of the current element (`get_id`).
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// The key that signs this trace's headers.
    pub fn hmac_key(&self) -> &str {
        &self.hmac_key
    }

    /// The lowest 64 bits of a uuid as hex (`get_shorten_id`).
    pub fn shorten_id(&self, uuid: &str) -> String {
        get_shorten_id(uuid)
    }

    /// A context that continues this trace: new elements become children of
    /// [`Profiler::id`].
    pub(crate) fn fork(&self) -> Context {
        Context::new(self.hmac_key.clone(), self.base_id.clone(), self.id.clone())
    }

    /// Makes this trace the current context of this thread until the guard
    /// is dropped (for work handed to another thread).
    pub fn enter(&self) -> Entered {
        Entered {
            previous: local::swap_context(Some(self.fork())),
        }
    }
}

impl fmt::Debug for Profiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Profiler")
            .field("base_id", &self.base_id)
            .field("parent_id", &self.parent_id)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Guard of [`Profiler::enter`]; restores the previous context on drop.
#[must_use = "the trace is only current while the guard lives"]
#[derive(Debug)]
pub struct Entered {
    previous: Option<Context>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        local::hand_over_pending();
        local::swap_context(self.previous.take());
    }
}

/// Creates the profiler of the current context if there is none (Python's
/// `profiler.init`) and returns it.
///
/// `base_id` defaults to a fresh uuid; the stack starts as
/// `[base_id, parent_id or base_id]`. Empty ids count as absent, as in Python.
pub fn init(hmac_key: &str, base_id: Option<&str>, parent_id: Option<&str>) -> Profiler {
    let make = || {
        let base = match base_id {
            Some(b) if !b.is_empty() => Id::from_text(b),
            _ => Id::random(),
        };
        let parent = match parent_id {
            Some(p) if !p.is_empty() => Id::from_text(p),
            _ => base.clone(),
        };
        Context::new(Arc::from(hmac_key), base, parent)
    };
    match local::init(make) {
        Some(ctx) => Profiler::of(&ctx),
        // Only while the thread is being torn down: hand back a detached
        // profiler so callers still get ids.
        None => Profiler::of(&make()),
    }
}

/// The profiler of the current context, if one was initialised.
pub fn get() -> Option<Profiler> {
    local::with_context(Profiler::of)
}

/// Whether a profiler is active in the current context; the cheap check to
/// make before building expensive `info`.
#[inline]
pub fn is_active() -> bool {
    local::is_active()
}

/// Opens an element named `name` and emits `<name>-start` (Python's
/// `profiler.start`). Does nothing when no profiler is active.
#[inline(always)]
pub fn start(name: impl Into<Name>, info: Option<Value>) {
    local::start(name.into(), info.map(local::Info::shared));
}

/// Emits `<name>-stop` for the innermost open element and closes it
/// (Python's `profiler.stop`). Does nothing when none is open.
#[inline(always)]
pub fn stop(info: Option<Value>) {
    local::stop(info);
}

/// Sends the notifications of the current context to the driver of
/// `service` (see [`notifier::ServiceTag`](crate::notifier::ServiceTag));
/// contexts forked from it inherit the tag. Returns whether a profiler was
/// active.
pub fn set_service(service: crate::notifier::ServiceTag) -> bool {
    local::with_context_mut(|ctx| ctx.set_service(service.0)).is_some()
}

/// Drops the profiler of the current context (Python's `profiler.clean`).
pub fn clean() {
    local::clean();
}

/// RAII form of `start`/`stop` (Python's `with profiler.Trace(...)`).
///
/// The element is stopped when the guard drops. Call [`Trace::error`] to
/// record a failure; a panic while the guard lives is recorded as one too.
///
/// ```
/// use osprofiler::profiler::{self, Trace};
/// use serde_json::json;
///
/// profiler::init("SECRET_KEY", None, None);
/// {
///     let _t = Trace::new("db", Some(json!({"db": {"statement": "SELECT 1"}})));
///     // ... the traced work ...
/// }
/// # profiler::clean();
/// ```
#[must_use = "the element is stopped when the guard is dropped"]
#[derive(Debug)]
pub struct Trace {
    started: bool,
    stop_info: Option<Value>,
}

impl Trace {
    /// Starts an element named `name`.
    #[inline(always)]
    pub fn new(name: impl Into<Name>, info: Option<Value>) -> Trace {
        Trace {
            started: local::start(name.into(), info.map(local::Info::shared)),
            stop_info: None,
        }
    }

    /// [`Trace::new`] with the never-changing start info of a call site
    /// (see `local::register_site_info`), for a caller that has just
    /// checked that a profiler is active.
    #[inline(always)]
    pub(crate) fn with_site_info(name: Name, site_info: u32) -> Trace {
        Trace {
            started: local::start_with_site_info(name, site_info),
            stop_info: None,
        }
    }

    /// A guard that opened nothing.
    #[inline(always)]
    pub(crate) fn not_started() -> Trace {
        Trace {
            started: false,
            stop_info: None,
        }
    }

    /// Records that the traced work failed with `error`: the stop carries
    /// `{"etype": <type name>, "message": <error text>}`.
    pub fn error<E: fmt::Display + ?Sized>(&mut self, error: &E) {
        if self.started {
            self.stop_info = Some(error_info(std::any::type_name::<E>(), &error.to_string()));
        }
    }

    /// Sets the `info` of the stop notification.
    pub fn set_stop_info(&mut self, info: Value) {
        self.stop_info = Some(info);
    }

    /// Whether this guard opened an element (a profiler was active).
    pub fn is_recording(&self) -> bool {
        self.started
    }
}

impl Trace {
    /// The common stop, without info, checks the info's tag only: moved
    /// out whole, the `Value` slot (of which `new` wrote only the tag)
    /// would be read back in wide pieces, which stalls.
    #[inline(never)]
    fn stop_element(&mut self) {
        if self.stop_info.is_none() && !std::thread::panicking() {
            local::stop(None);
        } else {
            self.stop_with_info();
        }
    }

    #[cold]
    fn stop_with_info(&mut self) {
        let info = match self.stop_info.take() {
            None => error_info("panic", "panicked while traced"),
            Some(info) => info,
        };
        local::stop(Some(info));
    }
}

impl Drop for Trace {
    // Inlined so that a guard that opened nothing costs one test.
    #[inline(always)]
    fn drop(&mut self) {
        if self.started {
            self.stop_element();
        }
    }
}

/// The stop `info` of a failed element.
pub fn error_info(etype: &str, message: &str) -> Value {
    json!({"etype": etype, "message": message})
}

/// Runs `work` inside an element named `name`; an `Err` it returns is
/// recorded on the stop as `etype`/`message`.
pub fn traced<T, E, F>(name: impl Into<Name>, info: Option<Value>, work: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E>,
    E: fmt::Display,
{
    let mut trace = Trace::new(name, info);
    let result = work();
    if let Err(e) = &result {
        trace.error(e);
    }
    result
}
