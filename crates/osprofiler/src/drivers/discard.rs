//! A driver that drops everything it is handed.

use super::Driver;
use crate::notification::{Event, Notification};
use crate::Result;

/// Accepts every notification and keeps none.
///
/// For measuring what tracing costs the traced program itself (benchmarks,
/// overhead checks), with no storage or I/O behind it. It stores nothing,
/// so it cannot answer [`get_events`](Driver::get_events).
///
/// ```
/// use osprofiler::{drivers::DiscardDriver, notifier, profiler};
///
/// notifier::set(DiscardDriver);
/// profiler::init("SECRET_KEY", None, None);
/// profiler::start("work", None);
/// profiler::stop(None);
/// # profiler::clean();
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardDriver;

impl Driver for DiscardDriver {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn notify(&self, _: &[Notification]) -> Result<()> {
        Ok(())
    }

    // Overridden so that events are not even converted.
    fn notify_events(&self, _: &[Event<'_>]) -> Result<()> {
        Ok(())
    }
}
