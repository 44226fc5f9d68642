//! Where notifications go: Python's `osprofiler.notifier`, made
//! non-blocking.
//!
//! [`set`] installs a driver. From then on `start`/`stop` record compact
//! events into a per-thread buffer; a background collector thread turns
//! batches of them into payloads and hands them to the driver. The traced
//! code never waits for the driver and never sees its errors.
//!
//! ```
//! use osprofiler::{drivers::MemoryDriver, notifier, profiler};
//! use std::time::Duration;
//!
//! let store = MemoryDriver::new();
//! let _guard = notifier::install(store.clone());
//! profiler::init("SECRET_KEY", None, None);
//! profiler::start("demo", None);
//! profiler::stop(None);
//! notifier::flush(Duration::from_secs(5)).unwrap();
//! assert_eq!(store.payloads().len(), 2);
//! # profiler::clean();
//! ```

pub(crate) mod collector;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use collector::Stats;

use crate::config::ProfilerConfig;
use crate::drivers::{self, Driver};
use crate::error::Error;
use crate::notification::Notification;
use crate::{limits, local};

static CURRENT: Mutex<Option<Arc<dyn Driver>>> = Mutex::new(None);

/// Installs `driver` as the destination of every notification (Python's
/// `notifier.set`).
pub fn set(driver: impl Driver) {
    set_shared(Arc::new(driver));
}

/// [`set`] for a driver that is already shared.
pub fn set_shared(driver: Arc<dyn Driver>) {
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some(driver.clone());
    }
    collector::set_driver(Some(driver));
}

/// One more service hosted by this process, with a driver of its own.
///
/// Python runs one service per process, so its drivers stamp one
/// `project`/`service` on everything. A Rust binary may host several (an
/// API and a worker, say): register a driver for each extra one with
/// [`add_service`] and tag its requests' contexts (the server layer's
/// `TraceLayer::service`, or [`crate::profiler::set_service`]); their
/// notifications then go to that driver instead of the default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceTag(pub(crate) u16);

/// Registers the driver of one more service of this process (see
/// [`ServiceTag`]). Returns `None` after 65,535 registrations.
pub fn add_service(driver: impl Driver) -> Option<ServiceTag> {
    collector::add_service(Arc::new(driver)).map(ServiceTag)
}

/// Removes the driver: back to the default no-op notifier, under which
/// `start`/`stop` record nothing.
pub fn reset() {
    if let Ok(mut current) = CURRENT.lock() {
        *current = None;
    }
    collector::set_driver(None);
}

/// The installed driver, if any (Python's `notifier.get`).
pub fn get() -> Option<Arc<dyn Driver>> {
    CURRENT.lock().ok().and_then(|c| c.clone())
}

/// Queues a ready-made notification for the installed driver (Python's
/// `notifier.notify`). Does nothing under the no-op notifier.
pub fn notify(payload: Notification) {
    if collector::is_recording() {
        collector::submit_payloads(vec![payload]);
    }
}

/// Creates the driver for `connection_string` (Python's `notifier.create`):
/// the URL scheme picks the backend, `project`/`service`/`host` are written
/// into every payload it stores.
///
/// An unknown scheme, or a backend not compiled in, is an error naming the
/// connection string (with any password hidden).
pub fn create(
    connection_string: &str,
    project: Option<&str>,
    service: Option<&str>,
    host: Option<&str>,
    conf: &ProfilerConfig,
) -> Result<Arc<dyn Driver>, Error> {
    drivers::get_driver(connection_string, project, service, host, conf)
}

/// Tuning of the notification pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Most events waiting between the traced code and the driver, including
    /// those kept for retry while the driver fails. Beyond it new events
    /// are dropped and counted. Default 100,000. (Apart from these, the
    /// pipeline keeps emptied event buffers for reuse: at most 1 MiB per
    /// buffer size, of six sizes.)
    pub capacity: usize,
    /// Most notifications handed to the driver in one call. Default 1,000.
    pub export_batch: usize,
    /// Longest string kept whole in an `info` (values and keys), in bytes;
    /// longer ones are cut and marked before they are queued. Default
    /// 64 KiB.
    pub max_info_bytes: usize,
    /// Most events one request context records; past it one `truncated`
    /// element marks the cut and later elements are not recorded.
    /// Default 1,000,000.
    pub max_trace_events: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: collector::DEFAULT_CAPACITY,
            export_batch: collector::DEFAULT_EXPORT_BATCH,
            max_info_bytes: limits::DEFAULT_MAX_INFO_BYTES,
            max_trace_events: limits::DEFAULT_MAX_TRACE_EVENTS,
        }
    }
}

impl Options {
    /// Sets [`Options::capacity`].
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// Sets [`Options::export_batch`].
    pub fn export_batch(mut self, notifications: usize) -> Self {
        self.export_batch = notifications;
        self
    }

    /// Sets [`Options::max_info_bytes`].
    pub fn max_info_bytes(mut self, bytes: usize) -> Self {
        self.max_info_bytes = bytes;
        self
    }

    /// Sets [`Options::max_trace_events`] (applies to contexts created
    /// after the call).
    pub fn max_trace_events(mut self, events: u32) -> Self {
        self.max_trace_events = events;
        self
    }
}

/// Applies pipeline options; takes effect for batches handed over after
/// the call.
pub fn configure(options: Options) {
    collector::set_capacity(options.capacity);
    collector::set_export_batch(options.export_batch);
    limits::set_max_info_bytes(options.max_info_bytes);
    limits::set_max_trace_events(options.max_trace_events);
}

/// Counters of the pipeline: queued, sent, dropped, failed.
pub fn stats() -> Stats {
    collector::stats()
}

/// The host name written into every `info.host` (the machine's host name
/// unless [`set_host`] changed it).
pub fn host() -> &'static str {
    collector::host()
}

/// Overrides the host name written into `info.host` (the machine's host
/// name by default). Only the first call before any event is recorded wins;
/// returns whether it did.
pub fn set_host(host: impl Into<String>) -> bool {
    collector::set_host(host.into())
}

/// Error of [`flush`]: the timeout passed, or the driver kept failing, with
/// events still waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("osprofiler: {remaining} notifications not delivered before the flush timeout")]
pub struct FlushError {
    /// Events still waiting for the driver.
    pub remaining: usize,
}

/// Hands this thread's buffered events over and waits, at most `timeout`,
/// until everything queued so far has reached the driver.
pub fn flush(timeout: Duration) -> Result<(), FlushError> {
    local::hand_over();
    collector::flush(timeout).map_err(|remaining| FlushError { remaining })
}

/// Installs `driver` and returns a guard that flushes on drop, for `main`.
pub fn install(driver: impl Driver) -> FlushGuard {
    set(driver);
    FlushGuard::new(Duration::from_secs(5))
}

/// Flushes pending notifications when dropped, waiting at most its
/// timeout so shutdown cannot hang on an unreachable collector.
#[must_use = "notifications are flushed when the guard is dropped"]
#[derive(Debug)]
pub struct FlushGuard {
    timeout: Duration,
}

impl FlushGuard {
    /// A guard that waits at most `timeout` on drop.
    pub fn new(timeout: Duration) -> FlushGuard {
        FlushGuard { timeout }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Err(e) = flush(self.timeout) {
            log::warn!("{e}");
        }
    }
}
