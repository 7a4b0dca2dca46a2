//! Deal pipelines (read-only): the default "Sales Pipeline" with HubSpot's default stage ids, so
//! clients can resolve `dealstage`/`pipeline` values.

use super::app::AppState;
use super::crm::{caller_for, object_type};
use super::error::{ApiError, ApiResult};
use super::format::iso;
use super::objects::ObjectType;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

const DEAL_STAGES: &[(&str, &str, &str, bool)] = &[
    (
        "appointmentscheduled",
        "Appointment Scheduled",
        "0.2",
        false,
    ),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", false),
    (
        "presentationscheduled",
        "Presentation Scheduled",
        "0.6",
        false,
    ),
    (
        "decisionmakerboughtin",
        "Decision Maker Bought-In",
        "0.8",
        false,
    ),
    ("contractsent", "Contract Sent", "0.9", false),
    ("closedwon", "Closed Won", "1.0", true),
    ("closedlost", "Closed Lost", "0.0", true),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/pipelines/{object_type}", get(list))
        .route("/crm/v3/pipelines/{object_type}/{pipeline_id}", get(read))
}

fn default_pipeline(created: &str) -> Value {
    let stages: Vec<Value> = DEAL_STAGES
        .iter()
        .enumerate()
        .map(|(i, (id, label, probability, closed))| {
            json!({"id": id, "label": label, "displayOrder": i, "archived": false,
                   "createdAt": created, "updatedAt": created,
                   "metadata": {"probability": probability, "isClosed": closed.to_string()}})
        })
        .collect();
    json!({"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false,
           "createdAt": created, "updatedAt": created, "stages": stages})
}

fn pipelines(t: ObjectType, created: &str) -> Result<Vec<Value>, ApiError> {
    match t {
        ObjectType::Deals => Ok(vec![default_pipeline(created)]),
        other => Err(ApiError::validation(format!(
            "{} do not have pipelines in this sandbox",
            other.name()
        ))),
    }
}

async fn list(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    caller_for(&app, &headers, t, false)?;
    let created = iso(time::OffsetDateTime::UNIX_EPOCH);
    Ok(Json(json!({"results": pipelines(t, &created)?})).into_response())
}

async fn read(
    State(app): State<AppState>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    caller_for(&app, &headers, t, false)?;
    let created = iso(time::OffsetDateTime::UNIX_EPOCH);
    pipelines(t, &created)?
        .into_iter()
        .find(|p| p["id"] == id.as_str())
        .map(|p| Json(p).into_response())
        .ok_or_else(|| ApiError::not_found(format!("Pipeline {id} not found")))
}
