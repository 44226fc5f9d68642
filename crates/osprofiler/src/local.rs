//! Caller-thread hot path.
//!
//! One thread-local holds the profiler context of whatever is running on
//! this thread (a thread, or the task being polled) and the buffer of raw
//! events not yet handed to the collector. `start`/`stop` touch nothing
//! else: no locks, no formatting, no I/O. Ids stay integers and timestamps
//! stay raw clock readings until the collector thread converts them.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::limits;
use crate::notifier::collector;
use crate::profiler::id::{Id, LocalId, Rng};

/// Events gathered on a thread before they are handed over as one batch.
pub(crate) const LOCAL_BATCH: usize = 256;
/// Smallest buffer taken after a short batch.
const SMALL_BATCH: usize = 8;

/// The `info` of a record.
#[derive(Debug)]
pub(crate) enum Info {
    /// What a caller gave.
    Value(Value),
    /// A JSON object rendered as compact text by the code that recorded it
    /// (the tower layer's request info): one allocation where a `Value`
    /// takes one per map and string, each freed by the collector thread.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Rendered(Box<str>),
}

impl Info {
    /// A caller's value, as a record holds it.
    pub(crate) fn shared(value: Value) -> Arc<Info> {
        Arc::new(Info::Value(value))
    }

    /// The info as a JSON value (parsed when rendered).
    pub(crate) fn to_value(&self) -> Cow<'_, Value> {
        match self {
            Info::Value(value) => Cow::Borrowed(value),
            Info::Rendered(text) => Cow::Owned(serde_json::from_str(text).unwrap_or(Value::Null)),
        }
    }
}

/// The name of a trace point (`wsgi`, `db`, `rpc`, ...).
///
/// Static names cost nothing to record; dynamic ones are shared, not copied.
#[derive(Clone, PartialEq, Eq)]
pub struct Name(NameRepr);

#[derive(Clone, PartialEq, Eq)]
enum NameRepr {
    Static(&'static str),
    /// A thin pointer (`Arc<str>` would be a fat one), so that a name is 16
    /// bytes and a record fits in 120.
    Shared(Arc<Box<str>>),
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
        Name(NameRepr::Shared(Arc::new(s.into_boxed_str())))
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Self {
        Name(NameRepr::Shared(Arc::new(Box::from(&*s))))
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

/// One notification as recorded on the hot path, or two: a start whose
/// element was stopped while the start still sat in the same buffer
/// carries its stop too (`stopped`), so the common short element costs one
/// record instead of two.
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) phase: Phase,
    pub(crate) name: Name,
    pub(crate) base_id: Id,
    pub(crate) parent_id: Id,
    pub(crate) trace_id: LocalId,
    pub(crate) at: crate::clock::Instant,
    /// Behind a pointer: most events carry none, and a smaller event is
    /// cheaper to move on the hot path.
    pub(crate) info: Option<Arc<Info>>,
    /// Whether this start carries the stop of its element (recorded
    /// without info, at `stop_at`).
    pub(crate) stopped: bool,
    /// Meaningful when `stopped`. (Not an `Option`: that would take the
    /// record over the 120 bytes asserted below.)
    pub(crate) stop_at: crate::clock::Instant,
    /// Which registered service recorded it (0: the process's default).
    pub(crate) service: u16,
    /// The start info of a call site that never changes it (see
    /// [`register_site_info`]), when `info` is `None`; 0 for none. An
    /// index rather than a shared pointer: counting references to one info
    /// from the traced thread and the collector would bounce its cache
    /// line between them on every call.
    pub(crate) site_info: u32,
}

// Every byte of a record is written by the traced thread and read by the
// collector on another core: keep it small.
const _: () = assert!(std::mem::size_of::<RawEvent>() <= 120);

impl RawEvent {
    /// A record of one notification taken now.
    #[inline(always)]
    fn now(
        phase: Phase,
        name: Name,
        (base_id, parent_id, trace_id): (Id, Id, LocalId),
        info: Option<Arc<Info>>,
        service: u16,
    ) -> RawEvent {
        RawEvent {
            phase,
            name,
            base_id,
            parent_id,
            trace_id,
            at: crate::clock::Instant::now(),
            info,
            stopped: false,
            stop_at: crate::clock::Instant::ZERO,
            service,
            site_info: 0,
        }
    }

    /// The info of this record, wherever it is kept.
    pub(crate) fn info(&self) -> Option<&Info> {
        match self.info.as_deref() {
            Some(info) => Some(info),
            None => site_info(self.site_info),
        }
    }

    /// How many notifications this record stands for.
    pub(crate) fn notifications(&self) -> usize {
        1 + usize::from(self.stopped)
    }
}

/// An open element: its id and name, and where its start record waits so
/// that `stop` can complete it in place.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    id: LocalId,
    name: Name,
    start: Slot,
}

impl Frame {
    /// An element whose start record `stop` may not complete.
    fn elsewhere(id: LocalId, name: Name) -> Frame {
        Frame {
            id,
            name,
            start: Slot::NONE,
        }
    }
}

/// A place in a thread's event buffer. Buffer ids are unique in the
/// process, so a slot taken on one thread never matches another thread's
/// buffer, nor a later buffer of the same thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    buffer: u64,
    index: u32,
}

impl Slot {
    const NONE: Slot = Slot {
        buffer: 0,
        index: 0,
    };
    /// The element was not recorded (over the context's event budget): its
    /// stop is not recorded either.
    const UNRECORDED: Slot = Slot {
        buffer: u64::MAX,
        index: 0,
    };
}

/// The profiler of one request context: Python's `_Profiler`.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) hmac_key: Arc<str>,
    /// The id shared by every element of the trace.
    pub(crate) base_id: Id,
    /// The parent of the outermost element opened in this context.
    parent_id: Id,
    /// The open elements, innermost last (Python's trace stack without its
    /// first two ids, which are the two above). One vector, so opening an
    /// element is one push.
    frames: Vec<Frame>,
    /// Open elements owned by something other than `start`/`stop` (a
    /// `tracing` span), by position; empty unless such an integration is
    /// in use. See [`start_foreign`].
    foreign: Vec<Foreign>,
    /// The service whose driver receives this context's notifications
    /// (see `notifier::add_service`); 0 for the default driver.
    pub(crate) service: u16,
    /// Events this context may still record (see `limits`).
    budget: u32,
    /// Whether the `truncated` marker was recorded.
    truncated: bool,
}

/// An element on the stack that `stop` must not close (it is closed by
/// its owner, e.g. a `tracing` span, with [`record_stop`]).
#[derive(Debug, Clone)]
struct Foreign {
    /// Index of the element in `Context::frames`.
    depth: usize,
    /// How many times its owner has it entered on this stack; at 0 it only
    /// stays while elements opened inside it are still open above it.
    entries: u32,
}

impl Context {
    pub(crate) fn new(hmac_key: Arc<str>, base_id: Id, parent_id: Id) -> Context {
        Context {
            hmac_key,
            base_id,
            parent_id,
            frames: Vec::new(),
            foreign: Vec::new(),
            service: 0,
            budget: limits::max_trace_events(),
            truncated: false,
        }
    }

    /// A context for work that continues this one elsewhere (a spawned task,
    /// another thread): new elements become children of the current one, and
    /// it cannot close elements it did not open.
    pub(crate) fn fork(&self) -> Context {
        let mut forked = Context::new(
            self.hmac_key.clone(),
            self.base_id.clone(),
            self.current_id(),
        );
        forked.service = self.service;
        forked
    }

    /// The id of the innermost open element, or the context's parent id
    /// when none is open (Python's `get_id`).
    #[inline(always)]
    pub(crate) fn current_id(&self) -> Id {
        match self.frames.last() {
            Some(frame) => frame.id.id(),
            None => self.parent_id.clone(),
        }
    }

    /// The id below the current one on Python's trace stack
    /// (`get_parent_id`).
    pub(crate) fn current_parent_id(&self) -> Id {
        match self.frames.len() {
            0 => self.base_id.clone(),
            1 => self.parent_id.clone(),
            n => self.frames[n - 2].id.id(),
        }
    }

    /// The id of the element that encloses the frame at `depth`.
    fn parent_of(&self, depth: usize) -> Id {
        match depth.checked_sub(1) {
            Some(below) => self.frames[below].id.id(),
            None => self.parent_id.clone(),
        }
    }
}

struct ThreadState {
    context: Option<Context>,
    buffer: Buffer,
    /// Ids of the elements opened on this thread.
    rng: Rng,
}

/// Events recorded on this thread and not yet handed over.
struct Buffer {
    /// Unallocated between batches, so an idle thread holds no buffer; a
    /// recording thread takes one from the collector (see `next_capacity`).
    events: Vec<RawEvent>,
    /// This buffer's process-unique id (see [`Slot`]); 0 before the first.
    id: u64,
    /// Capacity of the next buffer: full size (from the collector's pool,
    /// so pushes do not reallocate) unless the last batch was short. A
    /// thread handing over each request's few events would otherwise
    /// allocate a full-size buffer per request whenever the pool is empty.
    next_capacity: usize,
}

impl Buffer {
    fn hand_over(&mut self) {
        if !self.events.is_empty() {
            self.next_capacity = self
                .events
                .len()
                .next_power_of_two()
                .clamp(SMALL_BATCH, LOCAL_BATCH);
            collector::submit(std::mem::take(&mut self.events));
        }
    }

    /// Buffers one event and returns where it went; hands the buffer over
    /// when it is full.
    #[inline(always)]
    fn push(&mut self, event: RawEvent) -> Slot {
        self.push_with(|| event)
    }

    /// [`Buffer::push`] of the record `event` makes, made after the buffer
    /// is fetched: a start's clock reading then leaves out the fetch (a
    /// pool lock, or an allocation), which is not the traced work.
    #[inline(always)]
    fn push_with(&mut self, event: impl FnOnce() -> RawEvent) -> Slot {
        if self.events.capacity() == 0 {
            self.events = collector::empty_buffer(self.next_capacity);
            self.id = collector::next_buffer_id();
        }
        let slot = Slot {
            buffer: self.id,
            index: self.events.len() as u32,
        };
        self.events.push(event());
        if self.events.len() >= LOCAL_BATCH {
            self.hand_over();
        }
        slot
    }

    /// The start record at `slot` when it is still here and not stopped.
    #[inline(always)]
    fn unstopped_start(&mut self, slot: Slot) -> Option<&mut RawEvent> {
        if slot.buffer != self.id {
            return None;
        }
        self.events
            .get_mut(slot.index as usize)
            .filter(|e| !e.stopped)
    }

    /// Records the stop of an element: into its start record when that is
    /// still here, as an event of its own otherwise.
    #[inline(always)]
    fn stop(&mut self, start: Slot, info: Option<Value>, event: impl FnOnce() -> RawEvent) {
        let at = crate::clock::Instant::now();
        match self.unstopped_start(start).filter(|_| info.is_none()) {
            Some(record) => {
                record.stopped = true;
                record.stop_at = at;
            }
            None => {
                let mut event = event();
                event.at = at;
                event.info = info.map(Info::shared);
                self.push(event);
            }
        }
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // The thread is ending: whatever it recorded still goes out.
        self.buffer.hand_over();
    }
}

thread_local! {
    static STATE: RefCell<ThreadState> = const {
        RefCell::new(ThreadState {
            context: None,
            buffer: Buffer { events: Vec::new(), id: 0, next_capacity: LOCAL_BATCH },
            rng: Rng::unseeded(),
        })
    };
    /// Whether `STATE` holds a context. A copy kept apart because a plain
    /// `Cell` without a destructor is one load away, while `STATE` needs a
    /// liveness check and a borrow: with no trace active, `start`/`stop`
    /// cost this load and nothing else.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

#[inline(always)]
fn active() -> bool {
    ACTIVE.with(Cell::get)
}

fn set_active(active: bool) {
    ACTIVE.with(|a| a.set(active));
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
    active()
}

pub(crate) fn with_context<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    with_state(|s| s.context.as_ref().map(f)).flatten()
}

pub(crate) fn with_context_mut<R>(f: impl FnOnce(&mut Context) -> R) -> Option<R> {
    with_state(|s| s.context.as_mut().map(f)).flatten()
}

/// Installs `context` when none is active; returns what is active afterwards.
pub(crate) fn init(context: impl FnOnce() -> Context) -> Option<Context> {
    let current = with_state(|s| s.context.get_or_insert_with(context).clone());
    set_active(current.is_some());
    current
}

/// Replaces the current context, returning the previous one. Used by the
/// future wrapper to give each task its own context while it is polled.
#[inline]
pub(crate) fn swap_context(context: Option<Context>) -> Option<Context> {
    let active = context.is_some();
    // While the state is unreachable (thread teardown) nothing was swapped
    // and the flag stays as it was.
    let previous = with_state(|s| {
        set_active(active);
        std::mem::replace(&mut s.context, context)
    });
    previous.flatten()
}

pub(crate) fn clean() {
    with_state(|s| {
        s.context = None;
        set_active(false);
        s.buffer.hand_over();
    });
}

/// Hands this thread's buffered events to the collector now.
pub(crate) fn hand_over() {
    with_state(|s| s.buffer.hand_over());
}

/// Hands buffered events over if there are any (cheap when there are none).
#[inline]
pub(crate) fn hand_over_pending() {
    with_state(|s| {
        if !s.buffer.events.is_empty() {
            s.buffer.hand_over();
        }
    });
}

/// Start infos of call sites that never change them, by index - 1.
static SITE_INFOS: RwLock<Vec<&'static Info>> = RwLock::new(Vec::new());

/// Keeps `info` for the life of the process and returns the index that
/// [`start_with_site_info`] records; 0 when the registry is unusable.
/// Called once per call site, so what is kept is bounded by the code.
pub(crate) fn register_site_info(mut info: Value) -> u32 {
    limits::truncate_info(&mut info);
    let Ok(mut infos) = SITE_INFOS.write() else {
        return 0;
    };
    let Ok(index) = u32::try_from(infos.len() + 1) else {
        return 0;
    };
    infos.push(Box::leak(Box::new(Info::Value(info))));
    index
}

fn site_info(index: u32) -> Option<&'static Info> {
    let slot = usize::try_from(index).ok()?.checked_sub(1)?;
    SITE_INFOS.read().ok()?.get(slot).copied()
}

/// [`start`] with the info registered as `site_info` (see
/// [`register_site_info`]), for a caller that has just checked [`active`]
/// (without a context it opens nothing all the same).
#[inline(always)]
pub(crate) fn start_with_site_info(name: Name, site_info: u32) -> bool {
    start_active(name, None, site_info)
}

/// Python's `_Profiler.start`. Returns whether an element was opened.
///
/// Only the check for an active profiler is inlined into callers: with no
/// trace active, a start costs one thread-local load.
#[inline(always)]
pub(crate) fn start(name: Name, info: Option<Arc<Info>>) -> bool {
    active() && start_active(name, info, 0)
}

#[inline(never)]
fn start_active(name: Name, mut info: Option<Arc<Info>>, site_info: u32) -> bool {
    with_state(|s| {
        let Some(ctx) = s.context.as_mut() else {
            return false;
        };
        let trace_id = s.rng.local_id();
        let mut start = Slot::NONE;
        if collector::is_recording() {
            if ctx.budget < 2 {
                record_truncation(s);
                return start_unrecorded(s, name, trace_id);
            }
            ctx.budget -= 2;
            if let Some(Info::Value(info)) = info.as_mut().and_then(Arc::get_mut) {
                limits::truncate_info(info);
            }
            start = s.buffer.push_with(|| {
                let ids = (ctx.base_id.clone(), ctx.current_id(), trace_id);
                let mut event = RawEvent::now(Phase::Start, name.clone(), ids, info, ctx.service);
                event.site_info = site_info;
                event
            });
        }
        ctx.frames.push(Frame {
            id: trace_id,
            name,
            start,
        });
        true
    })
    .unwrap_or(false)
}

/// Python's `_Profiler.stop`: closes the innermost open element; does
/// nothing when none is open.
#[inline(always)]
pub(crate) fn stop(info: Option<Value>) {
    if active() {
        match info {
            None => stop_active(),
            Some(info) => stop_active_with_info(info),
        }
    }
}

/// A stop without info: the common one, kept apart so that it moves no
/// `Value` around.
#[inline(never)]
fn stop_active() {
    with_state(|s| stop_in(s, None));
}

#[inline(never)]
fn stop_active_with_info(info: Value) {
    with_state(|s| stop_in(s, Some(info)));
}

#[inline(always)]
fn stop_in(s: &mut ThreadState, info: Option<Value>) {
    let Some(ctx) = s.context.as_mut() else {
        return;
    };
    if !ctx.foreign.is_empty() {
        stop_among_foreign(s, info);
        return;
    }
    let Some(frame) = ctx.frames.pop() else {
        return;
    };
    if collector::is_recording() && frame.start != Slot::UNRECORDED {
        let mut info = info;
        if let Some(info) = info.as_mut() {
            limits::truncate_info(info);
        }
        s.buffer.stop(frame.start, info, || {
            let ids = (ctx.base_id.clone(), ctx.current_id(), frame.id);
            RawEvent::now(Phase::Stop, frame.name, ids, None, ctx.service)
        });
    }
    if ctx.frames.is_empty() {
        // A finished request hands its events over at once, so nothing
        // waits in the buffer of a thread that then goes idle.
        s.buffer.hand_over();
    }
}

/// Opens an element without recording it (the context is over its
/// budget).
#[cold]
fn start_unrecorded(s: &mut ThreadState, name: Name, trace_id: LocalId) -> bool {
    let Some(ctx) = s.context.as_mut() else {
        return false;
    };
    ctx.frames.push(Frame {
        id: trace_id,
        name,
        start: Slot::UNRECORDED,
    });
    true
}

/// Records, once per context, a `truncated` element where the context ran
/// out of its event budget.
#[cold]
fn record_truncation(s: &mut ThreadState) {
    let Some(ctx) = s.context.as_mut() else {
        return;
    };
    if std::mem::replace(&mut ctx.truncated, true) {
        return;
    }
    let limit = limits::max_trace_events();
    let info = serde_json::json!({
        "message": format!(
            "osprofiler: this request recorded max_trace_events ({limit}) events; \
             later elements were not recorded"
        ),
        "max_trace_events": limit,
    });
    let ids = (ctx.base_id.clone(), ctx.current_id(), s.rng.local_id());
    let name = Name::from("truncated");
    let mut event = RawEvent::now(
        Phase::Start,
        name,
        ids,
        Some(Info::shared(info)),
        ctx.service,
    );
    event.stopped = true;
    event.stop_at = event.at;
    s.buffer.push(event);
}

// --- Elements owned by other span APIs (the `tracing` layer) ---
//
// A `tracing` span is opened when first entered and closed when dropped,
// possibly on another thread; in between it is entered and exited, once
// per poll for an async span. Its element sits on the stack only while it
// is entered, so elements started inside it become its children, and it is
// marked foreign: `stop()` never closes it (that would steal the stop of
// whoever started the innermost own element), it closes the innermost own
// element instead. A foreign element exited while own elements opened
// inside it are still open stays below them, keeping their parent right,
// and leaves the stack with the last of them.

impl Context {
    /// The place in `foreign` of the foreign element `trace_id`.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    fn find_foreign(&self, trace_id: LocalId) -> Option<usize> {
        self.foreign
            .iter()
            .rposition(|f| self.frames.get(f.depth).map(|frame| frame.id) == Some(trace_id))
    }

    /// Drops exited foreign elements that nothing above keeps on the stack.
    fn pop_exited_foreign(&mut self) {
        while let Some(f) = self.foreign.last() {
            if f.entries > 0 || f.depth + 1 != self.frames.len() {
                break;
            }
            self.foreign.pop();
            self.frames.pop();
        }
    }

    /// Removes the innermost element that is not foreign; returns its name,
    /// parent id and id.
    fn remove_innermost_own(&mut self) -> Option<(Name, Id, LocalId)> {
        let mut above = self.foreign.len();
        let mut depth = self.frames.len();
        loop {
            depth = depth.checked_sub(1)?;
            match above.checked_sub(1) {
                Some(f) if self.foreign[f].depth == depth => above = f,
                _ => break,
            }
        }
        let frame = self.frames.remove(depth);
        let parent_id = self.parent_of(depth);
        for f in &mut self.foreign[above..] {
            f.depth = f.depth.saturating_sub(1);
        }
        self.pop_exited_foreign();
        Some((frame.name, parent_id, frame.id))
    }
}

/// `stop` while foreign elements are open: closes the innermost own one.
#[cold]
fn stop_among_foreign(s: &mut ThreadState, info: Option<Value>) {
    let Some(ctx) = s.context.as_mut() else {
        return;
    };
    let Some((name, parent_id, trace_id)) = ctx.remove_innermost_own() else {
        return;
    };
    if collector::is_recording() {
        let ids = (ctx.base_id.clone(), parent_id, trace_id);
        let event = RawEvent::now(Phase::Stop, name, ids, info.map(Info::shared), ctx.service);
        s.buffer.push(event);
    }
}

/// The ids of an element opened by [`start_foreign`].
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct ForeignElement {
    pub(crate) name: Name,
    pub(crate) base_id: Id,
    pub(crate) parent_id: Id,
    pub(crate) trace_id: LocalId,
    pub(crate) service: u16,
}

impl ForeignElement {
    /// A record of this element's start or stop, taken now.
    fn event(&self, phase: Phase, info: Option<Value>) -> RawEvent {
        let ids = (self.base_id.clone(), self.parent_id.clone(), self.trace_id);
        RawEvent::now(
            phase,
            self.name.clone(),
            ids,
            info.map(Info::shared),
            self.service,
        )
    }
}

/// Opens a foreign element under the current one, records its start and
/// enters it (see [`enter_foreign`]). `None` when no profiler is active.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn start_foreign(name: Name, info: Option<Value>) -> Option<ForeignElement> {
    with_state(|s| {
        let ctx = s.context.as_mut()?;
        let element = ForeignElement {
            name,
            base_id: ctx.base_id.clone(),
            parent_id: ctx.current_id(),
            trace_id: s.rng.local_id(),
            service: ctx.service,
        };
        ctx.foreign.push(Foreign {
            depth: ctx.frames.len(),
            entries: 1,
        });
        ctx.frames
            .push(Frame::elsewhere(element.trace_id, element.name.clone()));
        if collector::is_recording() {
            let event = element.event(Phase::Start, info);
            s.buffer.push(event);
        }
        Some(element)
    })
    .flatten()
}

/// Makes an open foreign element current again (a span entered anew).
/// Does nothing unless the current profiler belongs to its trace.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn enter_foreign(element: &ForeignElement) {
    with_state(|s| {
        let Some(ctx) = s.context.as_mut() else {
            return;
        };
        if ctx.base_id != element.base_id {
            return;
        }
        match ctx.find_foreign(element.trace_id) {
            Some(f) => ctx.foreign[f].entries = ctx.foreign[f].entries.saturating_add(1),
            None => {
                ctx.foreign.push(Foreign {
                    depth: ctx.frames.len(),
                    entries: 1,
                });
                ctx.frames
                    .push(Frame::elsewhere(element.trace_id, element.name.clone()));
            }
        }
    });
}

/// Undoes one [`enter_foreign`]/[`start_foreign`]. Nothing else is ever
/// popped; an element it cannot find (the profiler was cleaned or
/// swapped meanwhile) is left alone.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn exit_foreign(trace_id: LocalId) {
    with_state(|s| {
        let Some(ctx) = s.context.as_mut() else {
            return;
        };
        if let Some(f) = ctx.find_foreign(trace_id) {
            let entry = &mut ctx.foreign[f];
            entry.entries = entry.entries.saturating_sub(1);
            ctx.pop_exited_foreign();
        }
    });
}

/// Records the stop of a foreign element from its ids, on whatever thread
/// it ends; the current profiler, if any, is not consulted.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn record_stop(element: &ForeignElement, info: Option<Value>) {
    if !collector::is_recording() {
        return;
    }
    with_state(|s| {
        let event = element.event(Phase::Stop, info);
        // Nothing may hand this thread's buffer over soon when it has no
        // open elements of its own (a span dropped on an idle thread).
        let idle = s.context.as_ref().map_or(true, |c| c.frames.is_empty());
        s.buffer.push(event);
        if idle {
            s.buffer.hand_over();
        }
    });
}
