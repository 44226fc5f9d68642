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
use std::mem::ManuallyDrop;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::limits;
use crate::notifier::collector;
use crate::profiler::id::{Id, LocalId, Rng};

/// Events gathered on a thread before they are handed over as one batch.
pub(crate) const LOCAL_BATCH: usize = 256;
// A batch's records index its contexts with a `u16`.
const _: () = assert!(LOCAL_BATCH <= u16::MAX as usize);
/// Smallest buffer taken after a short batch.
pub(crate) const SMALL_BATCH: usize = 8;

/// The `info` of a record.
#[derive(Debug)]
pub(crate) enum Info {
    /// What a caller gave.
    Value(Value),
    /// A JSON object rendered as compact text by the code that recorded it
    /// (the tower layer's request info): one allocation where a `Value`
    /// takes one per map and string, each freed by the collector thread.
    /// A `String`, not a `Box<str>`: shrinking it to fit would reallocate.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Rendered(String),
}

impl Info {
    /// A caller's value, as a record holds it.
    pub(crate) fn shared(value: Value) -> Arc<Info> {
        Arc::new(Info::Value(value))
    }

    /// A rendered info, written by `render` (UTF-8) into the text of an
    /// info the collector gave back when there is one: a traced request
    /// then allocates nothing for its info.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn render(capacity: usize, render: impl FnOnce(&mut Vec<u8>)) -> Arc<Info> {
        let mut info = collector::SPARE_INFOS
            .take()
            .unwrap_or_else(|| Arc::new(Info::Rendered(String::new())));
        let text = match Arc::get_mut(&mut info) {
            Some(Info::Rendered(text)) => std::mem::take(text),
            // Not reached: spares are rendered and held by nothing else.
            _ => return Arc::new(Info::Rendered(render_text(String::new(), capacity, render))),
        };
        let rendered = render_text(text, capacity, render);
        if let Some(Info::Rendered(text)) = Arc::get_mut(&mut info) {
            *text = rendered;
        }
        info
    }

    /// The info as a JSON value (parsed when rendered).
    pub(crate) fn to_value(&self) -> Cow<'_, Value> {
        match self {
            Info::Value(value) => Cow::Borrowed(value),
            Info::Rendered(text) => Cow::Owned(serde_json::from_str(text).unwrap_or(Value::Null)),
        }
    }
}

/// `render`'s output in `text`'s allocation.
fn render_text(text: String, capacity: usize, render: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = text.into_bytes();
    bytes.clear();
    bytes.reserve(capacity);
    render(&mut bytes);
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
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

/// What every element of one context shares: the trace's id, the parent of
/// the context's outermost element, and the service whose driver receives
/// them. Records refer to it by an index into their batch's [`Contexts`],
/// so a record holds none of these ids.
#[derive(Debug)]
pub(crate) struct ContextIds {
    pub(crate) base_id: Id,
    pub(crate) parent_id: Id,
    /// See `notifier::add_service`; 0 for the default driver.
    pub(crate) service: u16,
}

/// One notification as recorded on the hot path, or two: a start whose
/// element was stopped while the start still sat in the same buffer
/// carries its stop too (`stopped`), so the common short element costs one
/// record instead of two.
#[derive(Debug)]
// One record, one cache line: the collector thread reads and frees what
// the traced thread wrote, and a record across two lines moves both.
#[repr(align(64))]
pub(crate) struct RawEvent {
    pub(crate) name: Name,
    pub(crate) trace_id: LocalId,
    /// The enclosing element; `trace_id` itself when that is the context's
    /// parent (its `ContextIds::parent_id`, which may not be a local id).
    /// No element is its own parent, so the value is free for that.
    pub(crate) parent_id: LocalId,
    pub(crate) at: crate::clock::Instant,
    /// Meaningful when `stopped`.
    pub(crate) stop_at: crate::clock::Instant,
    /// Behind a pointer: most events carry none, and a smaller event is
    /// cheaper to move on the hot path.
    pub(crate) info: Option<Arc<Info>>,
    /// The start info of a call site that never changes it (see
    /// [`register_site_info`]), when `info` is `None`; 0 for none. An
    /// index rather than a shared pointer: counting references to one info
    /// from the traced thread and the collector would bounce its cache
    /// line between them on every call.
    pub(crate) site_info: u32,
    /// Where its context's ids are in the batch's [`Contexts`].
    pub(crate) context: u16,
    pub(crate) phase: Phase,
    /// Whether this start carries the stop of its element (recorded
    /// without info, at `stop_at`).
    pub(crate) stopped: bool,
}

// Every byte of a record is written by the traced thread and read by the
// collector on another core: one cache line.
const _: () = assert!(std::mem::size_of::<RawEvent>() == 64);

impl RawEvent {
    /// A record of one notification taken `at`. `parent` is `None` for
    /// the outermost element of the context.
    #[inline(always)]
    fn new(
        phase: Phase,
        name: Name,
        (trace_id, parent): (LocalId, Option<LocalId>),
        (context, at): (u16, crate::clock::Instant),
        info: Option<Arc<Info>>,
    ) -> RawEvent {
        RawEvent {
            name,
            trace_id,
            parent_id: parent.unwrap_or(trace_id),
            at,
            stop_at: crate::clock::Instant::ZERO,
            info,
            site_info: 0,
            context,
            phase,
            stopped: false,
        }
    }

    /// The enclosing element when it is not the context's parent.
    pub(crate) fn parent(&self) -> Option<LocalId> {
        (self.parent_id != self.trace_id).then_some(self.parent_id)
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

/// The [`ContextIds`] that one batch's records refer to, by index. The
/// first is kept inline: a batch of one request's events needs no
/// allocation for it.
#[derive(Debug, Default)]
pub(crate) struct Contexts {
    first: Option<Arc<ContextIds>>,
    more: Vec<Arc<ContextIds>>,
}

impl Contexts {
    /// The ids at `index`.
    #[inline]
    pub(crate) fn get(&self, index: u16) -> Option<&ContextIds> {
        match index.checked_sub(1) {
            None => self.first.as_deref(),
            Some(i) => self.more.get(usize::from(i)).map(|ids| &**ids),
        }
    }

    /// The index of `ids`, added unless it is the last one added (a
    /// thread records for one context at a time, so that check is the
    /// only one on the hot path).
    #[inline(always)]
    fn index_of(&mut self, ids: &Arc<ContextIds>) -> u16 {
        let last = match self.more.last() {
            Some(last) => Some(last),
            None => self.first.as_ref(),
        };
        match last {
            // The table holds `last`, so its address cannot be reused
            // by other ids meanwhile.
            Some(last) if Arc::ptr_eq(last, ids) => self.more.len() as u16,
            _ => self.add(ids),
        }
    }

    /// Lets each of the ids go through `release` (the collector keeps
    /// those nothing else holds for reuse).
    pub(crate) fn release(self, mut release: impl FnMut(Arc<ContextIds>)) {
        self.first
            .into_iter()
            .chain(self.more)
            .for_each(&mut release);
    }

    /// A table of `ids`, in order (for tests of what reads batches).
    #[cfg(test)]
    pub(crate) fn of(ids: impl IntoIterator<Item = ContextIds>) -> Contexts {
        let mut contexts = Contexts::default();
        for ids in ids {
            contexts.add(&Arc::new(ids));
        }
        contexts
    }

    /// Adds `ids` (for tests of what reads batches).
    #[cfg(test)]
    pub(crate) fn add_shared(&mut self, ids: &Arc<ContextIds>) -> u16 {
        self.add(ids)
    }

    /// Adds `ids`; returns its index. A batch has at most one entry per
    /// record, so the index fits.
    #[inline(never)]
    fn add(&mut self, ids: &Arc<ContextIds>) -> u16 {
        if self.first.is_none() {
            self.first = Some(ids.clone());
            return 0;
        }
        self.more.push(ids.clone());
        self.more.len() as u16
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
    /// The trace's id, the parent of the outermost element opened in this
    /// context (Python's trace stack starts with these two) and the
    /// service: shared with the batches that hold this context's records.
    ids: Arc<ContextIds>,
    /// The open elements, innermost last (the rest of Python's trace
    /// stack). One vector, so opening an element is one push.
    frames: Vec<Frame>,
    /// Open elements owned by something other than `start`/`stop` (a
    /// `tracing` span), by position; empty unless such an integration is
    /// in use. See [`start_foreign`].
    foreign: Vec<Foreign>,
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
        Context::with_ids(
            hmac_key,
            ContextIds {
                base_id,
                parent_id,
                service: 0,
            },
        )
    }

    fn with_ids(hmac_key: Arc<str>, ids: ContextIds) -> Context {
        Context {
            hmac_key,
            ids: collector::SPARE_IDS.share(ids),
            frames: Vec::new(),
            foreign: Vec::new(),
            budget: limits::max_trace_events(),
            truncated: false,
        }
    }

    /// A context for work that continues this one elsewhere (a spawned task,
    /// another thread): new elements become children of the current one, and
    /// it cannot close elements it did not open.
    pub(crate) fn fork(&self) -> Context {
        Context::with_ids(
            self.hmac_key.clone(),
            ContextIds {
                base_id: self.ids.base_id.clone(),
                parent_id: self.current_id(),
                service: self.ids.service,
            },
        )
    }

    /// The id shared by every element of the trace.
    pub(crate) fn base_id(&self) -> &Id {
        &self.ids.base_id
    }

    /// Sends this context's later notifications to `service`'s driver.
    pub(crate) fn set_service(&mut self, service: u16) {
        if self.ids.service == service {
            return;
        }
        match Arc::get_mut(&mut self.ids) {
            // No record refers to these ids yet (a new context).
            Some(ids) => ids.service = service,
            // New ids, not changed ones: records already made keep theirs.
            None => {
                self.ids = collector::SPARE_IDS.share(ContextIds {
                    base_id: self.ids.base_id.clone(),
                    parent_id: self.ids.parent_id.clone(),
                    service,
                })
            }
        }
    }

    /// The id of the innermost open element, or the context's parent id
    /// when none is open (Python's `get_id`).
    pub(crate) fn current_id(&self) -> Id {
        match self.frames.last() {
            Some(frame) => frame.id.id(),
            None => self.ids.parent_id.clone(),
        }
    }

    /// The innermost open element, the parent of a new one (`None`: the
    /// context's parent).
    #[inline(always)]
    fn innermost(&self) -> Option<LocalId> {
        self.frames.last().map(|frame| frame.id)
    }

    /// The id below the current one on Python's trace stack
    /// (`get_parent_id`).
    pub(crate) fn current_parent_id(&self) -> Id {
        match self.frames.len() {
            0 => self.ids.base_id.clone(),
            1 => self.ids.parent_id.clone(),
            n => self.frames[n - 2].id.id(),
        }
    }

    /// The element that encloses the frame at `depth` (`None`: the
    /// context's parent).
    fn parent_of(&self, depth: usize) -> Option<LocalId> {
        depth.checked_sub(1).map(|below| self.frames[below].id)
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
    /// The ids of the contexts that `events` refer to.
    contexts: Contexts,
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
            let dropped = collector::submit(
                std::mem::take(&mut self.events),
                std::mem::take(&mut self.contexts),
            );
            if let Some(emptied) = dropped {
                // A new id: slots taken in the dropped batch must not
                // match the records that take their places.
                self.events = emptied;
                self.id = collector::next_buffer_id();
            }
        }
    }

    /// Takes a buffer, unless the thread is ending (see [`ThreadExit`]).
    fn take_empty(&mut self) {
        if !thread_exit_registered() {
            return;
        }
        self.events = collector::empty_buffer(self.next_capacity);
        self.id = collector::next_buffer_id();
    }

    /// Room for one more event: a buffer when there is none, more room in
    /// a short one that filled up.
    #[inline(never)]
    fn make_room(&mut self) {
        if self.events.capacity() == 0 {
            self.take_empty();
        } else {
            self.events.reserve(self.events.len());
        }
    }

    /// Buffers one event of the context `ids`, taken at `at` (`None`:
    /// now), and returns where it went; hands the buffer over when it is
    /// full. `event` makes the record from the place of `ids` in the
    /// buffer's table and the time.
    ///
    /// The clock is read after the buffer is fetched: a start's time then
    /// leaves out the fetch (a pool lock, or an allocation), which is not
    /// the traced work.
    #[inline(always)]
    fn push(
        &mut self,
        ids: &Arc<ContextIds>,
        at: Option<crate::clock::Instant>,
        event: impl FnOnce((u16, crate::clock::Instant)) -> RawEvent,
    ) -> Slot {
        if self.events.len() == self.events.capacity() {
            self.make_room();
        }
        let context = self.contexts.index_of(ids);
        let at = at.unwrap_or_else(crate::clock::Instant::now);
        let len = self.events.len();
        // True unless the thread is ending (see `take_empty`). Checked
        // after everything that might call out, right before the `push`,
        // so that the `push` is known not to reallocate: the record is then
        // written straight into the buffer rather than made on the stack
        // and copied, a copy whose narrow stores and wide loads stall.
        // (`push_in_place` does the same for frames; routed through it,
        // the record's captures went through memory again.)
        if len < self.events.capacity() {
            self.events.push(event((context, at)));
        }
        if len + 1 >= LOCAL_BATCH {
            self.hand_over();
        }
        Slot {
            buffer: self.id,
            index: len as u32,
        }
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
    fn stop(
        &mut self,
        ids: &Arc<ContextIds>,
        start: Slot,
        info: Option<Arc<Info>>,
        event: impl FnOnce((u16, crate::clock::Instant)) -> RawEvent,
    ) {
        let at = crate::clock::Instant::now();
        match self.unstopped_start(start).filter(|_| info.is_none()) {
            Some(record) => {
                record.stopped = true;
                record.stop_at = at;
            }
            None => {
                self.push(ids, Some(at), |place| {
                    let mut event = event(place);
                    event.info = info;
                    event
                });
            }
        }
    }
}

/// Runs when the thread ends (once registered, see [`Buffer::take_empty`]
/// and [`init`]): whatever the thread recorded still goes out, and what its
/// state holds is freed. Kept apart from `STATE`, which has no destructor
/// of its own: a thread-local without one is reached with a plain load, and
/// its accessor is small enough to inline.
struct ThreadExit;

impl Drop for ThreadExit {
    fn drop(&mut self) {
        set_active(false);
        with_state(|s| {
            s.buffer.hand_over();
            s.context = None;
            s.buffer.events = Vec::new();
            s.buffer.contexts = Contexts::default();
        });
    }
}

/// Makes sure [`ThreadExit`] runs when this thread ends; false when it
/// already has (the thread is ending, and what is recorded now would stay
/// behind).
fn thread_exit_registered() -> bool {
    THREAD_EXIT.try_with(|_| ()).is_ok()
}

thread_local! {
    static STATE: ManuallyDrop<RefCell<ThreadState>> = const {
        ManuallyDrop::new(RefCell::new(ThreadState {
            context: None,
            buffer: Buffer {
                events: Vec::new(),
                contexts: Contexts { first: None, more: Vec::new() },
                id: 0,
                next_capacity: LOCAL_BATCH,
            },
            rng: Rng::unseeded(),
        }))
    };
    static THREAD_EXIT: ThreadExit = const { ThreadExit };
    /// Whether `STATE` holds a context. A copy kept apart because a plain
    /// `Cell` is one load away, while `STATE` needs a borrow: with no trace
    /// active, `start`/`stop` cost this load and nothing else.
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
/// state is already borrowed, so the hot path can never panic.
#[inline(always)]
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
    if !thread_exit_registered() {
        return None;
    }
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
    start_named(name, None, site_info)
}

/// Python's `_Profiler.start`. Returns whether an element was opened.
///
/// Only the check for an active profiler is inlined into callers: with no
/// trace active, a start costs one thread-local load.
#[inline(always)]
pub(crate) fn start(name: Name, info: Option<Arc<Info>>) -> bool {
    active() && start_named(name, info, 0)
}

/// [`start_in`] by the kind of name, which is known where this is
/// inlined: a static name goes by value, as two words in registers. A
/// `Name` goes through memory, and reading it back there as one wide
/// value, right after the caller wrote it word by word, stalls.
#[inline(always)]
fn start_named(name: Name, info: Option<Arc<Info>>, site_info: u32) -> bool {
    match name.0 {
        NameRepr::Static(text) => start_static(text, info, site_info),
        NameRepr::Shared(_) => start_shared(name, info, site_info),
    }
}

#[inline(never)]
fn start_static(name: &'static str, info: Option<Arc<Info>>, site_info: u32) -> bool {
    let static_name = || Name(NameRepr::Static(name));
    with_state(|s| start_in(s, static_name, static_name, info, site_info)).unwrap_or(false)
}

#[inline(never)]
fn start_shared(name: Name, info: Option<Arc<Info>>, site_info: u32) -> bool {
    // Cloned before `push`: a shared name's reference count is an atomic,
    // after which `push` could not tell it has room.
    let record_name = name.clone();
    with_state(|s| start_in(s, || record_name, || name, info, site_info)).unwrap_or(false)
}

/// Opens an element. Its name comes from `record_name` for its record and
/// `frame_name` for its frame, each called where the name is stored: a
/// static name is then written there straight from the two registers
/// that hold its text. (A `Name` moved through memory is written in halves
/// and read back whole, which stalls.)
#[inline(always)]
fn start_in(
    s: &mut ThreadState,
    record_name: impl FnOnce() -> Name,
    frame_name: impl FnOnce() -> Name,
    mut info: Option<Arc<Info>>,
    site_info: u32,
) -> bool {
    let Some(ctx) = s.context.as_mut() else {
        return false;
    };
    let trace_id = s.rng.local_id();
    let mut start = Slot::NONE;
    if collector::is_recording() {
        if ctx.budget < 2 {
            record_truncation(s);
            return start_unrecorded(s, frame_name(), trace_id);
        }
        ctx.budget -= 2;
        if let Some(Info::Value(info)) = info.as_mut().and_then(Arc::get_mut) {
            limits::truncate_info(info);
        }
        let parent = ctx.innermost();
        start = s.buffer.push(&ctx.ids, None, |place| {
            let ids = (trace_id, parent);
            let mut event = RawEvent::new(Phase::Start, record_name(), ids, place, info);
            event.site_info = site_info;
            event
        });
    }
    push_in_place(&mut ctx.frames, || Frame {
        id: trace_id,
        name: frame_name(),
        start,
    });
    true
}

/// `vec.push(make())`, with the value written straight into the vector:
/// where `push` might reallocate, the value is made on the stack and
/// copied, and that copy (narrow stores read back by wide loads) stalls.
#[inline(always)]
fn push_in_place<T>(vec: &mut Vec<T>, make: impl FnOnce() -> T) {
    if vec.len() == vec.capacity() {
        vec.reserve(1);
    }
    if vec.len() < vec.capacity() {
        vec.push(make());
    }
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
fn stop_active_with_info(mut info: Value) {
    limits::truncate_info(&mut info);
    let info = Info::shared(info);
    with_state(|s| stop_in(s, Some(info)));
}

/// Closes the innermost element. `info` is behind a pointer: a `Value`
/// moved through here would be copied in pieces on every stop.
#[inline(always)]
fn stop_in(s: &mut ThreadState, info: Option<Arc<Info>>) {
    let Some(ctx) = s.context.as_mut() else {
        return;
    };
    if !ctx.foreign.is_empty() {
        stop_among_foreign(s, info);
        return;
    }
    // Read in place, field by field, and popped after: moved out whole,
    // the frame just written by `start` would be read back in wider
    // pieces than it was written in, which stalls.
    let depth = ctx.frames.len();
    let Some(frame) = ctx.frames.last() else {
        return;
    };
    if collector::is_recording() && frame.start != Slot::UNRECORDED {
        let parent = ctx.parent_of(depth - 1);
        s.buffer.stop(&ctx.ids, frame.start, info, |place| {
            // Only when the start went out in an earlier batch.
            let name = frame.name.clone();
            RawEvent::new(Phase::Stop, name, (frame.id, parent), place, None)
        });
    }
    // Dropped in place: `pop` would move the frame out whole, with the
    // same stall.
    ctx.frames.truncate(depth - 1);
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
    let trace_id = s.rng.local_id();
    let parent = ctx.innermost();
    s.buffer.push(&ctx.ids, None, |place| {
        let name = Name::from("truncated");
        let info = Some(Info::shared(info));
        let mut event = RawEvent::new(Phase::Start, name, (trace_id, parent), place, info);
        event.stopped = true;
        event.stop_at = event.at;
        event
    });
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
    /// parent (`None`: the context's) and id.
    fn remove_innermost_own(&mut self) -> Option<(Name, Option<LocalId>, LocalId)> {
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
        let parent = self.parent_of(depth);
        for f in &mut self.foreign[above..] {
            f.depth = f.depth.saturating_sub(1);
        }
        self.pop_exited_foreign();
        Some((frame.name, parent, frame.id))
    }
}

/// `stop` while foreign elements are open: closes the innermost own one.
#[cold]
fn stop_among_foreign(s: &mut ThreadState, info: Option<Arc<Info>>) {
    let Some(ctx) = s.context.as_mut() else {
        return;
    };
    let Some((name, parent, trace_id)) = ctx.remove_innermost_own() else {
        return;
    };
    if collector::is_recording() {
        s.buffer.push(&ctx.ids, None, |place| {
            RawEvent::new(Phase::Stop, name, (trace_id, parent), place, info)
        });
    }
}

/// The ids of an element opened by [`start_foreign`].
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct ForeignElement {
    pub(crate) name: Name,
    ids: Arc<ContextIds>,
    parent: Option<LocalId>,
    pub(crate) trace_id: LocalId,
}

impl ForeignElement {
    /// Buffers a record of this element's start or stop, taken now.
    fn record(&self, buffer: &mut Buffer, phase: Phase, info: Option<Value>) {
        let info = info.map(Info::shared);
        buffer.push(&self.ids, None, |place| {
            let name = self.name.clone();
            RawEvent::new(phase, name, (self.trace_id, self.parent), place, info)
        });
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
            ids: ctx.ids.clone(),
            parent: ctx.innermost(),
            trace_id: s.rng.local_id(),
        };
        ctx.foreign.push(Foreign {
            depth: ctx.frames.len(),
            entries: 1,
        });
        ctx.frames
            .push(Frame::elsewhere(element.trace_id, element.name.clone()));
        if collector::is_recording() {
            element.record(&mut s.buffer, Phase::Start, info);
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
        if ctx.ids.base_id != element.ids.base_id {
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
        // Nothing may hand this thread's buffer over soon when it has no
        // open elements of its own (a span dropped on an idle thread).
        let idle = s.context.as_ref().map_or(true, |c| c.frames.is_empty());
        element.record(&mut s.buffer, Phase::Stop, info);
        if idle {
            s.buffer.hand_over();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(base: u128) -> Arc<ContextIds> {
        Arc::new(ContextIds {
            base_id: Id::from_u128(base),
            parent_id: Id::from_text("p"),
            service: 0,
        })
    }

    #[test]
    fn rendering_reuses_the_text_it_is_given() {
        let mut text = String::with_capacity(64);
        text.push_str("{\"old\":\"text that is longer\"}");
        let allocation = text.as_ptr();
        let rendered = render_text(text, 16, |out| out.extend_from_slice(b"{\"new\":1}"));
        assert_eq!(rendered, "{\"new\":1}");
        assert_eq!(rendered.as_ptr(), allocation);
        // Not UTF-8 (not written by the layer): replaced, not refused.
        let rendered = render_text(String::new(), 4, |out| out.extend_from_slice(b"\"\xff\""));
        assert_eq!(rendered, "\"\u{fffd}\"");
        // Whatever the spares hold, a rendered info holds what was written.
        let info = Info::render(8, |out| out.extend_from_slice(b"{}"));
        assert!(matches!(&*info, Info::Rendered(text) if text == "{}"));
    }

    #[test]
    fn a_context_is_added_again_only_after_another() {
        let (a, b) = (ids(1), ids(2));
        let mut contexts = Contexts::default();
        let indices: Vec<u16> = [&a, &a, &b, &b, &a]
            .into_iter()
            .map(|ids| contexts.index_of(ids))
            .collect();
        assert_eq!(indices, [0, 0, 1, 1, 2]);
        let base = |i| contexts.get(i).map(|c| c.base_id.clone());
        assert_eq!(base(0), Some(a.base_id.clone()));
        assert_eq!(base(1), Some(b.base_id.clone()));
        assert_eq!(base(2), Some(a.base_id.clone()));
        assert!(contexts.get(3).is_none());
    }

    #[test]
    fn records_fit_a_cache_line_and_the_parent_marks_the_outermost() {
        assert!(std::mem::size_of::<RawEvent>() <= 64);
        let id = LocalId(7);
        let at = crate::clock::Instant::ZERO;
        let outermost = RawEvent::new(Phase::Start, "n".into(), (id, None), (0, at), None);
        assert_eq!(outermost.parent(), None);
        let child = RawEvent::new(
            Phase::Start,
            "n".into(),
            (id, Some(LocalId(3))),
            (0, at),
            None,
        );
        assert_eq!(child.parent(), Some(LocalId(3)));
    }
}
