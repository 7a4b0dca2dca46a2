//! When and how long to wait before calling a provider again.

use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// The longest wait honoured inside one invocation; a longer one goes back to the queue, which
/// redelivers after that delay instead (see `queue::batch`).
pub const MAX_IN_PROCESS_WAIT: Duration = Duration::from_secs(3);
/// Retries of one call inside one invocation (transient failures only).
pub const MAX_IN_PROCESS_RETRIES: u32 = 2;

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means no wait; anything unreadable is ignored.
pub fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        wait.unsigned_abs()
    })
}

/// Exponential backoff with full jitter: a random wait in `[0, min(cap, base × 2^attempt)]`, so
/// workers that failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(cap);
    let millis = ceiling.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(OsRng.next_u64() % (millis + 1))
}

/// What an HTTP status says about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    /// 429: wait (the provider's delay when it names one) and try again.
    Throttled,
    /// 5xx: a passing failure of the provider.
    Transient,
    /// 401: the access token is not accepted (refresh once).
    Unauthorized,
    /// Any other 4xx: the request itself is refused.
    Refused,
}

pub fn classify(status: StatusCode) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Success,
        429 => StatusClass::Throttled,
        401 => StatusClass::Unauthorized,
        500..=599 => StatusClass::Transient,
        _ => StatusClass::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = datetime!(2026-12-01 10:00:00 UTC);
        let cases: &[(Option<&str>, Option<Duration>)] = &[
            (None, None),
            (Some("7"), Some(Duration::from_secs(7))),
            (Some(" 0 "), Some(Duration::ZERO)),
            (
                Some("Tue, 01 Dec 2026 10:01:30 GMT"),
                Some(Duration::from_secs(90)),
            ),
            (Some("Tue, 01 Dec 2026 09:00:00 GMT"), Some(Duration::ZERO)),
            (Some("soon"), None),
            (Some("-3"), None),
        ];
        for (header, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = header {
                headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(retry_after(&headers, now), *expected, "{header:?}");
        }
    }

    #[test]
    fn backoff_stays_under_its_growing_ceiling() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 0..30 {
            let ceiling = (base * 2u32.saturating_pow(attempt.min(20))).min(cap);
            for _ in 0..50 {
                assert!(backoff(attempt, base, cap) <= ceiling, "attempt {attempt}");
            }
        }
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff(5, base, cap)).collect();
        assert!(spread.len() > 5, "jittered, not fixed: {spread:?}");
        assert_eq!(backoff(3, Duration::ZERO, cap), Duration::ZERO);
    }

    #[test]
    fn statuses_are_classified() {
        let cases = [
            (200, StatusClass::Success),
            (207, StatusClass::Success),
            (400, StatusClass::Refused),
            (401, StatusClass::Unauthorized),
            (403, StatusClass::Refused),
            (404, StatusClass::Refused),
            (429, StatusClass::Throttled),
            (500, StatusClass::Transient),
            (503, StatusClass::Transient),
        ];
        for (status, class) in cases {
            assert_eq!(
                classify(StatusCode::from_u16(status).unwrap()),
                class,
                "{status}"
            );
        }
    }
}
