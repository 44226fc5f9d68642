//! Background collector thread.
//!
//! Receives batches of raw events from the caller threads, turns them into
//! [`Notification`]s (ids to text, clock readings to UTC timestamps, `host`
//! added) and hands them to the driver. Everything slow happens here; the
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
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::drivers::Driver;
use crate::local::{Phase, RawEvent, LOCAL_BATCH};
use crate::notification::{format_timestamp, Notification};

/// Default for [`crate::notifier::Options::capacity`].
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;
/// Default for [`crate::notifier::Options::export_batch`].
pub(crate) const DEFAULT_EXPORT_BATCH: usize = 1_000;
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
    Flush(mpsc::SyncSender<usize>),
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

/// An empty buffer of `LOCAL_BATCH` events for a caller thread: one the
/// collector has emptied when there is one, so recording neither
/// reallocates nor, in a steady state, allocates.
pub(crate) fn empty_buffer() -> Vec<RawEvent> {
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
    let count = batch.len();
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
    if shared().sender.send(Message::Flush(ack)).is_err() {
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
    pending: VecDeque<Notification>,
    /// The service tag of each entry of `pending`.
    tags: VecDeque<u16>,
    anchor: minstant::Anchor,
    anchored_at: Instant,
    /// Formats timestamps, reusing the date and time of the last second.
    clock: TimestampCache,
    /// `{"host": <host>}`, cloned into events that carry no info.
    host_only: Map<String, Value>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Collector {
    fn new(receiver: Receiver<Message>) -> Collector {
        Collector {
            receiver,
            driver: None,
            services: std::collections::HashMap::new(),
            pending: VecDeque::new(),
            tags: VecDeque::new(),
            anchor: minstant::Anchor::new(),
            anchored_at: Instant::now(),
            clock: TimestampCache::default(),
            host_only: info_with_host(None, host()),
            backoff: MIN_BACKOFF,
            retry_at: None,
        }
    }

    fn run(mut self) {
        loop {
            let message = match self.retry_at {
                Some(at) => match self
                    .receiver
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.receiver.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            let mut flushes = Vec::new();
            if let Some(m) = message {
                self.handle(m, &mut flushes);
            }
            // Take whatever else is already waiting so the driver sees big
            // batches.
            while let Ok(m) = self.receiver.try_recv() {
                self.handle(m, &mut flushes);
            }
            let force = !flushes.is_empty();
            self.deliver(force);
            for ack in flushes {
                let _ = ack.try_send(self.pending.len());
            }
        }
    }

    fn handle(&mut self, message: Message, flushes: &mut Vec<mpsc::SyncSender<usize>>) {
        match message {
            Message::Events(mut events) => {
                self.reanchor();
                let host = host();
                self.tags.extend(events.iter().map(|e| e.service));
                self.pending.reserve(events.len());
                for event in events.drain(..) {
                    let micros = (event.at.as_unix_nanos(&self.anchor) / 1_000) as i64;
                    let timestamp = self.clock.format(micros);
                    self.pending
                        .push_back(convert(event, timestamp, &self.host_only, host));
                }
                recycle(events);
            }
            Message::Payloads(payloads) => {
                self.tags.extend(payloads.iter().map(|_| 0));
                self.pending.extend(payloads);
            }
            Message::AddService(tag, driver) => {
                self.services.insert(tag, driver);
            }
            Message::SetDriver(driver) => {
                self.driver = driver;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
            }
            Message::Flush(ack) => flushes.push(ack),
        }
    }

    /// Re-reads the wall clock now and then so timestamps follow NTP
    /// adjustments instead of drifting with the cycle counter.
    fn reanchor(&mut self) {
        if self.anchored_at.elapsed() > Duration::from_secs(1) {
            self.anchor = minstant::Anchor::new();
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
            self.tags.clear();
            QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
            return;
        }
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let batch_size = EXPORT_BATCH.load(Ordering::Relaxed);
        while let Some(&tag) = self.tags.front() {
            // One driver call per run of notifications of one service.
            let n = self
                .tags
                .iter()
                .take(batch_size)
                .take_while(|&&t| t == tag)
                .count();
            let Some(driver) = self.services.get(&tag).or(self.driver.as_ref()).cloned() else {
                return;
            };
            let chunk = &self.pending.make_contiguous()[..n];
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.notify(chunk)));
            match result {
                Ok(Ok(())) => {
                    self.pending.drain(..n);
                    self.tags.drain(..n);
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
                    self.tags.drain(..n);
                    QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
                    record_drop(n as u64);
                }
            }
        }
    }
}

fn convert(
    event: RawEvent,
    timestamp: String,
    host_only: &Map<String, Value>,
    host: &str,
) -> Notification {
    let suffix = match event.phase {
        Phase::Start => "-start",
        Phase::Stop => "-stop",
    };
    let mut name = String::with_capacity(event.name.as_str().len() + suffix.len());
    name.push_str(event.name.as_str());
    name.push_str(suffix);
    let info = match event.info {
        None | Some(Value::Null) => host_only.clone(),
        info => info_with_host(info, host),
    };
    Notification {
        name,
        base_id: event.base_id.to_text(),
        trace_id: event.trace_id.to_text(),
        parent_id: event.parent_id.to_text(),
        timestamp,
        info: Some(info),
    }
}

/// [`format_timestamp`] for a stream of mostly increasing times: the
/// `%Y-%m-%dT%H:%M:%S.` part is formatted once per second.
#[derive(Debug, Default)]
struct TimestampCache {
    /// The second of `prefix`, if any.
    second: Option<i64>,
    /// `format_timestamp` of that second, up to and including the `.`.
    prefix: String,
}

impl TimestampCache {
    fn format(&mut self, unix_micros: i64) -> String {
        let second = unix_micros.div_euclid(1_000_000);
        if self.second != Some(second) {
            let mut text = format_timestamp(second * 1_000_000);
            if text.len() != 26 {
                // Outside four-digit years: no shortcut.
                self.second = None;
                return format_timestamp(unix_micros);
            }
            text.truncate(20);
            self.prefix = text;
            self.second = Some(second);
        }
        let mut micros = unix_micros.rem_euclid(1_000_000) as u32;
        let mut digits = [b'0'; 6];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        let mut out = String::with_capacity(26);
        out.push_str(&self.prefix);
        out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
        out
    }
}

/// Python adds `host` to the caller's info (replacing any `host` it had).
fn info_with_host(info: Option<Value>, host: &str) -> Map<String, Value> {
    let mut map = match info {
        Some(Value::Object(map)) => map,
        Some(Value::Null) | None => Map::new(),
        // Python would fail on a non-dict info; keep the value visible.
        Some(other) => Map::from_iter([("value".to_string(), other)]),
    };
    map.insert("host".into(), Value::from(host));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_timestamps_equal_format_timestamp() {
        let mut cache = TimestampCache::default();
        let base = 1_700_000_000_123_456_i64;
        for micros in [
            base,
            base + 1,
            base + 876_543,
            base + 876_544,
            base - 5_000_000,
            0,
            999_999,
            -1,
            253_402_300_799_999_999,
            253_402_300_800_000_000,
            base,
        ] {
            assert_eq!(cache.format(micros), format_timestamp(micros), "{micros}");
        }
    }

    #[test]
    fn events_without_info_get_the_host_alone() {
        let host_only = info_with_host(None, "h1");
        let event = |info| RawEvent {
            phase: Phase::Stop,
            name: "db".into(),
            base_id: crate::profiler::Id::from_u128(1),
            parent_id: crate::profiler::Id::from_text("p"),
            trace_id: crate::profiler::Id::from_u128(2),
            at: minstant::Instant::now(),
            info,
            service: 0,
        };
        let n = convert(event(None), "t".into(), &host_only, "h1");
        assert_eq!(n.name, "db-stop");
        assert_eq!(n.base_id, "00000000-0000-0000-0000-000000000001");
        assert_eq!(n.parent_id, "p");
        assert_eq!(n.info, Some(host_only.clone()));
        let n = convert(
            event(Some(serde_json::json!({"a": 1, "host": "x"}))),
            "t".into(),
            &host_only,
            "h1",
        );
        assert_eq!(
            serde_json::Value::Object(n.info.unwrap()),
            serde_json::json!({"a": 1, "host": "h1"})
        );
    }
}
