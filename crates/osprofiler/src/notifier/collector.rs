//! Background collector thread.
//!
//! Receives batches of raw events from the caller threads, converts their
//! clock readings to UTC and hands them to the driver as [`Event`]s, which
//! the driver formats as it stores them. Everything slow happens here; the
//! caller threads only pay for a channel send per batch.
//!
//! Overflow policy: at most `capacity` events wait between the callers and
//! the driver (including events kept for retry while the driver fails). A
//! batch that would go over is dropped whole on the caller thread and
//! counted in [`Stats::dropped`]; the first drop is logged. Failed driver
//! calls are counted in [`Stats::failed`] and retried with backoff, so
//! nothing within the capacity is lost to a collector outage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::drivers::Driver;
use crate::local::{ContextIds, Contexts, Info, Phase, RawEvent, LOCAL_BATCH, SMALL_BATCH};
use crate::notification::{Event, Notification};

/// Default for [`crate::notifier::Options::capacity`].
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;
/// Default for [`crate::notifier::Options::export_batch`].
pub(crate) const DEFAULT_EXPORT_BATCH: usize = 1_000;
/// How often a busy collector looks for new batches.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Empty polls (about 100 ms) before the collector blocks instead.
const IDLE_POLLS: u32 = 100;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Counters of the notification pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events waiting for the driver right now (handed over, not yet sent).
    pub queued: u64,
    /// Events the driver accepted, in all.
    pub sent: u64,
    /// Events discarded because the buffer was full, in all.
    pub dropped: u64,
    /// Driver calls that failed (their events are kept and retried).
    pub failed: u64,
}

enum Message {
    Events(Vec<RawEvent>, Contexts),
    Payloads(Vec<Notification>),
    SetDriver(Option<Arc<dyn Driver>>),
    AddService(u16, Arc<dyn Driver>),
    /// Answer when nothing is pending any more, or at the deadline.
    Flush(mpsc::SyncSender<usize>, Instant),
}

struct Shared {
    sender: Sender<Message>,
}

/// Read by every start and stop, so kept apart from the counters below,
/// which the collector thread writes all the time: sharing a cache line
/// with them, each read would wait for the line to come back from the
/// collector's core.
static RECORDING: CacheLines<AtomicBool> = CacheLines(AtomicBool::new(false));
static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_CAPACITY);
static EXPORT_BATCH: AtomicUsize = AtomicUsize::new(DEFAULT_EXPORT_BATCH);
static QUEUED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static DROP_LOGGED: AtomicBool = AtomicBool::new(false);
static SHARED: OnceLock<Shared> = OnceLock::new();
static HOST: OnceLock<String> = OnceLock::new();
/// A value alone on its cache lines (two: some CPUs fetch lines in pairs).
#[repr(align(128))]
struct CacheLines<T>(T);

/// Emptied event buffers on their way back to the caller threads, one
/// pool per size: pool `i` holds buffers of `SMALL_BATCH << i` events.
/// Small ones too: a thread that hands over each request's few events
/// takes one per request, and with no pool it would allocate it there and
/// the collector free it here, each time (malloc's per-thread caches do
/// not help an allocation freed by another thread).
static POOLS: [Mutex<Vec<Vec<RawEvent>>>; BUFFER_SIZES] =
    [const { Mutex::new(Vec::new()) }; BUFFER_SIZES];
const BUFFER_SIZES: usize = (LOCAL_BATCH / SMALL_BATCH).trailing_zeros() as usize + 1;
const _: () = assert!(LOCAL_BATCH.is_power_of_two() && SMALL_BATCH.is_power_of_two());
/// Most bytes of buffers kept in each of [`POOLS`]: 64 full-size buffers,
/// or 2,048 of the smallest. A thread handing over each request's events
/// goes through a buffer per request, and the collector recycles them only
/// when it wakes (every [`POLL_INTERVAL`] when busy), so the pool must hold
/// as many as requests come in between.
const POOL_BYTES: usize = 1 << 20;
/// Most emptied `order` vectors kept.
const ORDERS_KEPT: usize = 64;

/// The pool of buffers of `capacity` events, if there is one.
fn pool_of(capacity: usize) -> Option<&'static Mutex<Vec<Vec<RawEvent>>>> {
    if !capacity.is_power_of_two() || capacity < SMALL_BATCH {
        return None;
    }
    POOLS.get((capacity / SMALL_BATCH).trailing_zeros() as usize)
}

/// An empty buffer of `capacity` events for a caller thread: one the
/// collector has emptied when there is one, so recording neither
/// reallocates nor, in a steady state, allocates.
pub(crate) fn empty_buffer(capacity: usize) -> Vec<RawEvent> {
    pool_of(capacity)
        .and_then(|pool| pool.lock().ok()?.pop())
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Gives an emptied buffer back for [`empty_buffer`].
fn recycle(mut buffer: Vec<RawEvent>) {
    buffer.clear();
    let Some(pool) = pool_of(buffer.capacity()) else {
        return;
    };
    let most = POOL_BYTES / (buffer.capacity() * std::mem::size_of::<RawEvent>());
    if let Ok(mut pool) = pool.lock() {
        if pool.len() < most {
            pool.push(buffer);
        }
    }
}

/// Contexts' ids that the collector held last, on their way back to the
/// caller threads: freed here, each would cost the thread that allocated
/// it a trip through malloc's locked arena, as buffers did (see [`POOLS`]).
pub(crate) static SPARE_IDS: Spares<ContextIds> = Spares::new();
/// Request infos rendered by the tower layer, back for their allocation
/// and their text's (see [`Info::render`]).
pub(crate) static SPARE_INFOS: Spares<Info> = Spares::new();
/// Longest rendered info text kept in [`SPARE_INFOS`], so the spares stay
/// within 1 MiB.
const SPARE_TEXT_BYTES: usize = 1024;

/// Shared allocations that nothing else holds any more, to overwrite:
/// `Arc::get_mut` succeeds on each. At most [`Spares::KEPT`].
pub(crate) struct Spares<T>(Mutex<Vec<Arc<T>>>);

impl<T> Spares<T> {
    const KEPT: usize = 1024;

    const fn new() -> Self {
        Spares(Mutex::new(Vec::new()))
    }

    /// A spare, if there is one.
    pub(crate) fn take(&self) -> Option<Arc<T>> {
        self.0.lock().ok()?.pop()
    }

    /// `value`, shared: in a spare allocation when there is one.
    pub(crate) fn share(&self, value: T) -> Arc<T> {
        if let Some(mut spare) = self.take() {
            if let Some(slot) = Arc::get_mut(&mut spare) {
                *slot = value;
                return spare;
            }
        }
        Arc::new(value)
    }

    /// Keeps `released` (see [`unshared`]) up to the bound, and drops the
    /// rest.
    fn give(&self, released: &mut Vec<Arc<T>>) {
        if released.is_empty() {
            return;
        }
        if let Ok(mut spares) = self.0.lock() {
            let room = Self::KEPT.saturating_sub(spares.len());
            spares.extend(released.drain(..).take(room));
        }
        released.clear();
    }
}

/// Adds `spare` to what goes to [`Spares::give`] next, within its bound.
fn keep_released<T>(released: &mut Vec<Arc<T>>, spare: Option<Arc<T>>) {
    if released.len() < Spares::<T>::KEPT {
        released.extend(spare);
    }
}

/// Whether `shared` is held by nothing but the caller, so that it may
/// become a spare.
fn unshared<T>(shared: &Arc<T>) -> bool {
    Arc::strong_count(shared) == 1 && Arc::weak_count(shared) == 0
}

/// Whether a record's info is worth giving back: a rendered text within
/// [`SPARE_TEXT_BYTES`] that nothing else holds.
fn spare_info(info: &Arc<Info>) -> bool {
    matches!(&**info, Info::Rendered(text) if text.capacity() <= SPARE_TEXT_BYTES) && unshared(info)
}

/// A process-unique id for a caller thread's new event buffer (never 0).
pub(crate) fn next_buffer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether events are being recorded (a driver is installed).
#[inline]
pub(crate) fn is_recording() -> bool {
    RECORDING.0.load(Ordering::Relaxed)
}

pub(crate) fn set_capacity(capacity: usize) {
    CAPACITY.store(capacity.max(1), Ordering::Relaxed);
}

pub(crate) fn set_export_batch(size: usize) {
    EXPORT_BATCH.store(size.max(1), Ordering::Relaxed);
}

pub(crate) fn stats() -> Stats {
    Stats {
        queued: QUEUED.load(Ordering::Relaxed),
        sent: SENT.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
    }
}

/// The host name put into every `info.host`.
pub(crate) fn host() -> &'static str {
    HOST.get_or_init(|| gethostname::gethostname().to_string_lossy().into_owned())
}

pub(crate) fn set_host(host: String) -> bool {
    HOST.set(host).is_ok()
}

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        // If the thread cannot be spawned every later send fails and the
        // events are counted as dropped: profiling degrades, the service
        // does not.
        let _ = std::thread::Builder::new()
            .name("osprofiler-collector".into())
            .spawn(move || Collector::new(receiver).run());
        Shared { sender }
    })
}

static NEXT_SERVICE: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);

/// Registers the driver of one more service of this process; contexts
/// tagged with the returned number send their notifications to it.
/// `None` once all tags are used.
pub(crate) fn add_service(driver: Arc<dyn Driver>) -> Option<u16> {
    let tag = NEXT_SERVICE.fetch_add(1, Ordering::Relaxed);
    if tag == 0 {
        return None;
    }
    let _ = shared().sender.send(Message::AddService(tag, driver));
    Some(tag)
}

pub(crate) fn set_driver(driver: Option<Arc<dyn Driver>>) {
    let recording = driver.is_some();
    let _ = shared().sender.send(Message::SetDriver(driver));
    RECORDING.0.store(recording, Ordering::Relaxed);
}

/// Reserves room for `count` events; counts them as dropped when there is
/// none.
fn reserve(count: usize) -> bool {
    let count = count as u64;
    let capacity = CAPACITY.load(Ordering::Relaxed) as u64;
    let before = QUEUED.fetch_add(count, Ordering::Relaxed);
    if before + count > capacity {
        QUEUED.fetch_sub(count, Ordering::Relaxed);
        record_drop(count);
        return false;
    }
    true
}

fn record_drop(count: u64) {
    DROPPED.fetch_add(count, Ordering::Relaxed);
    if !DROP_LOGGED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "osprofiler: notification buffer full ({} events); dropping notifications \
             (counted in notifier::stats().dropped, logged once)",
            CAPACITY.load(Ordering::Relaxed)
        );
    }
}

fn send(message: Message, count: usize) {
    if let Err(lost) = shared().sender.send(message) {
        QUEUED.fetch_sub(count as u64, Ordering::Relaxed);
        drop(lost);
        record_drop(count as u64);
    }
}

/// Hands a batch recorded on a caller thread to the collector: its
/// records and the ids of their contexts. When the queue is full the batch
/// is dropped and its buffer comes back emptied, for the caller to record
/// into again: under overload a caller then neither frees nor allocates.
pub(crate) fn submit(mut batch: Vec<RawEvent>, contexts: Contexts) -> Option<Vec<RawEvent>> {
    let count = batch.iter().map(RawEvent::notifications).sum();
    if count == 0 {
        return None;
    }
    if !reserve(count) {
        batch.clear();
        return Some(batch);
    }
    send(Message::Events(batch, contexts), count);
    None
}

/// Queues ready-made notifications (Python's `notifier.notify`).
pub(crate) fn submit_payloads(batch: Vec<Notification>) {
    let count = batch.len();
    if count == 0 || !reserve(count) {
        return;
    }
    send(Message::Payloads(batch), count);
}

/// Waits until everything queued before this call is delivered (or `timeout`
/// passes). Returns how many events are still waiting.
pub(crate) fn flush(timeout: Duration) -> Result<(), usize> {
    if SHARED.get().is_none() {
        return Ok(());
    }
    let (ack, done) = mpsc::sync_channel(1);
    let deadline = Instant::now() + timeout;
    if shared().sender.send(Message::Flush(ack, deadline)).is_err() {
        return Err(QUEUED.load(Ordering::Relaxed) as usize);
    }
    match done.recv_timeout(timeout) {
        Ok(0) => Ok(()),
        Ok(left) => Err(left),
        Err(_) => Err(QUEUED.load(Ordering::Relaxed) as usize),
    }
}

/// Notifications waiting for the driver: one caller thread's batch, or
/// ready-made payloads. Kept as they arrived; drivers get [`Event`] views
/// of them, so no record is copied or split on its way out.
///
/// A batch is read through slots: slot `2i` is record `i`'s own
/// notification, slot `2i + 1` the stop it carries (a slot that stands for
/// nothing is skipped).
enum Batch {
    Recorded {
        records: Vec<RawEvent>,
        contexts: Contexts,
        /// The slots in time order; empty when that is the slots' own
        /// order (the common case, which then allocates nothing).
        order: Vec<u32>,
        /// Clock conversion, as read when the batch arrived.
        anchor: crate::clock::Anchor,
        /// Whether a record holds an info of its own, which may go back
        /// to [`SPARE_INFOS`] when the batch is done.
        infos: bool,
    },
    /// Slot `i` is payload `i`.
    Ready(Vec<Notification>),
}

/// Where the driver has got to in the pending batches: whole batches, then
/// a slot of the next one.
#[derive(Clone, Copy)]
struct Progress {
    batches: usize,
    slot: usize,
}

impl Batch {
    /// How many slots it has.
    fn slots(&self) -> usize {
        match self {
            Batch::Recorded { records, order, .. } if order.is_empty() => records.len() * 2,
            Batch::Recorded { order, .. } => order.len(),
            Batch::Ready(payloads) => payloads.len(),
        }
    }

    /// Appends to `run` the notifications from slot `from` on, while they
    /// are of service `tag` (0 for ready-made ones; `None`: the first
    /// one's) and `run` is shorter than `limit`. Returns the slot where it
    /// stopped (`slots()` at the end) and the tag.
    fn extend_run<'a>(
        &'a self,
        from: usize,
        mut tag: Option<u16>,
        limit: usize,
        run: &mut Vec<Event<'a>>,
    ) -> (usize, Option<u16>) {
        match self {
            Batch::Recorded {
                records,
                contexts,
                order,
                anchor,
                ..
            } if order.is_empty() => {
                let stopped_at =
                    extend_run_in_order((records, contexts, anchor), from, &mut tag, limit, run);
                (stopped_at, tag)
            }
            Batch::Recorded {
                records,
                contexts,
                order,
                anchor,
                ..
            } => {
                for (slot, &entry) in order.iter().enumerate().skip(from) {
                    let Some(record) = records.get((entry >> 1) as usize) else {
                        continue;
                    };
                    let carried = entry & 1 == 1;
                    if carried && !record.stopped {
                        continue;
                    }
                    // Never missing: the caller thread adds a record's
                    // context before the record.
                    let Some(context) = contexts.get(record.context) else {
                        continue;
                    };
                    if run.len() == limit || *tag.get_or_insert(context.service) != context.service
                    {
                        return (slot, tag);
                    }
                    let (phase, at) = if carried {
                        (Phase::Stop, record.stop_at)
                    } else {
                        (record.phase, record.at)
                    };
                    let unix_micros = anchor.unix_micros(at);
                    run.push(Event::recorded(record, context, phase, unix_micros));
                }
                (order.len(), tag)
            }
            Batch::Ready(payloads) => {
                for (slot, payload) in payloads.iter().enumerate().skip(from) {
                    if run.len() == limit || *tag.get_or_insert(0) != 0 {
                        return (slot, tag);
                    }
                    run.push(Event::from(payload));
                }
                (payloads.len(), tag)
            }
        }
    }
}

/// The allocation of `run`, emptied, free of its borrow: collecting into a
/// vector of the same layout reuses it.
// Not `filter`: the item type changes (its lifetime).
#[allow(clippy::unnecessary_filter_map)]
fn unborrowed(run: Vec<Event<'_>>) -> Vec<Event<'static>> {
    run.into_iter().filter_map(|_| None).collect()
}

/// [`Batch::extend_run`] for a batch whose slots are in time order (most
/// are): record by record, looking a record's context up only when it is
/// not the previous record's. Returns the slot where it stopped.
#[inline]
fn extend_run_in_order<'a>(
    (records, contexts, anchor): (&'a [RawEvent], &'a Contexts, &crate::clock::Anchor),
    from: usize,
    tag: &mut Option<u16>,
    limit: usize,
    run: &mut Vec<Event<'a>>,
) -> usize {
    // Never missing: the caller thread adds a record's context before the
    // record. The index no record has stands for "none looked up yet".
    let mut last: (u32, Option<&ContextIds>) = (u32::MAX, None);
    for (index, record) in records.iter().enumerate().skip(from / 2) {
        let own_slot = index * 2;
        if u32::from(record.context) != last.0 {
            let ids = contexts.get(record.context);
            if let Some(ids) = ids {
                if *tag.get_or_insert(ids.service) != ids.service {
                    return own_slot.max(from);
                }
            }
            last = (u32::from(record.context), ids);
        }
        let Some(context) = last.1 else {
            continue;
        };
        if own_slot >= from {
            if run.len() == limit {
                return own_slot;
            }
            let unix_micros = anchor.unix_micros(record.at);
            run.push(Event::recorded(record, context, record.phase, unix_micros));
        }
        if record.stopped {
            if run.len() == limit {
                return own_slot + 1;
            }
            let unix_micros = anchor.unix_micros(record.stop_at);
            run.push(Event::recorded(record, context, Phase::Stop, unix_micros));
        }
    }
    records.len() * 2
}

/// A batch and the first of its slots the driver has not taken.
struct PendingBatch {
    batch: Batch,
    delivered: usize,
}

struct Collector {
    receiver: Receiver<Message>,
    driver: Option<Arc<dyn Driver>>,
    /// Drivers of the other services of this process, by tag.
    services: std::collections::HashMap<u16, Arc<dyn Driver>>,
    pending: VecDeque<PendingBatch>,
    /// Notifications in `pending` not yet delivered.
    pending_events: usize,
    /// Emptied `order` vectors, for the next batches out of order.
    orders: Vec<Vec<u32>>,
    /// The allocation of the last run handed to a driver, kept for the
    /// next one (runs borrow `pending`, so it is kept empty and unborrowed).
    spare_run: Vec<Event<'static>>,
    /// Released since the last round, for [`SPARE_IDS`] and [`SPARE_INFOS`].
    spare_ids: Vec<Arc<ContextIds>>,
    spare_infos: Vec<Arc<Info>>,
    /// Flush requests waiting for `pending` to empty, with their deadlines.
    flushes: Vec<(mpsc::SyncSender<usize>, Instant)>,
    anchor: crate::clock::Anchor,
    anchored_at: Instant,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// What a new batch holds, from one pass over it: the batch has just
/// arrived from another core, and is read once more when delivered.
struct Survey {
    /// Notifications.
    count: usize,
    /// Whether they come in time order, each carried stop right after its
    /// start.
    in_order: bool,
    /// Whether a record holds its own info (see [`Batch::Recorded`]).
    infos: bool,
}

fn survey(records: &[RawEvent]) -> Survey {
    let mut last = crate::clock::Instant::ZERO;
    let mut count = 0;
    let mut in_order = true;
    let mut infos = false;
    for r in records {
        in_order &= r.at >= last && (!r.stopped || r.stop_at >= r.at);
        last = if r.stopped { r.stop_at } else { r.at };
        count += r.notifications();
        infos |= r.info.is_some();
    }
    Survey {
        count,
        in_order,
        infos,
    }
}

/// Lists the slots of `records` (see [`Batch`]) in time order into
/// `order`.
fn sort_slots(records: &[RawEvent], order: &mut Vec<u32>) {
    for (index, record) in (0u32..).zip(records) {
        order.push(index << 1);
        if record.stopped {
            order.push(index << 1 | 1);
        }
    }
    // A batch is one thread's, nearly in order already (an element
    // stopped while its start was still buffered carries the stop, which
    // comes after what happened inside it): the stable sort only merges
    // runs.
    order.sort_by_key(|&k| {
        let record = &records[(k >> 1) as usize];
        if k & 1 == 1 {
            record.stop_at
        } else {
            record.at
        }
    });
}

impl Collector {
    fn new(receiver: Receiver<Message>) -> Collector {
        Collector {
            receiver,
            driver: None,
            services: std::collections::HashMap::new(),
            pending: VecDeque::new(),
            pending_events: 0,
            orders: Vec::new(),
            spare_run: Vec::new(),
            spare_ids: Vec::new(),
            spare_infos: Vec::new(),
            flushes: Vec::new(),
            anchor: crate::clock::Anchor::new(),
            anchored_at: Instant::now(),
            backoff: MIN_BACKOFF,
            retry_at: None,
        }
    }

    fn run(mut self) {
        let mut idle_polls = 0;
        loop {
            let message = if idle_polls < IDLE_POLLS {
                // Busy: poll instead of blocking. A sender wakes a blocked
                // receiver with a system call (microseconds on the traced
                // thread); a polled one costs the sender a few atomics.
                match self.receiver.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(POLL_INTERVAL);
                        self.receiver.try_recv().ok()
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                // Idle for a while: block until a message or the next retry.
                let wait = match self.retry_at {
                    Some(at) => self
                        .receiver
                        .recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => self
                        .receiver
                        .recv()
                        .map_err(|_| RecvTimeoutError::Disconnected),
                };
                match wait {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            idle_polls = if message.is_some() { 0 } else { idle_polls + 1 };
            let waiting = self.flushes.len();
            if let Some(m) = message {
                self.handle(m);
            }
            // Take whatever else is already waiting so the driver sees big
            // batches.
            while let Ok(m) = self.receiver.try_recv() {
                self.handle(m);
            }
            // A new flush request tries at once, whatever the backoff.
            let force = self.flushes.len() > waiting;
            self.deliver(force);
            self.answer_flushes();
            SPARE_IDS.give(&mut self.spare_ids);
            SPARE_INFOS.give(&mut self.spare_infos);
        }
    }

    /// Answers the flush requests that are done: all of them once nothing
    /// is pending; otherwise those past their deadline (whose callers
    /// have given up), so a long outage does not pile them up. The others
    /// keep waiting while failed deliveries are retried.
    fn answer_flushes(&mut self) {
        let left = self.pending_events;
        let now = Instant::now();
        self.flushes.retain(|(ack, deadline)| {
            let done = left == 0 || *deadline <= now;
            if done {
                let _ = ack.try_send(left);
            }
            !done
        });
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Events(records, contexts) => {
                self.reanchor();
                // The driver gets every event in the order it happened, as
                // Python sends them, stops completed in place included.
                let Survey {
                    count,
                    in_order,
                    infos,
                } = survey(&records);
                let mut order = Vec::new();
                if !in_order {
                    order = self.orders.pop().unwrap_or_default();
                    sort_slots(&records, &mut order);
                }
                self.push_pending(
                    count,
                    Batch::Recorded {
                        records,
                        contexts,
                        order,
                        anchor: self.anchor,
                        infos,
                    },
                );
            }
            Message::Payloads(payloads) => {
                self.push_pending(payloads.len(), Batch::Ready(payloads))
            }
            Message::AddService(tag, driver) => {
                self.services.insert(tag, driver);
            }
            Message::SetDriver(driver) => {
                self.driver = driver;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
            }
            Message::Flush(ack, deadline) => self.flushes.push((ack, deadline)),
        }
    }

    /// Queues a batch of `count` notifications.
    fn push_pending(&mut self, count: usize, batch: Batch) {
        if count == 0 {
            self.release(batch);
            return;
        }
        self.pending_events += count;
        self.pending.push_back(PendingBatch {
            batch,
            delivered: 0,
        });
    }

    /// Gives a delivered batch's buffers back for reuse.
    fn release(&mut self, batch: Batch) {
        if let Batch::Recorded {
            mut records,
            contexts,
            mut order,
            infos,
            ..
        } = batch
        {
            if infos {
                for record in &mut records {
                    if record.info.as_ref().is_some_and(spare_info) {
                        keep_released(&mut self.spare_infos, record.info.take());
                    }
                }
            }
            contexts.release(|ids| {
                if unshared(&ids) {
                    keep_released(&mut self.spare_ids, Some(ids));
                }
            });
            recycle(records);
            if order.capacity() > 0 && self.orders.len() < ORDERS_KEPT {
                order.clear();
                self.orders.push(order);
            }
        }
    }

    /// Drops the `n` pending notifications up to `to` (delivered, or lost).
    fn consume(&mut self, n: usize, to: Progress) {
        self.pending_events -= n;
        for _ in 0..to.batches {
            if let Some(done) = self.pending.pop_front() {
                self.release(done.batch);
            }
        }
        if let Some(front) = self.pending.front_mut() {
            front.delivered = to.slot;
            if front.delivered >= front.batch.slots() {
                if let Some(done) = self.pending.pop_front() {
                    self.release(done.batch);
                }
            }
        }
    }

    /// Up to `limit` pending notifications from the front, all of the
    /// front one's service, and where they end.
    fn next_run<'a>(
        &'a self,
        limit: usize,
        mut run: Vec<Event<'a>>,
    ) -> (Option<u16>, Vec<Event<'a>>, Progress) {
        run.reserve(limit.min(self.pending_events));
        let mut tag = None;
        let mut progress = Progress {
            batches: 0,
            slot: 0,
        };
        for pending in &self.pending {
            let (slot, seen) = pending
                .batch
                .extend_run(pending.delivered, tag, limit, &mut run);
            tag = seen;
            if slot < pending.batch.slots() {
                progress.slot = slot;
                break;
            }
            progress.batches += 1;
        }
        (tag, run, progress)
    }

    /// Re-reads the wall clock now and then so timestamps follow NTP
    /// adjustments instead of drifting with the cycle counter.
    fn reanchor(&mut self) {
        if self.anchored_at.elapsed() > Duration::from_secs(1) {
            self.anchor = crate::clock::Anchor::new();
            self.anchored_at = Instant::now();
        }
    }

    fn deliver(&mut self, force: bool) {
        if self.pending.is_empty() {
            self.retry_at = None;
            return;
        }
        if self.driver.is_none() {
            // No driver: nothing can ever take these.
            let n = self.pending_events;
            let all = Progress {
                batches: self.pending.len(),
                slot: 0,
            };
            self.consume(n, all);
            QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
            return;
        }
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let batch_size = EXPORT_BATCH.load(Ordering::Relaxed);
        loop {
            // One driver call per run of notifications of one service.
            let spare = std::mem::take(&mut self.spare_run);
            let (Some(tag), run, progress) = self.next_run(batch_size, spare) else {
                return;
            };
            if run.is_empty() {
                return;
            }
            let Some(driver) = self.services.get(&tag).or(self.driver.as_ref()).cloned() else {
                return;
            };
            let n = run.len();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver.notify_events(&run)
            }));
            self.spare_run = unborrowed(run);
            match result {
                Ok(Ok(())) => {
                    self.consume(n, progress);
                    QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
                    SENT.fetch_add(n as u64, Ordering::Relaxed);
                    self.backoff = MIN_BACKOFF;
                    self.retry_at = None;
                }
                Ok(Err(error)) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "osprofiler: driver {} failed ({error}); {} notifications kept for retry",
                        driver.name(),
                        self.pending_events
                    );
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
                Err(_) => {
                    // A driver that panics on a batch would panic again on
                    // retry: drop that batch, keep the collector alive.
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    self.consume(n, progress);
                    QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
                    record_drop(n as u64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{ContextIds, Name};
    use crate::profiler::id::LocalId;
    use crate::profiler::Id;

    /// The `n`th of a few increasing clock readings.
    fn instant(n: u64) -> crate::clock::Instant {
        static READINGS: OnceLock<Vec<crate::clock::Instant>> = OnceLock::new();
        let readings = READINGS.get_or_init(|| {
            (0..6)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(1));
                    crate::clock::Instant::now()
                })
                .collect()
        });
        readings[n as usize]
    }

    fn record(at: u64, stop_at: Option<u64>) -> RawEvent {
        RawEvent {
            name: Name::from("n"),
            trace_id: LocalId(at),
            parent_id: LocalId(1000),
            at: instant(at),
            stop_at: instant(stop_at.unwrap_or(0)),
            info: None,
            site_info: 0,
            context: 0,
            phase: Phase::Start,
            stopped: stop_at.is_some(),
        }
    }

    /// Context tables whose entry `i` is of service `services[i]`.
    fn contexts(services: &[u16]) -> Contexts {
        Contexts::of(services.iter().map(|&service| ContextIds {
            base_id: Id::from_u128(1),
            parent_id: Id::from_u128(2),
            service,
        }))
    }

    #[test]
    fn buffers_are_pooled_by_size() {
        let index = |capacity| {
            pool_of(capacity).map(|pool| POOLS.iter().position(|p| std::ptr::eq(p, pool)))
        };
        assert_eq!(index(SMALL_BATCH), Some(Some(0)));
        assert_eq!(index(SMALL_BATCH * 2), Some(Some(1)));
        assert_eq!(index(LOCAL_BATCH), Some(Some(BUFFER_SIZES - 1)));
        for odd in [0, SMALL_BATCH / 2, SMALL_BATCH + 1, LOCAL_BATCH * 2] {
            assert_eq!(index(odd), None, "no pool for {odd}");
        }
        for capacity in [SMALL_BATCH, SMALL_BATCH * 4, LOCAL_BATCH, 3] {
            let buffer = empty_buffer(capacity);
            assert_eq!((buffer.len(), buffer.capacity()), (0, capacity));
            recycle(buffer);
        }
    }

    #[test]
    fn what_only_the_collector_holds_is_given_back() {
        let rendered = |text: &str| Arc::new(Info::Rendered(text.into()));
        let held_elsewhere = rendered("{}");
        let ids_held_elsewhere = Arc::new(ContextIds {
            base_id: Id::from_u128(3),
            parent_id: Id::from_u128(4),
            service: 0,
        });
        let mut contexts = contexts(&[0]);
        contexts.add_shared(&ids_held_elsewhere);
        let mut records: Vec<RawEvent> = (1..=5).map(|at| record(at, None)).collect();
        records[0].info = Some(rendered("{\"a\":1}"));
        records[1].info = Some(held_elsewhere.clone());
        records[2].info = Some(Info::shared(serde_json::json!({"a": 1})));
        records[3].info = Some(rendered(&"x".repeat(SPARE_TEXT_BYTES + 1)));
        let survey = survey(&records);
        assert!(survey.infos);
        let (_sender, receiver) = mpsc::channel();
        let mut collector = Collector::new(receiver);
        collector.release(Batch::Recorded {
            records,
            contexts,
            order: Vec::new(),
            anchor: crate::clock::Anchor::new(),
            infos: survey.infos,
        });
        // Only the small rendered text and the first ids: the rest is
        // held elsewhere, not rendered, or too big to keep.
        let texts: Vec<_> = (collector.spare_infos.iter())
            .map(|info| match &**info {
                Info::Rendered(text) => text.as_str(),
                Info::Value(_) => "a value",
            })
            .collect();
        assert_eq!(texts, ["{\"a\":1}"]);
        assert_eq!(collector.spare_ids.len(), 1);
        assert_eq!(collector.spare_ids[0].base_id, Id::from_u128(1));
        assert_eq!(Arc::strong_count(&held_elsewhere), 1);
        assert_eq!(Arc::strong_count(&ids_held_elsewhere), 1);

        // Given back, each is reused for the next value.
        let spares = Spares::new();
        let first = Arc::as_ptr(&collector.spare_ids[0]);
        spares.give(&mut collector.spare_ids);
        assert!(collector.spare_ids.is_empty());
        let reused = spares.share(ContextIds {
            base_id: Id::from_u128(5),
            parent_id: Id::from_u128(6),
            service: 2,
        });
        assert_eq!(Arc::as_ptr(&reused), first);
        assert_eq!(
            (reused.base_id.clone(), reused.service),
            (Id::from_u128(5), 2)
        );
        assert!(spares.take().is_none());
        let fresh = spares.share(ContextIds {
            base_id: Id::from_u128(7),
            parent_id: Id::from_u128(8),
            service: 0,
        });
        assert_ne!(Arc::as_ptr(&fresh), first);

        // Never more than the bound.
        let mut many: Vec<_> = (0..Spares::<u8>::KEPT + 5).map(|_| Arc::new(0u8)).collect();
        let numbers = Spares::new();
        numbers.give(&mut many);
        assert!(many.is_empty());
        assert_eq!(numbers.0.lock().unwrap().len(), Spares::<u8>::KEPT);
    }

    #[test]
    fn carried_stops_come_out_in_time_order() {
        // An outer element stopped while its start was buffered carries a
        // stop that comes after everything inside it.
        let records = [record(1, Some(4)), record(2, Some(3)), record(5, None)];
        assert!(!survey(&records).in_order);
        let mut order = Vec::new();
        sort_slots(&records, &mut order);
        assert_eq!(order, [0, 2, 3, 1, 4]);

        let in_order = [record(1, Some(2)), record(3, None), record(4, Some(4))];
        assert!(survey(&in_order).in_order);
    }

    fn stamps(run: &[Event<'_>]) -> Vec<String> {
        run.iter()
            .map(|e| format!("{}@{}", e.name(), e.timestamp()))
            .collect()
    }

    #[test]
    fn runs_stop_at_the_limit_and_at_another_service() {
        // In order: read through the slots, no order vector.
        let mut records = vec![record(1, Some(2)), record(3, None), record(4, Some(5))];
        records[2].context = 1;
        let batch = Batch::Recorded {
            records,
            contexts: contexts(&[0, 7]),
            order: Vec::new(),
            anchor: crate::clock::Anchor::new(),
            infos: false,
        };
        let mut run = Vec::new();
        assert_eq!(batch.extend_run(0, None, 2, &mut run), (2, Some(0)));
        let names: Vec<_> = run.iter().map(|e| e.name().into_owned()).collect();
        assert_eq!(names, ["n-start", "n-stop"]);
        run.clear();
        // Slot 3 (record 1's carried stop) stands for nothing.
        assert_eq!(batch.extend_run(2, Some(0), 10, &mut run), (4, Some(0)));
        assert_eq!(run.len(), 1, "up to the other service's record");
        run.clear();
        assert_eq!(batch.extend_run(4, None, 10, &mut run), (6, Some(7)));
        assert_eq!(run.len(), 2);
        run.clear();
        // From a carried stop; and a limit reached before one.
        assert_eq!(batch.extend_run(1, None, 10, &mut run), (4, Some(0)));
        let names: Vec<_> = run.iter().map(|e| e.name().into_owned()).collect();
        assert_eq!(names, ["n-stop", "n-start"]);
        run.clear();
        assert_eq!(batch.extend_run(0, None, 1, &mut run), (1, Some(0)));
        assert_eq!(run.len(), 1);
    }

    #[test]
    fn sorted_batches_are_delivered_in_time_order() {
        let records = vec![record(1, Some(4)), record(2, Some(3)), record(5, None)];
        let mut order = Vec::new();
        sort_slots(&records, &mut order);
        let anchor = crate::clock::Anchor::new();
        let expected: Vec<String> = [
            (1, "start"),
            (2, "start"),
            (3, "stop"),
            (4, "stop"),
            (5, "start"),
        ]
        .iter()
        .map(|&(at, phase)| {
            let stamp = crate::notification::format_timestamp(anchor.unix_micros(instant(at)));
            format!("n-{phase}@{stamp}")
        })
        .collect();
        let batch = Batch::Recorded {
            records,
            contexts: contexts(&[0]),
            order,
            anchor,
            infos: false,
        };
        let mut run = Vec::new();
        assert_eq!(batch.extend_run(0, None, 10, &mut run), (5, Some(0)));
        assert_eq!(stamps(&run), expected);
    }
}
