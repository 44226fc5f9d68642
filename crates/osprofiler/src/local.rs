//! Caller-thread hot path.
//!
//! One thread-local holds the profiler context of whatever is running on
//! this thread (a thread, or the task being polled) and the buffer of raw
//! events not yet handed to the collector. `start`/`stop` touch nothing
//! else: no locks, no formatting, no I/O. Ids stay integers and timestamps
//! stay raw clock readings until the collector thread converts them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::notifier::collector;
use crate::profiler::id::{random_uuid4, Id};

/// Events gathered on a thread before they are handed over as one batch.
pub(crate) const LOCAL_BATCH: usize = 256;

/// The name of a trace point (`wsgi`, `db`, `rpc`, ...).
///
/// Static names cost nothing to record; dynamic ones are shared, not copied.
#[derive(Clone, PartialEq, Eq)]
pub struct Name(NameRepr);

#[derive(Clone, PartialEq, Eq)]
enum NameRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            NameRepr::Static(s) => s,
            NameRepr::Shared(s) => s,
        }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&'static str> for Name {
    fn from(s: &'static str) -> Self {
        Name(NameRepr::Static(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(NameRepr::Shared(Arc::from(s)))
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Self {
        Name(NameRepr::Shared(s))
    }
}

impl From<Cow<'static, str>> for Name {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

/// Start or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Start,
    Stop,
}

/// One notification as recorded on the hot path.
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) phase: Phase,
    pub(crate) name: Name,
    pub(crate) base_id: Id,
    pub(crate) parent_id: Id,
    pub(crate) trace_id: Id,
    pub(crate) at: minstant::Instant,
    pub(crate) info: Option<Value>,
}

/// The profiler of one request context: Python's `_Profiler`.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) hmac_key: Arc<str>,
    /// `[base_id, parent_id, open element ids...]`; never shorter than two.
    pub(crate) stack: Vec<Id>,
    /// Names of the open elements, innermost last.
    pub(crate) names: Vec<Name>,
}

impl Context {
    pub(crate) fn new(hmac_key: Arc<str>, base_id: Id, parent_id: Id) -> Context {
        let mut stack = Vec::with_capacity(8);
        stack.push(base_id);
        stack.push(parent_id);
        Context {
            hmac_key,
            stack,
            names: Vec::new(),
        }
    }

    /// A context for work that continues this one elsewhere (a spawned task,
    /// another thread): new elements become children of the current one, and
    /// it cannot close elements it did not open.
    pub(crate) fn fork(&self) -> Context {
        Context::new(
            self.hmac_key.clone(),
            self.stack[0].clone(),
            self.stack[self.stack.len() - 1].clone(),
        )
    }
}

struct ThreadState {
    context: Option<Context>,
    buffer: Vec<RawEvent>,
}

impl ThreadState {
    fn hand_over(&mut self) {
        if !self.buffer.is_empty() {
            // Start small again: most requests record a few dozen events.
            let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(16));
            collector::submit(batch);
        }
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // The thread is ending: whatever it recorded still goes out.
        self.hand_over();
    }
}

thread_local! {
    static STATE: RefCell<ThreadState> = const {
        RefCell::new(ThreadState { context: None, buffer: Vec::new() })
    };
}

/// Runs `f` on this thread's state; does nothing (returns `None`) while the
/// thread is being torn down or the state is already borrowed, so the hot
/// path can never panic.
#[inline]
fn with_state<R>(f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    STATE
        .try_with(|cell| cell.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// Whether a profiler is active in the current context.
#[inline]
pub(crate) fn is_active() -> bool {
    with_state(|s| s.context.is_some()).unwrap_or(false)
}

pub(crate) fn with_context<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    with_state(|s| s.context.as_ref().map(f)).flatten()
}

/// Installs `context` when none is active; returns what is active afterwards.
pub(crate) fn init(context: impl FnOnce() -> Context) -> Option<Context> {
    with_state(|s| s.context.get_or_insert_with(context).clone())
}

/// Replaces the current context, returning the previous one. Used by the
/// future wrapper to give each task its own context while it is polled.
#[inline]
pub(crate) fn swap_context(context: Option<Context>) -> Option<Context> {
    with_state(|s| std::mem::replace(&mut s.context, context)).flatten()
}

pub(crate) fn clean() {
    with_state(|s| {
        s.context = None;
        s.hand_over();
    });
}

/// Hands this thread's buffered events to the collector now.
pub(crate) fn hand_over() {
    with_state(ThreadState::hand_over);
}

/// Hands buffered events over if there are any (cheap when there are none).
#[inline]
pub(crate) fn hand_over_pending() {
    with_state(|s| {
        if !s.buffer.is_empty() {
            s.hand_over();
        }
    });
}

/// Python's `_Profiler.start`. Returns whether an element was opened.
#[inline]
pub(crate) fn start(name: Name, info: Option<Value>) -> bool {
    with_state(|s| {
        let Some(ctx) = s.context.as_mut() else {
            return false;
        };
        let trace_id = Id::from_u128(random_uuid4());
        let parent_id = ctx.stack[ctx.stack.len() - 1].clone();
        ctx.stack.push(trace_id.clone());
        ctx.names.push(name.clone());
        if collector::is_recording() {
            s.buffer.push(RawEvent {
                phase: Phase::Start,
                name,
                base_id: ctx.stack[0].clone(),
                parent_id,
                trace_id,
                at: minstant::Instant::now(),
                info,
            });
            if s.buffer.len() >= LOCAL_BATCH {
                s.hand_over();
            }
        }
        true
    })
    .unwrap_or(false)
}

/// Python's `_Profiler.stop`: closes the innermost open element; does
/// nothing when none is open.
#[inline]
pub(crate) fn stop(info: Option<Value>) {
    with_state(|s| {
        let Some(ctx) = s.context.as_mut() else {
            return;
        };
        let Some(name) = ctx.names.pop() else {
            return;
        };
        let depth = ctx.stack.len();
        let trace_id = ctx.stack.pop().unwrap_or_else(Id::random);
        let parent_id = ctx.stack[depth - 2].clone();
        let base_id = ctx.stack[0].clone();
        let outermost_closed = ctx.names.is_empty();
        if collector::is_recording() {
            s.buffer.push(RawEvent {
                phase: Phase::Stop,
                name,
                base_id,
                parent_id,
                trace_id,
                at: minstant::Instant::now(),
                info,
            });
            // A finished request hands its events over at once, so nothing
            // waits in the buffer of a thread that then goes idle.
            if outermost_closed || s.buffer.len() >= LOCAL_BATCH {
                s.hand_over();
            }
        }
    });
}
