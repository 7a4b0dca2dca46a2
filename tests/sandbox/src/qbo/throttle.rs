//! QBO throttling per realm: 500 requests/minute, 10 concurrent, 40 batch requests/minute.
//! Refusals are 429 with the ThrottleExceeded fault (code 3001).

use super::app::AppState;
use super::fault::Fault;
use crate::common::ratelimit::{InFlight, SlidingWindow};
use crate::common::sync::lock;
use crate::common::SandboxClock;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use time::Duration;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ThrottleLimits {
    pub enabled: bool,
    pub per_minute: u32,
    pub concurrent: u32,
    pub batch_per_minute: u32,
    /// Multiplies every limit (e.g. 10 for benchmarks that must not be throttled like a real app).
    pub scale: f64,
    /// `Retry-After` seconds sent with a 429 (whether Intuit sends one is unconfirmed: none by
    /// default).
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// Answer a 429 with Intuit's older XML throttle body instead of the JSON fault (which of the
    /// two Intuit sends today is unconfirmed: JSON by default).
    #[serde(default)]
    pub xml_body: bool,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_minute: 500,
            concurrent: 10,
            batch_per_minute: 40,
            scale: 1.0,
            retry_after_seconds: None,
            xml_body: false,
        }
    }
}

impl ThrottleLimits {
    fn scaled(&self, limit: u32) -> u32 {
        let scaled = (f64::from(limit) * self.scale).ceil();
        if scaled >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            (scaled as u32).max(1)
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    limits: Mutex<ThrottleLimits>,
    requests: SlidingWindow,
    batches: SlidingWindow,
    in_flight: InFlight,
    clock: SandboxClock,
}

impl Throttle {
    pub fn new(limits: ThrottleLimits, clock: SandboxClock) -> Self {
        Self {
            limits: Mutex::new(limits),
            requests: SlidingWindow::default(),
            batches: SlidingWindow::default(),
            in_flight: InFlight::default(),
            clock,
        }
    }

    pub fn limits(&self) -> ThrottleLimits {
        lock(&self.limits).clone()
    }

    pub fn set_limits(&self, limits: ThrottleLimits) {
        *lock(&self.limits) = limits;
    }

    /// Forgets past requests (reset).
    pub fn clear(&self) {
        self.requests.clear();
        self.batches.clear();
    }
}

/// The realm of a data-API path, `/v3/company/{realm}/…`.
fn realm_of(path: &str) -> Option<&str> {
    path.strip_prefix("/v3/company/")?
        .split('/')
        .next()
        .filter(|r| !r.is_empty())
}

pub async fn throttle_layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(realm) = realm_of(&path).map(str::to_string) else {
        return next.run(request).await;
    };
    let throttle = &app.throttle;
    let limits = throttle.limits();
    if !limits.enabled {
        return next.run(request).await;
    }
    let Some(_slot) = throttle
        .in_flight
        .try_enter(&realm, limits.scaled(limits.concurrent))
    else {
        return refuse(&app, &limits);
    };
    let now = throttle.clock.now();
    let minute = Duration::minutes(1);
    if throttle
        .requests
        .try_hit(&realm, limits.scaled(limits.per_minute), minute, now)
        .is_err()
    {
        return refuse(&app, &limits);
    }
    if path.ends_with("/batch")
        && throttle
            .batches
            .try_hit(&realm, limits.scaled(limits.batch_per_minute), minute, now)
            .is_err()
    {
        return refuse(&app, &limits);
    }
    next.run(request).await
}

/// The 429 answer, in the configured body format and with `Retry-After` when configured.
fn refuse(app: &AppState, limits: &ThrottleLimits) -> Response {
    let mut response = if limits.xml_body {
        let xml = format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
                r#"<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{}">"#,
                r#"<Fault type="SERVICE"><Error code="3001">"#,
                "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>",
                "<Detail>The request limit was reached.  Try again later</Detail>",
                "</Error></Fault></IntuitResponse>"
            ),
            app.now_text()
        );
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/xml")],
            xml,
        )
            .into_response()
    } else {
        app.fault(&Fault::throttled())
    };
    if let Some(seconds) = limits.retry_after_seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_is_read_from_the_path() {
        assert_eq!(realm_of("/v3/company/123/invoice"), Some("123"));
        assert_eq!(realm_of("/oauth2/v1/tokens/bearer"), None);
    }

    #[test]
    fn scale_multiplies_limits() {
        let l = ThrottleLimits {
            scale: 10.0,
            ..ThrottleLimits::default()
        };
        assert_eq!(l.scaled(500), 5000);
        let tiny = ThrottleLimits {
            scale: 0.001,
            ..ThrottleLimits::default()
        };
        assert_eq!(tiny.scaled(10), 1);
    }
}
