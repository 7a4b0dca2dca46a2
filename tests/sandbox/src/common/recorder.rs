//! Per-endpoint request counters and a bounded request log, plus the transaction-id header that
//! every response of a simulated API carries.

use super::clock::SandboxClock;
use super::sync::lock;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Query parameters whose values are secrets and never stored.
const SECRET_PARAMS: &[&str] = &[
    "code",
    "token",
    "refresh_token",
    "access_token",
    "client_secret",
    "hapikey",
];
/// Query parameters that distinguish endpoints sharing a path (e.g. `?operation=delete`).
const ENDPOINT_PARAMS: &[&str] = &["operation", "include"];

#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointCounter {
    pub count: u64,
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub at: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub endpoint: String,
    pub status: u16,
    pub duration_ms: u64,
    pub transaction_id: String,
}

#[derive(Debug)]
struct Inner {
    counters: BTreeMap<String, EndpointCounter>,
    log: VecDeque<LoggedRequest>,
    seq: u64,
}

/// Request counters and log of one API.
#[derive(Debug)]
pub struct Recorder {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Response headers that carry the transaction id (e.g. `intuit_tid`).
    tid_headers: Vec<HeaderName>,
    clock: SandboxClock,
}

impl Recorder {
    pub fn new(clock: SandboxClock, tid_headers: &[&'static str], capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                counters: BTreeMap::new(),
                log: VecDeque::new(),
                seq: 0,
            }),
            capacity,
            tid_headers: tid_headers
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            clock,
        }
    }

    pub fn counters(&self) -> BTreeMap<String, EndpointCounter> {
        lock(&self.inner).counters.clone()
    }

    /// Log entries with `seq > since`.
    pub fn log(&self, since: u64) -> Vec<LoggedRequest> {
        lock(&self.inner)
            .log
            .iter()
            .filter(|r| r.seq > since)
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        inner.counters.clear();
        inner.log.clear();
    }

    fn record(&self, mut entry: LoggedRequest) {
        let mut inner = lock(&self.inner);
        inner.seq += 1;
        entry.seq = inner.seq;
        let counter = inner.counters.entry(entry.endpoint.clone()).or_default();
        counter.count += 1;
        *counter.by_status.entry(entry.status).or_default() += 1;
        inner.log.push_back(entry);
        while inner.log.len() > self.capacity {
            inner.log.pop_front();
        }
    }
}

/// `GET /v3/company/{id}/invoice/{id}?operation=void` — digit-only segments become `{id}`.
pub fn endpoint_key(method: &str, path: &str, query: &str) -> String {
    let normalized: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    let mut key = format!("{method} {}", normalized.join("/"));
    let significant: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| ENDPOINT_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !significant.is_empty() {
        key.push('?');
        key.push_str(&significant.join("&"));
    }
    key
}

/// Paths that carry a token (HubSpot's token metadata endpoints) name it `{token}`.
fn redact_path(path: &str) -> String {
    let mut after_token_segment = false;
    path.split('/')
        .map(|seg| {
            let secret = after_token_segment && !seg.is_empty();
            after_token_segment = seg == "access-tokens" || seg == "refresh-tokens";
            if secret {
                "{token}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn redact_query(query: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
            let v = if SECRET_PARAMS.contains(&k.as_ref()) {
                "***".into()
            } else {
                v
            };
            (k, v)
        }))
        .finish()
}

/// Request extension: the transaction id the response will carry (APIs that also put it in
/// error bodies, like HubSpot's `correlationId`, read it from here).
#[derive(Clone, Debug)]
pub struct TransactionId(pub String);

/// Outermost middleware: stamps the transaction id, counts and logs the request.
pub async fn record_layer(
    State(recorder): State<Arc<Recorder>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let tid = uuid::Uuid::new_v4().to_string();
    request.extensions_mut().insert(TransactionId(tid.clone()));
    if path.starts_with("/_sandbox") {
        let mut response = next.run(request).await;
        stamp(&recorder, &mut response, &tid);
        return response;
    }
    let method = request.method().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let started = Instant::now();
    let at = recorder.clock.now();
    let mut response = next.run(request).await;
    stamp(&recorder, &mut response, &tid);
    recorder.record(LoggedRequest {
        seq: 0,
        at: at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        endpoint: endpoint_key(&method, &redact_path(&path), &query),
        method,
        path: redact_path(&path),
        query: redact_query(&query),
        status: response.status().as_u16(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        transaction_id: tid,
    });
    response
}

fn stamp(recorder: &Recorder, response: &mut Response, tid: &str) {
    if let Ok(value) = HeaderValue::from_str(tid) {
        for name in &recorder.tid_headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_collapse_ids_and_keep_operation() {
        assert_eq!(
            endpoint_key(
                "POST",
                "/v3/company/123/invoice",
                "minorversion=75&operation=delete"
            ),
            "POST /v3/company/{id}/invoice?operation=delete"
        );
        assert_eq!(
            endpoint_key("GET", "/v3/company/9/customer/42", ""),
            "GET /v3/company/{id}/customer/{id}"
        );
    }

    #[test]
    fn tokens_in_paths_are_redacted() {
        assert_eq!(
            redact_path("/oauth/v1/access-tokens/CNTuWgG0AFTK"),
            "/oauth/v1/access-tokens/{token}"
        );
        assert_eq!(
            redact_path("/oauth/v1/refresh-tokens/abc-123"),
            "/oauth/v1/refresh-tokens/{token}"
        );
        assert_eq!(
            redact_path("/crm/v3/objects/contacts"),
            "/crm/v3/objects/contacts"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let q = redact_query("code=abc&state=s&realmId=1");
        assert!(q.contains("code=***"));
        assert!(q.contains("state=s"));
    }
}
