//! HubSpot's webhooks management API for legacy public apps (`/webhooks/v3/{appId}/…`): the app's
//! target URL + throttling and its subscriptions. It edits the same `HubWebhooks` settings the
//! deliveries read (and the control API's `/_sandbox/webhooks` shows), so what an app registers
//! here is what the sandbox sends. Developer auth as the action definitions: `?hapikey=<developer
//! key>` (what the official clients send) or a valid token of the app.

use super::actions::developer;
use super::app::AppState;
use super::error::{parse_json, ApiError, ApiResult};
use super::webhooks::{Subscription, WebhookSettings, APP_UNINSTALL};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// HubSpot's limit on subscriptions per app.
const MAX_SUBSCRIPTIONS: usize = 1000;
/// Object types with their own event types; `ticket` is accepted though the sandbox has no
/// tickets (such subscriptions never fire).
const CRM_PREFIXES: [&str; 5] = ["contact", "company", "deal", "ticket", "line_item"];
const CRM_ACTIONS: [&str; 6] = [
    "creation",
    "deletion",
    "propertyChange",
    "merge",
    "restore",
    "associationChange",
];
/// Products have no `associationChange` in HubSpot's enum.
const PRODUCT_ACTIONS: [&str; 5] = ["creation", "deletion", "propertyChange", "merge", "restore"];
const PERIODS: [&str; 2] = ["SECONDLY", "ROLLING_MINUTE"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/v3/{app_id}/settings",
            get(read_settings)
                .put(configure_settings)
                .delete(clear_settings),
        )
        .route(
            "/webhooks/v3/{app_id}/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/webhooks/v3/{app_id}/subscriptions/batch/update",
            post(batch_update),
        )
        .route(
            "/webhooks/v3/{app_id}/subscriptions/{subscription_id}",
            get(read_subscription)
                .patch(patch_subscription)
                .delete(delete_subscription),
        )
}

/// HubSpot's `eventType` enum for legacy apps (conversation and `event.completed` types left out:
/// the sandbox has neither), plus the sandbox's lifecycle type [`APP_UNINSTALL`].
pub fn known_event_type(event_type: &str) -> bool {
    if event_type == "contact.privacyDeletion" || event_type == APP_UNINSTALL {
        return true;
    }
    match event_type.split_once('.') {
        Some(("product", action)) => PRODUCT_ACTIONS.contains(&action),
        Some(("object", action)) => CRM_ACTIONS.contains(&action),
        Some((prefix, action)) => CRM_PREFIXES.contains(&prefix) && CRM_ACTIONS.contains(&action),
        None => false,
    }
}

/// `0-53`, `2-1234`: the shape of an object type id.
fn object_type_id_shape(id: &str) -> bool {
    id.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The checks HubSpot makes on a new subscription, with messages that say what to fix.
pub fn validate_subscription(
    event_type: &str,
    property_name: Option<&str>,
    object_type_id: Option<&str>,
) -> Result<(), ApiError> {
    if !known_event_type(event_type) {
        return Err(ApiError::validation(format!(
            "Invalid eventType '{event_type}': expected one of {{contact,company,deal,ticket,line_item}}.{{creation,deletion,propertyChange,merge,restore,associationChange}}, product.{{creation,deletion,propertyChange,merge,restore}}, contact.privacyDeletion, object.{{creation,deletion,propertyChange,merge,restore,associationChange}} (with objectTypeId) or {APP_UNINSTALL}"
        )));
    }
    if event_type.starts_with("object.") {
        match object_type_id {
            None | Some("") => {
                return Err(ApiError::validation(format!(
                    "objectTypeId is required for eventType {event_type}"
                )))
            }
            Some(id) if !object_type_id_shape(id) => {
                return Err(ApiError::validation(format!(
                    "Invalid objectTypeId '{id}': expected an object type id such as 0-53"
                )))
            }
            Some(_) => {}
        }
    }
    if event_type.ends_with(".propertyChange") && property_name.is_none_or(str::is_empty) {
        return Err(ApiError::validation(format!(
            "propertyName is required for eventType {event_type}"
        )));
    }
    Ok(())
}

/// `SubscriptionResponse`. The id is a JSON number (the official Python client's model says
/// string and converts either).
pub fn subscription_json(s: &Subscription, now: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("eventType".into(), json!(s.event_type));
    if let Some(p) = &s.property_name {
        m.insert("propertyName".into(), json!(p));
    }
    if let Some(o) = &s.object_type_id {
        m.insert("objectTypeId".into(), json!(o));
    }
    m.insert("active".into(), json!(s.active));
    let created = s.created_at.as_deref().unwrap_or(now);
    m.insert("createdAt".into(), json!(created));
    m.insert(
        "updatedAt".into(),
        json!(s.updated_at.as_deref().unwrap_or(created)),
    );
    Value::Object(m)
}

/// `SettingsResponse`, or 404 while no target URL is set (never set, or cleared by DELETE).
fn settings_json(s: &WebhookSettings, now: &str, app_id: &str) -> ApiResult<Value> {
    let Some(url) = &s.target_url else {
        return Err(ApiError::not_found(format!(
            "No webhook settings found for app {app_id}"
        )));
    };
    let created = s.created_at.as_deref().unwrap_or(now);
    Ok(json!({
        "targetUrl": url,
        "throttling": {
            "maxConcurrentRequests": s.max_concurrent_requests,
            "period": s.throttling_period,
        },
        "createdAt": created,
        "updatedAt": s.updated_at.as_deref().unwrap_or(created),
    }))
}

async fn read_settings(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let now = app.webhooks.now_iso();
    let body = settings_json(&app.webhooks.settings(), &now, &app_id)?;
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    max_concurrent_requests: Option<u32>,
    period: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsChange {
    target_url: Option<String>,
    throttling: Option<Throttling>,
}

/// HubSpot wants a public HTTPS URL; the sandbox also takes plain HTTP, since its receivers are
/// on loopback.
fn check_target_url(url: &str) -> Result<(), ApiError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(ApiError::validation(format!(
            "Invalid targetUrl '{url}': expected an absolute http(s) URL"
        ))),
    }
}

async fn configure_settings(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let change: SettingsChange = parse_json(&body)?;
    let Some(url) = change.target_url.filter(|u| !u.trim().is_empty()) else {
        return Err(ApiError::validation("targetUrl is required"));
    };
    check_target_url(&url)?;
    let (max, period) = match change.throttling {
        Some(t) => (t.max_concurrent_requests, t.period),
        None => (None, None),
    };
    if max == Some(0) {
        return Err(ApiError::validation(
            "throttling.maxConcurrentRequests must be at least 1",
        ));
    }
    if let Some(p) = period.as_deref().filter(|p| !PERIODS.contains(p)) {
        return Err(ApiError::validation(format!(
            "Invalid throttling.period '{p}': expected SECONDLY or ROLLING_MINUTE"
        )));
    }
    let now = app.webhooks.now_iso();
    let settings = app.webhooks.update(|s| {
        if s.target_url.is_none() {
            // Settings made afresh (first time, or after a DELETE).
            s.created_at = Some(now.clone());
        }
        s.target_url = Some(url);
        if let Some(m) = max {
            s.max_concurrent_requests = m;
        }
        if let Some(p) = period {
            s.throttling_period = p;
        }
        s.updated_at = Some(now.clone());
        s.clone()
    });
    Ok(Json(settings_json(&settings, &now, &app_id)?).into_response())
}

/// Pauses deliveries: the target URL goes, the subscriptions stay.
async fn clear_settings(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    app.webhooks.update(|s| {
        s.target_url = None;
        s.created_at = None;
        s.updated_at = None;
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_subscriptions(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let now = app.webhooks.now_iso();
    let results: Vec<Value> = app
        .webhooks
        .settings()
        .subscriptions
        .iter()
        .map(|s| subscription_json(s, &now))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    event_type: Option<String>,
    property_name: Option<String>,
    object_type_id: Option<String>,
    active: Option<bool>,
}

async fn create_subscription(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let req: CreateRequest = parse_json(&body)?;
    let Some(event_type) = req.event_type.filter(|t| !t.is_empty()) else {
        return Err(ApiError::validation("eventType is required"));
    };
    validate_subscription(
        &event_type,
        req.property_name.as_deref(),
        req.object_type_id.as_deref(),
    )?;
    let now = app.webhooks.now_iso();
    let id = app.webhooks.next_subscription_id();
    let sub = Subscription {
        id,
        event_type,
        property_name: req.property_name.filter(|p| !p.is_empty()),
        object_type_id: req.object_type_id.filter(|o| !o.is_empty()),
        // HubSpot's spec: new subscriptions start paused unless `active` says otherwise.
        active: req.active.unwrap_or(false),
        created_at: Some(now.clone()),
        updated_at: Some(now.clone()),
    };
    app.webhooks.update(|s| {
        if s.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::validation(format!(
                "An app can have at most {MAX_SUBSCRIPTIONS} webhook subscriptions"
            )));
        }
        s.subscriptions.push(sub.clone());
        Ok(())
    })?;
    Ok((StatusCode::CREATED, Json(subscription_json(&sub, &now))).into_response())
}

fn subscription_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("Subscription {text} not found")))
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found(format!("Subscription {id} not found"))
}

async fn read_subscription(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = subscription_id(&id)?;
    let now = app.webhooks.now_iso();
    app.webhooks
        .settings()
        .subscriptions
        .iter()
        .find(|s| s.id == id)
        .map(|s| Json(subscription_json(s, &now)).into_response())
        .ok_or_else(|| not_found(id))
}

/// Sets `active` on one stored subscription; `None` when there is no such id.
fn set_active(app: &AppState, id: u64, active: bool, now: &str) -> Option<Subscription> {
    app.webhooks.update(|s| {
        let sub = s.subscriptions.iter_mut().find(|x| x.id == id)?;
        sub.active = active;
        sub.updated_at = Some(now.to_string());
        Some(sub.clone())
    })
}

#[derive(Deserialize)]
struct PatchRequest {
    active: Option<bool>,
}

async fn patch_subscription(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = subscription_id(&id)?;
    let req: PatchRequest = parse_json(&body)?;
    let Some(active) = req.active else {
        return Err(ApiError::validation("active is required"));
    };
    let now = app.webhooks.now_iso();
    let sub = set_active(&app, id, active, &now).ok_or_else(|| not_found(id))?;
    Ok(Json(subscription_json(&sub, &now)).into_response())
}

async fn delete_subscription(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = subscription_id(&id)?;
    if app.webhooks.remove_subscription(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(id))
    }
}

/// A batch input id: HubSpot's spec says integer; a numeric string is taken too.
#[derive(Deserialize)]
#[serde(untagged)]
enum BatchId {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct BatchInput {
    id: Option<BatchId>,
    active: Option<bool>,
}

#[derive(Deserialize)]
struct BatchRequest {
    inputs: Option<Vec<BatchInput>>,
}

/// Activates/pauses several subscriptions: 200 when every id exists, else 207 with the found ones
/// in `results` and one `OBJECT_NOT_FOUND` error naming the others.
async fn batch_update(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let req: BatchRequest = parse_json(&body)?;
    let Some(inputs) = req.inputs else {
        return Err(ApiError::validation("inputs is required"));
    };
    let mut wanted = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let id = match input.id {
            Some(BatchId::Number(n)) => n,
            Some(BatchId::Text(t)) => t.trim().parse::<u64>().map_err(|_| {
                ApiError::validation(format!("inputs[{i}].id must be a subscription id"))
            })?,
            None => return Err(ApiError::validation(format!("inputs[{i}].id is required"))),
        };
        let Some(active) = input.active else {
            return Err(ApiError::validation(format!(
                "inputs[{i}].active is required"
            )));
        };
        wanted.push((id, active));
    }
    let started = app.webhooks.now_iso();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (id, active) in wanted {
        match set_active(&app, id, active, &started) {
            Some(sub) => results.push(subscription_json(&sub, &started)),
            None => missing.push(id.to_string()),
        }
    }
    let completed = app.webhooks.now_iso();
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": completed,
    });
    if missing.is_empty() {
        return Ok(Json(body).into_response());
    }
    let error = ApiError::not_found(format!("Subscriptions not found: {}", missing.join(", ")))
        .with_context(json!({"ids": missing}));
    if let Some(map) = body.as_object_mut() {
        map.insert("numErrors".into(), json!(1));
        map.insert("errors".into(), json!([error.standard_error()]));
    }
    Ok((StatusCode::MULTI_STATUS, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_follow_hubspots_enum() {
        for ok in [
            "contact.creation",
            "company.merge",
            "deal.associationChange",
            "line_item.propertyChange",
            "ticket.restore",
            "product.deletion",
            "contact.privacyDeletion",
            "object.creation",
            "app.uninstall",
        ] {
            assert!(known_event_type(ok), "{ok}");
        }
        for bad in [
            "product.associationChange",
            "invoice.creation",
            "contact.created",
            "object",
            "",
            "company.privacyDeletion",
        ] {
            assert!(!known_event_type(bad), "{bad}");
        }
    }

    #[test]
    fn subscriptions_need_what_their_type_needs() {
        assert!(validate_subscription("contact.creation", None, None).is_ok());
        assert!(validate_subscription("object.creation", None, Some("0-53")).is_ok());
        assert!(validate_subscription(
            "object.propertyChange",
            Some("hs_balance_due"),
            Some("0-53")
        )
        .is_ok());
        let no_type = validate_subscription("object.creation", None, None);
        assert!(no_type.is_err_and(|e| e.message.contains("objectTypeId is required")));
        let bad_type = validate_subscription("object.creation", None, Some("invoices"));
        assert!(bad_type.is_err_and(|e| e.message.contains("Invalid objectTypeId")));
        let no_prop = validate_subscription("deal.propertyChange", None, None);
        assert!(no_prop.is_err_and(|e| e.message.contains("propertyName is required")));
        let unknown = validate_subscription("invoice.creation", None, None);
        assert!(unknown.is_err_and(|e| e.status == StatusCode::BAD_REQUEST
            && e.category == "VALIDATION_ERROR"
            && e.message.contains("Invalid eventType 'invoice.creation'")));
    }
}
