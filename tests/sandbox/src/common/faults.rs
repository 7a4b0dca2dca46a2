//! Fault injection: rules matched by method + path pattern that answer with a canned error, add
//! latency, swallow the response after the write happened, or hang like a timeout.

use super::prng::Prng;
use super::server::ConnectionControl;
use super::sync::lock;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a matching rule does to the request.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with `status` + `body` (+ `headers`) without reaching the API.
    #[default]
    Respond,
    /// Wait `latency_ms`, then handle the request normally.
    Delay,
    /// Handle the request (the write happens), then close the connection without answering.
    DropResponse,
    /// Handle the request (the write happens), then hold the answer for `latency_ms` before
    /// sending it: a window in which the caller can be stopped after the write.
    DelayAnswer,
    /// Hold the request for `latency_ms` (default 130 s), then close the connection; nothing is written.
    Timeout,
}

/// A rule as posted to `/_sandbox/faults`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FaultRuleSpec {
    /// HTTP method to match; absent or `*` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters (including `/`). Query strings are not matched.
    pub path: String,
    #[serde(default)]
    pub action: FaultAction,
    #[serde(default)]
    pub status: Option<u16>,
    /// JSON value, or a string sent verbatim.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Apply to this many matching requests, then retire. Absent = forever.
    #[serde(default)]
    pub times: Option<u32>,
    /// Apply to a matching request with this probability (deterministic PRNG).
    #[serde(default)]
    pub probability: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultRule {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultRuleSpec,
    pub hits: u32,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<FaultRule>,
    next_id: u64,
    prng: Prng,
}

/// The active fault rules of one API.
#[derive(Debug)]
pub struct FaultSet {
    inner: Mutex<Inner>,
}

impl Default for FaultSet {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                rules: Vec::new(),
                next_id: 1,
                prng: Prng::new(0x5eed),
            }),
        }
    }
}

impl FaultSet {
    pub fn add(&self, spec: FaultRuleSpec) -> FaultRule {
        let mut inner = lock(&self.inner);
        let rule = FaultRule {
            id: inner.next_id,
            spec,
            hits: 0,
        };
        inner.next_id += 1;
        inner.rules.push(rule.clone());
        rule
    }

    pub fn list(&self) -> Vec<FaultRule> {
        lock(&self.inner).rules.clone()
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut inner = lock(&self.inner);
        let before = inner.rules.len();
        inner.rules.retain(|r| r.id != id);
        inner.rules.len() != before
    }

    pub fn clear(&self) {
        lock(&self.inner).rules.clear();
    }

    /// Finds the first rule that fires for this request, counting the hit.
    pub fn take_match(&self, method: &str, path: &str) -> Option<FaultRuleSpec> {
        let mut inner = lock(&self.inner);
        let Inner { rules, prng, .. } = &mut *inner;
        let mut fired = None;
        for (index, rule) in rules.iter_mut().enumerate() {
            let method_ok = match rule.spec.method.as_deref() {
                None | Some("*") => true,
                Some(m) => m.eq_ignore_ascii_case(method),
            };
            if !method_ok || !glob_match(&rule.spec.path, path) {
                continue;
            }
            if let Some(p) = rule.spec.probability {
                if !prng.chance(p) {
                    continue;
                }
            }
            rule.hits += 1;
            fired = Some((index, rule.spec.clone()));
            break;
        }
        let (index, spec) = fired?;
        if let Some(times) = spec.times {
            if rules[index].hits >= times {
                rules.remove(index);
            }
        }
        Some(spec)
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Axum middleware applying the fault rules; control paths (`/_sandbox/`) are exempt.
pub async fn fault_layer(
    State(faults): State<Arc<FaultSet>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sandbox") {
        return next.run(request).await;
    }
    let Some(rule) = faults.take_match(request.method().as_str(), &path) else {
        return next.run(request).await;
    };
    let connection = request.extensions().get::<ConnectionControl>().cloned();
    match rule.action {
        FaultAction::Respond => {
            if let Some(ms) = rule.latency_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            canned_response(&rule)
        }
        FaultAction::Delay => {
            tokio::time::sleep(Duration::from_millis(rule.latency_ms.unwrap_or(0))).await;
            next.run(request).await
        }
        FaultAction::DropResponse => {
            if let Some(ms) = rule.latency_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let response = next.run(request).await;
            drop(response);
            hang_up(connection).await
        }
        FaultAction::DelayAnswer => {
            let response = next.run(request).await;
            tokio::time::sleep(Duration::from_millis(rule.latency_ms.unwrap_or(0))).await;
            response
        }
        FaultAction::Timeout => {
            tokio::time::sleep(Duration::from_millis(rule.latency_ms.unwrap_or(130_000))).await;
            hang_up(connection).await
        }
    }
}

async fn hang_up(connection: Option<ConnectionControl>) -> Response {
    match connection {
        Some(connection) => {
            connection.drop_connection();
            // The connection task drops this future once it sees the signal.
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        // Without our server loop (e.g. a bare router in a unit test) answer with a broken body.
        None => {
            let stream = futures::stream::once(async {
                Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("response dropped"))
            });
            Response::new(Body::from_stream(stream))
        }
    }
}

fn canned_response(rule: &FaultRuleSpec) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (body, content_type) = match &rule.body {
        None => (String::new(), None),
        Some(Value::String(s)) => (s.clone(), None),
        Some(v) => (v.to_string(), Some("application/json")),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(ct),
        );
    }
    for (name, value) in &rule.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> FaultRuleSpec {
        serde_json::from_value(serde_json::json!({"path": path})).expect("valid spec")
    }

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob_match(
            "/v3/company/*/invoice",
            "/v3/company/123/invoice"
        ));
        assert!(!glob_match(
            "/v3/company/*/invoice",
            "/v3/company/123/invoices"
        ));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/v3/*/query*", "/v3/company/1/query"));
        assert!(!glob_match("/a", "/b"));
    }

    #[test]
    fn counted_rules_retire() {
        let set = FaultSet::default();
        let mut s = spec("/x");
        s.times = Some(2);
        set.add(s);
        assert!(set.take_match("GET", "/x").is_some());
        assert!(set.take_match("GET", "/x").is_some());
        assert!(set.take_match("GET", "/x").is_none());
    }

    #[test]
    fn method_filter_applies() {
        let set = FaultSet::default();
        let mut s = spec("/x");
        s.method = Some("POST".into());
        set.add(s);
        assert!(set.take_match("GET", "/x").is_none());
        assert!(set.take_match("post", "/x").is_some());
    }
}
