//! The sandbox clock: wall time plus an offset that tests move forward to expire tokens,
//! roll rate-limit windows or age data, without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Shared by every API of one sandbox process; cloning shares the offset.
#[derive(Clone, Debug, Default)]
pub struct SandboxClock {
    offset_ms: Arc<AtomicI64>,
}

impl SandboxClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current sandbox time (UTC).
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset()
    }

    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    pub fn set_offset(&self, offset: Duration) {
        let ms = i64::try_from(offset.whole_milliseconds()).unwrap_or(i64::MAX);
        self.offset_ms.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = SandboxClock::new();
        let before = clock.now();
        clock.advance(Duration::hours(2));
        assert!(clock.now() - before >= Duration::hours(2));
        clock.set_offset(Duration::ZERO);
        assert!(clock.now() - before < Duration::hours(1));
    }
}
