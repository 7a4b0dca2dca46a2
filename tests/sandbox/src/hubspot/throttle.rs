//! Rate limits per app + portal: a rolling 10-second window (default 110 requests), an optional
//! daily limit, and the search API's per-second limit. Answers 429 with HubSpot's rate-limit
//! body and `X-HubSpot-RateLimit-*` headers (search responses carry none).

use super::app::AppState;
use super::auth::bearer;
use super::error::{correlation_id, ApiError};
use crate::common::ratelimit::SlidingWindow;
use crate::common::sync::lock;
use crate::common::SandboxClock;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use time::{Date, Duration};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RateLimits {
    pub enabled: bool,
    /// Requests per rolling window per app + portal (public apps: 110 per 10 s; the exact value
    /// is unconfirmed, older docs say 100).
    pub burst_max: u32,
    pub burst_interval_ms: u64,
    /// Requests per UTC day per app + portal; `None` = no daily limit (OAuth apps have none).
    pub daily_max: Option<u32>,
    /// Search requests per second per app + portal (believed 5; historically 4).
    pub search_per_second: u32,
    /// Send `Retry-After` (seconds) on 429s — HubSpot's behaviour here is unconfirmed.
    pub retry_after: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            burst_max: 110,
            burst_interval_ms: 10_000,
            daily_max: None,
            search_per_second: 5,
            retry_after: false,
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    limits: Mutex<RateLimits>,
    burst: SlidingWindow,
    search: SlidingWindow,
    daily: Mutex<HashMap<(u64, Date), u32>>,
    clock: SandboxClock,
}

impl Throttle {
    pub fn new(limits: RateLimits, clock: SandboxClock) -> Self {
        Self {
            limits: Mutex::new(limits),
            burst: SlidingWindow::default(),
            search: SlidingWindow::default(),
            daily: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn limits(&self) -> RateLimits {
        lock(&self.limits).clone()
    }

    pub fn set_limits(&self, limits: RateLimits) {
        *lock(&self.limits) = limits;
    }

    pub fn clear(&self) {
        self.burst.clear();
        self.search.clear();
        lock(&self.daily).clear();
    }
}

fn is_search(path: &str) -> bool {
    (path.starts_with("/crm/v3/objects/") || path.starts_with("/crm/objects/2026-03/"))
        && path.ends_with("/search")
}

fn limited(policy: &str, message: &str, retry_after: Option<i64>) -> Response {
    let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", message)
        .with_extra("errorType", json!("RATE_LIMIT"))
        .with_extra("policyName", json!(policy))
        .with_extra("requestId", json!(uuid::Uuid::new_v4().to_string()));
    if let Some(s) = retry_after {
        err = err.with_header("Retry-After", s.max(1).to_string());
    }
    let _ = correlation_id();
    err.into_response()
}

fn set_headers(response: &mut Response, pairs: &[(&'static str, String)]) {
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
}

pub async fn throttle_layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sandbox") || path.starts_with("/oauth/") {
        return next.run(request).await;
    }
    let limits = app.throttle.limits();
    if !limits.enabled {
        return next.run(request).await;
    }
    let now = app.throttle.clock.now();
    let portal = bearer(request.headers()).and_then(|token| {
        lock(&app.state)
            .oauth
            .check_access(&token, now)
            .ok()
            .map(|g| g.portal_id)
    });
    let Some(portal) = portal else {
        return next.run(request).await;
    };
    let key = portal.to_string();
    if is_search(&path) {
        if let Err(wait) =
            app.throttle
                .search
                .try_hit(&key, limits.search_per_second, Duration::seconds(1), now)
        {
            return limited(
                "SECONDLY",
                "You have reached your secondly limit.",
                limits.retry_after.then(|| wait.whole_seconds()),
            );
        }
        return next.run(request).await;
    }
    let mut headers = Vec::new();
    if let Some(daily) = limits.daily_max {
        let used = {
            let mut map = lock(&app.throttle.daily);
            let count = map.entry((portal, now.date())).or_default();
            if *count >= daily {
                None
            } else {
                *count += 1;
                Some(*count)
            }
        };
        let Some(used) = used else {
            let midnight = now.date().next_day().map(|d| d.midnight().assume_utc());
            let mut response = limited(
                "DAILY",
                "You have reached your daily limit.",
                limits
                    .retry_after
                    .then(|| midnight.map_or(3600, |m| (m - now).whole_seconds())),
            );
            set_headers(
                &mut response,
                &[
                    ("x-hubspot-ratelimit-daily", daily.to_string()),
                    ("x-hubspot-ratelimit-daily-remaining", "0".into()),
                ],
            );
            return response;
        };
        headers.push(("x-hubspot-ratelimit-daily", daily.to_string()));
        headers.push((
            "x-hubspot-ratelimit-daily-remaining",
            daily.saturating_sub(used).to_string(),
        ));
    }
    let interval =
        Duration::milliseconds(i64::try_from(limits.burst_interval_ms).unwrap_or(10_000));
    headers.push(("x-hubspot-ratelimit-max", limits.burst_max.to_string()));
    headers.push((
        "x-hubspot-ratelimit-interval-milliseconds",
        limits.burst_interval_ms.to_string(),
    ));
    match app
        .throttle
        .burst
        .try_hit_remaining(&key, limits.burst_max, interval, now)
    {
        Ok(remaining) => {
            headers.push(("x-hubspot-ratelimit-remaining", remaining.to_string()));
            let mut response = next.run(request).await;
            set_headers(&mut response, &headers);
            response
        }
        Err(wait) => {
            headers.push(("x-hubspot-ratelimit-remaining", "0".into()));
            let mut response = limited(
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
                limits
                    .retry_after
                    .then(|| (wait.whole_milliseconds() as i64 + 999) / 1000),
            );
            set_headers(&mut response, &headers);
            response
        }
    }
}
