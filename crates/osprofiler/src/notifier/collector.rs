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
use crate::local::{RawEvent, LOCAL_BATCH};
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
    Events(Vec<RawEvent>),
    Payloads(Vec<Notification>),
    SetDriver(Option<Arc<dyn Driver>>),
    AddService(u16, Arc<dyn Driver>),
    /// Answer when nothing is pending any more, or at the deadline.
    Flush(mpsc::SyncSender<usize>, Instant),
}

struct Shared {
    sender: Sender<Message>,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_CAPACITY);
static EXPORT_BATCH: AtomicUsize = AtomicUsize::new(DEFAULT_EXPORT_BATCH);
static QUEUED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static DROP_LOGGED: AtomicBool = AtomicBool::new(false);
static SHARED: OnceLock<Shared> = OnceLock::new();
static HOST: OnceLock<String> = OnceLock::new();
/// Emptied event buffers on their way back to the caller threads.
static POOL: Mutex<Vec<Vec<RawEvent>>> = Mutex::new(Vec::new());
/// Most buffers kept in [`POOL`] (each `LOCAL_BATCH` events).
const POOL_SIZE: usize = 64;

/// An empty buffer for a caller thread. Of `LOCAL_BATCH` events: one the
/// collector has emptied when there is one, so recording neither
/// reallocates nor, in a steady state, allocates. Smaller (a thread that
/// hands over a few events per request): a fresh one, as the pool keeps
/// only full-size buffers.
pub(crate) fn empty_buffer(capacity: usize) -> Vec<RawEvent> {
    if capacity < LOCAL_BATCH {
        return Vec::with_capacity(capacity);
    }
    POOL.lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_else(|| Vec::with_capacity(LOCAL_BATCH))
}

/// Gives an emptied buffer back for [`empty_buffer`].
fn recycle(mut buffer: Vec<RawEvent>) {
    buffer.clear();
    if buffer.capacity() != LOCAL_BATCH {
        return;
    }
    if let Ok(mut pool) = POOL.lock() {
        if pool.len() < POOL_SIZE {
            pool.push(buffer);
        }
    }
}

/// A process-unique id for a caller thread's new event buffer (never 0).
pub(crate) fn next_buffer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether events are being recorded (a driver is installed).
#[inline]
pub(crate) fn is_recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
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
    RECORDING.store(recording, Ordering::Relaxed);
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

/// Hands a batch recorded on a caller thread to the collector.
pub(crate) fn submit(batch: Vec<RawEvent>) {
    let count = batch.iter().map(RawEvent::notifications).sum();
    if count == 0 || !reserve(count) {
        return;
    }
    send(Message::Events(batch), count);
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

struct Collector {
    receiver: Receiver<Message>,
    driver: Option<Arc<dyn Driver>>,
    /// Drivers of the other services of this process, by tag.
    services: std::collections::HashMap<u16, Arc<dyn Driver>>,
    pending: VecDeque<Event>,
    /// Reused to put each batch in time order.
    scratch: Vec<RawEvent>,
    /// Flush requests waiting for `pending` to empty, with their deadlines.
    flushes: Vec<(mpsc::SyncSender<usize>, Instant)>,
    anchor: crate::clock::Anchor,
    anchored_at: Instant,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// Whether the events of `records`, each carried stop taken out after its
/// start, already come in time order.
fn split_in_order(records: &[RawEvent]) -> bool {
    let mut last = crate::clock::Instant::ZERO;
    records.iter().all(|r| {
        let in_order = r.at >= last;
        last = if r.stopped { r.stop_at } else { r.at };
        in_order && (!r.stopped || r.stop_at >= r.at)
    })
}

impl Collector {
    fn new(receiver: Receiver<Message>) -> Collector {
        Collector {
            receiver,
            driver: None,
            services: std::collections::HashMap::new(),
            pending: VecDeque::new(),
            scratch: Vec::new(),
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
        }
    }

    /// Answers the flush requests that are done: all of them once nothing
    /// is pending; otherwise those past their deadline (whose callers
    /// have given up), so a long outage does not pile them up. The others
    /// keep waiting while failed deliveries are retried.
    fn answer_flushes(&mut self) {
        let left = self.pending.len();
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
            Message::Events(mut events) => {
                self.reanchor();
                // Stops completed in place come out of their starts; the
                // driver gets every event in the order it happened, as
                // Python sends them. A batch is one thread's, nearly in
                // order already: the stable sort only merges runs.
                let count = events.iter().map(RawEvent::notifications).sum();
                self.pending.reserve(count);
                if split_in_order(&events) {
                    // The common case (elements stopped before the next one
                    // starts): no sort, and each record moves once.
                    for mut event in events.drain(..) {
                        let stop = event.split_stop();
                        self.push_recorded(event);
                        if let Some(stop) = stop {
                            self.push_recorded(stop);
                        }
                    }
                } else {
                    let mut ordered = std::mem::take(&mut self.scratch);
                    for mut event in events.drain(..) {
                        let stop = event.split_stop();
                        ordered.push(event);
                        ordered.extend(stop);
                    }
                    ordered.sort_by_key(|e| e.at);
                    for event in ordered.drain(..) {
                        self.push_recorded(event);
                    }
                    self.scratch = ordered;
                }
                recycle(events);
            }
            Message::Payloads(payloads) => {
                self.pending.extend(payloads.into_iter().map(Event::from));
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

    /// Queues one recorded event. Only the clock is converted here; text
    /// is made by the driver that needs it.
    #[inline]
    fn push_recorded(&mut self, event: RawEvent) {
        let micros = (event.at.as_unix_nanos(&self.anchor) / 1_000) as i64;
        self.pending.push_back(Event::recorded(event, micros));
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
            let n = self.pending.len();
            self.pending.clear();
            QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
            return;
        }
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let batch_size = EXPORT_BATCH.load(Ordering::Relaxed);
        while let Some(tag) = self.pending.front().map(Event::service_tag) {
            // One driver call per run of notifications of one service.
            let n = self
                .pending
                .iter()
                .take(batch_size)
                .take_while(|e| e.service_tag() == tag)
                .count();
            let Some(driver) = self.services.get(&tag).or(self.driver.as_ref()).cloned() else {
                return;
            };
            // The front run, without `make_contiguous`: moving the whole
            // queue whenever it wraps costs more than a shorter batch.
            let (front, _) = self.pending.as_slices();
            let n = n.min(front.len());
            let chunk = &front[..n];
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver.notify_events(chunk)
            }));
            match result {
                Ok(Ok(())) => {
                    self.pending.drain(..n);
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
                        self.pending.len()
                    );
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
                Err(_) => {
                    // A driver that panics on a batch would panic again on
                    // retry: drop that batch, keep the collector alive.
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    self.pending.drain(..n);
                    QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
                    record_drop(n as u64);
                }
            }
        }
    }
}
