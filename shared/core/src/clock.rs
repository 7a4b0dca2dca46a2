//! The one clock of the crate. Everything that needs "now" takes a [`Clock`], so tests move time
//! instead of waiting for it.

use std::fmt;
use std::sync::Arc;

use time::{Date, OffsetDateTime};

/// Milliseconds since the Unix epoch, from the wall clock or from a test.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock(Arc::new(|| {
            (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
        }))
    }

    /// A clock that reads `now_ms`.
    pub fn from_fn(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now_ms))
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }

    pub fn now_seconds(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Today's date in UTC.
    pub fn today(&self) -> Date {
        utc_date(self.now_seconds()).unwrap_or(OffsetDateTime::UNIX_EPOCH.date())
    }
}

/// The UTC date of an epoch-seconds instant; `None` outside the calendar `time` supports.
pub fn utc_date(epoch_seconds: i64) -> Option<Date> {
    OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .ok()
        .map(|t| t.date())
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// A clock that tests set and move.
#[cfg(any(test, feature = "test-util"))]
#[derive(Clone, Default)]
pub struct ManualClock(Arc<std::sync::atomic::AtomicI64>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    pub fn at_ms(now_ms: i64) -> Self {
        ManualClock(Arc::new(std::sync::atomic::AtomicI64::new(now_ms)))
    }

    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::from_fn(move || now.load(std::sync::atomic::Ordering::SeqCst))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.advance_ms(seconds * 1000);
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let manual = ManualClock::at_ms(1_741_910_400_999);
        let clock = manual.clock();
        assert_eq!(clock.now_seconds(), 1_741_910_400);
        assert_eq!(clock.today(), date!(2025 - 03 - 14));
        manual.advance_seconds(86_400);
        assert_eq!(clock.today(), date!(2025 - 03 - 15));
        assert_eq!(utc_date(i64::MAX), None);
    }
}
