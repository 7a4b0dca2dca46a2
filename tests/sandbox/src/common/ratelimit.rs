//! Rate-limit building blocks: sliding request windows (measured on the sandbox clock, so tests can
//! roll a window forward) and in-flight counters for concurrency limits.

use super::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// Counts events per key over a sliding window.
#[derive(Debug, Default)]
pub struct SlidingWindow {
    hits: Mutex<HashMap<String, VecDeque<OffsetDateTime>>>,
}

impl SlidingWindow {
    /// Records a hit unless `limit` hits already happened within `window` before `now`.
    /// On refusal returns how long until a slot frees up.
    pub fn try_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<(), Duration> {
        self.try_hit_remaining(key, limit, window, now).map(|_| ())
    }

    /// Like `try_hit`, but on success also says how many hits the window still allows.
    pub fn try_hit_remaining(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<u32, Duration> {
        let mut hits = lock(&self.hits);
        let queue = hits.entry(key.to_string()).or_default();
        // Entries in the future (clock moved back) or older than the window no longer count.
        queue.retain(|t| *t > now - window && *t <= now);
        if queue.len() >= limit as usize {
            let oldest = queue.front().copied().unwrap_or(now);
            return Err((oldest + window) - now);
        }
        queue.push_back(now);
        Ok(limit.saturating_sub(u32::try_from(queue.len()).unwrap_or(u32::MAX)))
    }

    pub fn clear(&self) {
        lock(&self.hits).clear();
    }
}

/// Counts in-flight requests per key.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

/// Releases its slot when dropped (also when the client disconnects mid-request).
#[derive(Debug)]
pub struct InFlightGuard {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl InFlight {
    pub fn try_enter(&self, key: &str, limit: u32) -> Option<InFlightGuard> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(key.to_string()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            counts: self.counts.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(c) = counts.get_mut(&self.key) {
            *c = c.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_over_limit_and_recovers() {
        let w = SlidingWindow::default();
        let t0 = OffsetDateTime::now_utc();
        for _ in 0..3 {
            assert!(w.try_hit("r", 3, Duration::minutes(1), t0).is_ok());
        }
        assert!(w.try_hit("r", 3, Duration::minutes(1), t0).is_err());
        assert!(w.try_hit("other", 3, Duration::minutes(1), t0).is_ok());
        assert!(w
            .try_hit("r", 3, Duration::minutes(1), t0 + Duration::seconds(61))
            .is_ok());
    }

    #[test]
    fn in_flight_releases_on_drop() {
        let f = InFlight::default();
        let a = f.try_enter("r", 1);
        assert!(a.is_some());
        assert!(f.try_enter("r", 1).is_none());
        drop(a);
        assert!(f.try_enter("r", 1).is_some());
    }
}
