//! The clock of recorded events: minstant's cycle counter with the `tsc`
//! feature (default), else the OS monotonic clock.
//!
//! minstant calibrates the cycle counter when a program starts (a
//! constructor, run whether or not the program ever records anything:
//! ~20 ms). A long-running service pays it once for a clock read in a few
//! ns; a short command such as `osprofiler trace show` does not want it.

#[cfg(feature = "tsc")]
pub(crate) use self::tsc::{Anchor, Instant};

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

        /// Microseconds since the Unix epoch of `instant`.
        #[inline]
        pub(crate) fn unix_micros(&self, instant: Instant) -> i64 {
            // Offsets from the anchor fit in an i64 (292 years of ns).
            let offset = instant.0.wrapping_sub(self.at.0) as i64;
            let nanos = (self.unix_nanos as i64).saturating_add(offset);
            nanos.div_euclid(1_000)
        }
    }
}

#[cfg(feature = "tsc")]
mod tsc {
    use std::hash::{Hash, Hasher};
    use std::time::Duration;

    pub(crate) use minstant::Instant;

    /// minstant's cycle counter and the wall clock read together, with
    /// what turns cycles into nanoseconds as an integer factor: minstant's
    /// own conversion goes through `f64` and costs the collector about 20
    /// instructions per event, this one about 5.
    #[derive(Clone, Copy)]
    pub(crate) struct Anchor {
        anchor: minstant::Anchor,
        /// An instant, in cycles, and its Unix time in microseconds times
        /// 2^48 (a fixed-point number: no division per event).
        cycles: u64,
        unix_micros_q48: i128,
        /// Microseconds per cycle, times 2^48; `None` when the cycle count
        /// cannot be read (see [`cycles`]), and minstant converts instead.
        /// An `i64`, so that the product with a cycle offset is one
        /// widening multiplication.
        micros_per_cycle_q48: Option<i64>,
    }

    /// The cycle count of `instant`. minstant keeps it private; its derived
    /// `Hash` hands it to the hasher as one `u64`, which this reads.
    /// [`Anchor::new`] checks the result against minstant's own
    /// conversion and does without it when they disagree.
    fn cycles(instant: &Instant) -> Option<u64> {
        #[derive(Default)]
        struct Capture {
            value: Option<u64>,
            writes: u32,
        }
        impl Hasher for Capture {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, _: &[u8]) {
                self.writes += 1;
            }
            fn write_u64(&mut self, value: u64) {
                self.value = Some(value);
                self.writes += 1;
            }
        }
        let mut capture = Capture::default();
        instant.hash(&mut capture);
        capture.value.filter(|_| capture.writes == 1)
    }

    impl Anchor {
        pub(crate) fn new() -> Anchor {
            let anchor = minstant::Anchor::new();
            let now = Instant::now();
            let unix_nanos = now.as_unix_nanos(&anchor);
            let mut this = Anchor {
                anchor,
                cycles: 0,
                unix_micros_q48: (i128::from(unix_nanos) << 48) / 1_000,
                micros_per_cycle_q48: None,
            };
            // The factor, from minstant's conversion over a long span so
            // that rounding does not matter.
            const SPAN: Duration = Duration::from_secs(1_000);
            let (Some(later), Some(now_cycles)) = (now.checked_add(SPAN), cycles(&now)) else {
                return this;
            };
            let Some(later_cycles) = cycles(&later).filter(|&c| c > now_cycles) else {
                return this;
            };
            let span_nanos = later.as_unix_nanos(&anchor).saturating_sub(unix_nanos);
            let span_cycles = i128::from(later_cycles - now_cycles);
            this.cycles = now_cycles;
            this.micros_per_cycle_q48 =
                i64::try_from((i128::from(span_nanos) << 48) / (span_cycles * 1_000)).ok();
            // Both conversions must agree (to the microsecond) on an instant
            // read now, or the integer one is not used.
            let check = Instant::now();
            let theirs = (check.as_unix_nanos(&anchor) / 1_000) as i64;
            if (this.unix_micros(check) - theirs).abs() > 1 {
                this.micros_per_cycle_q48 = None;
            }
            this
        }

        /// Microseconds since the Unix epoch of `instant`.
        #[inline]
        pub(crate) fn unix_micros(&self, instant: Instant) -> i64 {
            let Some((factor, cycles)) = self.micros_per_cycle_q48.zip(cycles(&instant)) else {
                return (instant.as_unix_nanos(&self.anchor) / 1_000) as i64;
            };
            // Cycle offsets from the anchor fit in an i64, the product in
            // an i128; the shift floors, as Python's timestamps do.
            let delta = i128::from(cycles.wrapping_sub(self.cycles) as i64);
            ((self.unix_micros_q48 + delta * i128::from(factor)) >> 48) as i64
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn integer_conversion_is_used_and_agrees_with_minstant() {
            // One reading before the anchor, to convert backwards too.
            let earlier = Instant::now();
            std::thread::sleep(Duration::from_millis(2));
            let anchor = Anchor::new();
            if minstant::is_tsc_available() {
                assert!(anchor.micros_per_cycle_q48.is_some());
            }
            let now = Instant::now();
            for instant in [earlier, now, now + Duration::from_secs(3_600)] {
                let theirs = (instant.as_unix_nanos(&anchor.anchor) / 1_000) as i64;
                assert!((anchor.unix_micros(instant) - theirs).abs() <= 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn unix_micros_follow_the_wall_clock() {
        let anchor = Anchor::new();
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let micros = anchor.unix_micros(Instant::now());
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(
            micros + 1_000 >= before.as_micros() as i64,
            "{micros} {before:?}"
        );
        assert!(
            micros <= after.as_micros() as i64 + 1_000,
            "{micros} {after:?}"
        );
    }
}
