//! The clock of recorded events: minstant's cycle counter with the `tsc`
//! feature (default), else the OS monotonic clock.
//!
//! minstant calibrates the cycle counter when a program starts (a
//! constructor, run whether or not the program ever records anything:
//! ~20 ms). A long-running service pays it once for a clock read in a few
//! ns; a short command such as `osprofiler trace show` does not want it.

#[cfg(feature = "tsc")]
pub(crate) use minstant::{Anchor, Instant};

#[cfg(not(feature = "tsc"))]
pub(crate) use self::os::{Anchor, Instant};

#[cfg(not(feature = "tsc"))]
mod os {
    use std::sync::OnceLock;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The first reading in this process: instants are kept as a `u64`
    /// offset from it, as small as minstant's.
    fn origin() -> std::time::Instant {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    fn nanos(d: std::time::Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since the process's first reading of the clock.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub(crate) struct Instant(u64);

    impl Instant {
        pub(crate) const ZERO: Instant = Instant(0);

        pub(crate) fn now() -> Instant {
            Instant(nanos(origin().elapsed()))
        }

        /// Nanoseconds since the Unix epoch, through a reading of both
        /// clocks.
        pub(crate) fn as_unix_nanos(&self, anchor: &Anchor) -> u64 {
            if self.0 >= anchor.at.0 {
                anchor.unix_nanos.saturating_add(self.0 - anchor.at.0)
            } else {
                anchor.unix_nanos.saturating_sub(anchor.at.0 - self.0)
            }
        }
    }

    /// The monotonic and the wall clock read together.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Anchor {
        at: Instant,
        unix_nanos: u64,
    }

    impl Anchor {
        pub(crate) fn new() -> Anchor {
            let at = Instant::now();
            let unix_nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, nanos);
            Anchor { at, unix_nanos }
        }
    }
}
