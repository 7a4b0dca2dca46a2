//! Control-API building blocks shared by every simulated API: the services each API owns
//! (clock, faults, recorder, latency) and the `/_sandbox/...` routes that drive them.

use super::clock::SandboxClock;
use super::faults::{FaultRuleSpec, FaultSet};
use super::latency::{LatencyProfile, LatencySettings};
use super::recorder::Recorder;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The protocol-independent services of one simulated API.
#[derive(Clone, Debug)]
pub struct Services {
    pub clock: SandboxClock,
    pub faults: Arc<FaultSet>,
    pub recorder: Arc<Recorder>,
    pub latency: Arc<LatencyProfile>,
}

impl Services {
    /// `tid_headers`: response headers that carry the per-request transaction id.
    pub fn new(
        clock: SandboxClock,
        tid_headers: &[&'static str],
        latency: LatencySettings,
    ) -> Self {
        Self {
            recorder: Arc::new(Recorder::new(clock.clone(), tid_headers, 10_000)),
            clock,
            faults: Arc::new(FaultSet::default()),
            latency: Arc::new(LatencyProfile::new(latency)),
        }
    }

    /// Clears faults, counters and the log (the clock is shared between APIs and kept).
    pub fn reset(&self) {
        self.faults.clear();
        self.recorder.clear();
    }
}

/// Routes under `/_sandbox`: faults, requests, counters, clock, latency.
pub fn routes(services: Services) -> Router {
    Router::new()
        .route(
            "/_sandbox/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/_sandbox/faults/{id}", delete(remove_fault))
        .route(
            "/_sandbox/requests",
            get(request_log).delete(clear_requests),
        )
        .route("/_sandbox/counters", get(counters))
        .route("/_sandbox/clock", get(clock).post(set_clock))
        .route("/_sandbox/latency", get(latency).post(set_latency))
        .with_state(services)
}

/// A JSON error for the control API itself (not an API-fidelity fault).
pub fn control_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn list_faults(State(s): State<Services>) -> Json<Value> {
    Json(json!({"rules": s.faults.list()}))
}

/// Accepts one rule or an array of rules.
async fn add_faults(State(s): State<Services>, Json(body): Json<Value>) -> Response {
    let specs: Result<Vec<FaultRuleSpec>, _> = match body {
        Value::Array(_) => serde_json::from_value(body),
        other => serde_json::from_value(other).map(|one| vec![one]),
    };
    match specs {
        Ok(specs) => {
            let rules: Vec<_> = specs.into_iter().map(|spec| s.faults.add(spec)).collect();
            (StatusCode::CREATED, Json(json!({"rules": rules}))).into_response()
        }
        Err(err) => control_error(
            StatusCode::BAD_REQUEST,
            format!("invalid fault rule: {err}"),
        ),
    }
}

async fn clear_faults(State(s): State<Services>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(s): State<Services>, Path(id): Path<u64>) -> StatusCode {
    if s.faults.remove(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn request_log(State(s): State<Services>, Query(q): Query<Since>) -> Json<Value> {
    Json(json!({"requests": s.recorder.log(q.since)}))
}

async fn clear_requests(State(s): State<Services>) -> StatusCode {
    s.recorder.clear();
    StatusCode::NO_CONTENT
}

async fn counters(State(s): State<Services>) -> Json<Value> {
    Json(json!({"endpoints": s.recorder.counters()}))
}

fn clock_json(s: &Services) -> Value {
    json!({
        "now": s.clock.now().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "offset_seconds": s.clock.offset().whole_seconds(),
    })
}

async fn clock(State(s): State<Services>) -> Json<Value> {
    Json(clock_json(&s))
}

#[derive(Deserialize)]
struct ClockChange {
    offset_seconds: Option<i64>,
    advance_seconds: Option<i64>,
}

async fn set_clock(State(s): State<Services>, Json(change): Json<ClockChange>) -> Response {
    match (change.offset_seconds, change.advance_seconds) {
        (Some(offset), None) => s.clock.set_offset(time::Duration::seconds(offset)),
        (None, Some(by)) => s.clock.advance(time::Duration::seconds(by)),
        _ => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "send exactly one of offset_seconds or advance_seconds",
            )
        }
    }
    Json(clock_json(&s)).into_response()
}

async fn latency(State(s): State<Services>) -> Json<LatencySettings> {
    Json(s.latency.settings())
}

async fn set_latency(
    State(s): State<Services>,
    Json(settings): Json<LatencySettings>,
) -> Json<LatencySettings> {
    s.latency.set(settings);
    Json(settings)
}
