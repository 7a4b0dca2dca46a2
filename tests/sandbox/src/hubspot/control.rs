//! The HubSpot side of the control API (`/_sandbox/…`): reset, seeds and the generator, portals,
//! records as a CRM user would change them, tokens, policy, rate limits, webhooks and the
//! workflow runner. Faults, request log, counters, clock and latency come from `common::control`.

use super::actions::{Enrollment, RunnerSettings};
use super::app::{AppState, Policy};
use super::crm::raw_values;
use super::error::ApiError;
use super::format::iso;
use super::objects::ObjectType;
use super::seed::{self, HubSeed, PortalSeed};
use super::seedgen::{self, GenerateOptions};
use super::store::{Input, Source};
use super::throttle::RateLimits;
use super::webhooks::{Subscription, WebhookSettings};
use crate::common::control::control_error;
use crate::common::sync::lock;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_sandbox/health",
            get(|| async { Json(json!({"status": "ok", "api": "hubspot"})) }),
        )
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/seed", post(load_seed))
        .route("/_sandbox/seed/generate", post(generate_seed))
        .route("/_sandbox/portals", get(list_portals).post(create_portal))
        .route("/_sandbox/portals/{portal}/uninstall", post(uninstall))
        .route(
            "/_sandbox/portals/{portal}/objects/{object_type}",
            get(dump).post(user_create),
        )
        .route(
            "/_sandbox/portals/{portal}/objects/{object_type}/{id}",
            patch(user_update).delete(user_archive),
        )
        .route("/_sandbox/tokens", post(mint))
        .route("/_sandbox/policy", get(policy).post(set_policy))
        .route("/_sandbox/throttle", get(throttle).post(set_throttle))
        .route("/_sandbox/webhooks", get(webhooks).post(set_webhooks))
        .route("/_sandbox/webhooks/subscriptions", post(add_subscription))
        .route(
            "/_sandbox/webhooks/subscriptions/{id}",
            delete(remove_subscription),
        )
        .route(
            "/_sandbox/webhooks/deliveries",
            get(deliveries).delete(clear_deliveries),
        )
        .route(
            "/_sandbox/workflows/settings",
            get(runner_settings).post(set_runner_settings),
        )
        .route("/_sandbox/workflows/enroll", post(enroll))
        .route("/_sandbox/workflows/executions", get(executions))
        .route(
            "/_sandbox/workflows/executions/{callback_id}",
            get(execution),
        )
}

fn load_into(app: &AppState, seed: &HubSeed) -> Response {
    let now = app.services.clock.now();
    let mut state = lock(&app.state);
    match seed::load(&mut state, seed, now) {
        Ok(ids) => Json(json!({"portals": ids})).into_response(),
        Err(err) => control_error(StatusCode::BAD_REQUEST, err),
    }
}

/// Back to the start-up seed and settings; faults, logs, windows, deliveries, executions and
/// tokens cleared (the clock offset is kept).
async fn reset(State(app): State<AppState>) -> Response {
    app.services.reset();
    app.services.latency.set(app.config.latency);
    app.throttle.clear();
    app.throttle.set_limits(app.config.limits.clone());
    app.set_policy(app.config.policy.clone());
    app.webhooks.set_settings(app.config.webhooks.clone());
    app.webhooks.sender.clear_log();
    app.runner.clear();
    app.runner.set_settings(app.config.actions.clone());
    {
        let mut state = lock(&app.state);
        state.oauth.clear();
        state.installed.clear();
    }
    let seed = app.initial_seed();
    load_into(&app, &seed)
}

#[derive(Deserialize)]
struct SeedQuery {
    #[serde(default)]
    make_initial: bool,
}

async fn load_seed(
    State(app): State<AppState>,
    Query(q): Query<SeedQuery>,
    Json(seed): Json<HubSeed>,
) -> Response {
    let response = load_into(&app, &seed);
    if q.make_initial && response.status().is_success() {
        app.set_initial_seed(seed);
    }
    response
}

/// Loads a generated portal, replacing only that portal.
async fn generate_seed(
    State(app): State<AppState>,
    Json(options): Json<GenerateOptions>,
) -> Response {
    let seed = seedgen::generate(&options);
    let now = app.services.clock.now();
    let mut results = Vec::new();
    let mut state = lock(&app.state);
    for p in &seed.portals {
        match seed::build_portal(p, now) {
            Ok(portal) => {
                results.push(json!({"portal_id": portal.id, "counts": counts(&portal)}));
                state.portals.insert(portal.id, portal);
            }
            Err(err) => return control_error(StatusCode::BAD_REQUEST, err),
        }
    }
    Json(json!({"portals": results})).into_response()
}

fn counts(portal: &super::store::Portal) -> Map<String, Value> {
    ObjectType::ALL
        .iter()
        .map(|t| {
            (
                t.name().to_string(),
                json!(portal.table(*t).filter(|r| !r.archived).count()),
            )
        })
        .collect()
}

async fn list_portals(State(app): State<AppState>) -> Json<Value> {
    let state = lock(&app.state);
    let portals: Vec<Value> = state
        .portals
        .values()
        .map(|p| json!({"portal_id": p.id, "domain": p.domain, "installed": state.installed.contains(&p.id), "counts": counts(p)}))
        .collect();
    Json(json!({"portals": portals}))
}

#[derive(Deserialize)]
struct NewPortal {
    portal_id: Option<u64>,
    domain: Option<String>,
}

async fn create_portal(State(app): State<AppState>, Json(new): Json<NewPortal>) -> Response {
    let now = app.services.clock.now();
    let mut state = lock(&app.state);
    let id = new.portal_id.unwrap_or_else(|| {
        let mut n = seed::DEFAULT_PORTAL + state.portals.len() as u64;
        while state.portals.contains_key(&n) {
            n += 1;
        }
        n
    });
    if state.portals.contains_key(&id) {
        return control_error(StatusCode::CONFLICT, format!("portal {id} exists"));
    }
    match seed::build_portal(
        &PortalSeed {
            portal_id: id,
            domain: new.domain,
            ..PortalSeed::default()
        },
        now,
    ) {
        Ok(p) => {
            state.portals.insert(id, p);
            (StatusCode::CREATED, Json(json!({"portal_id": id}))).into_response()
        }
        Err(e) => control_error(StatusCode::BAD_REQUEST, e),
    }
}

/// A user uninstalls the app in the portal: every token dies and, if the app was installed there,
/// `app.uninstall` subscribers are told.
async fn uninstall(State(app): State<AppState>, Path(portal): Path<u64>) -> StatusCode {
    let ended = {
        let mut state = lock(&app.state);
        state.oauth.revoke_portal(portal);
        state.installed.remove(&portal)
    };
    if ended {
        app.webhooks.notify_uninstall(portal);
    }
    StatusCode::NO_CONTENT
}

fn parse_type(s: &str) -> Result<ObjectType, Box<Response>> {
    ObjectType::parse(s).ok_or_else(|| {
        Box::new(control_error(
            StatusCode::NOT_FOUND,
            format!("unknown object type {s}"),
        ))
    })
}

/// Every record of a type (archived too), all properties, and associations.
async fn dump(State(app): State<AppState>, Path((portal_id, t)): Path<(u64, String)>) -> Response {
    let t = match parse_type(&t) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let state = lock(&app.state);
    let Some(portal) = state.portals.get(&portal_id) else {
        return control_error(StatusCode::NOT_FOUND, format!("unknown portal {portal_id}"));
    };
    let records: Vec<Value> = portal
        .table(t)
        .map(|r| {
            let mut assoc = Map::new();
            for to in ObjectType::ALL {
                let list: Vec<Value> = portal
                    .associated(t, r.id, to)
                    .into_iter()
                    .map(|(id, types)| json!({"id": id.to_string(), "types": types.iter().map(|x| x.id).collect::<Vec<_>>()}))
                    .collect();
                if !list.is_empty() {
                    assoc.insert(to.name().into(), Value::Array(list));
                }
            }
            json!({"id": r.id.to_string(), "properties": r.properties, "createdAt": iso(r.created_at),
                   "updatedAt": iso(r.updated_at), "archived": r.archived, "associations": assoc})
        })
        .collect();
    Json(json!({"objectType": t.name(), "results": records})).into_response()
}

#[derive(Deserialize)]
struct UserWrite {
    #[serde(default)]
    properties: Input,
}

fn user_source(app: &AppState, portal_id: u64) -> Source {
    let user = lock(&app.state)
        .portals
        .get(&portal_id)
        .map_or(0, |p| p.user_id);
    Source::crm_ui(user)
}

/// Creates a record as a user in HubSpot's UI would (webhooks say `CRM_UI`).
async fn user_create(
    State(app): State<AppState>,
    Path((portal_id, t)): Path<(u64, String)>,
    Json(body): Json<UserWrite>,
) -> Result<Response, ApiError> {
    let t = ObjectType::parse(&t).ok_or_else(|| ApiError::unknown_object_type(&t))?;
    let source = user_source(&app, portal_id);
    app.write(portal_id, |portal, now| {
        let values = portal.validate(t, &body.properties, true, None)?;
        if t == ObjectType::Invoices {
            portal.check_invoice_opening(None, &values, &[])?;
        }
        let id = portal.insert(t, values, now, &source, None);
        let r = portal.get(t, id).map(|r| {
            portal.record_json(
                t,
                r,
                Some(&r.properties.keys().cloned().collect::<Vec<_>>()),
            )
        });
        Ok((StatusCode::CREATED, Json(r.unwrap_or(Value::Null))).into_response())
    })
}

async fn user_update(
    State(app): State<AppState>,
    Path((portal_id, t, id)): Path<(u64, String, u64)>,
    Json(body): Json<UserWrite>,
) -> Result<Response, ApiError> {
    let t = ObjectType::parse(&t).ok_or_else(|| ApiError::unknown_object_type(&t))?;
    let source = user_source(&app, portal_id);
    app.write(portal_id, |portal, now| {
        let values = portal.validate(t, &body.properties, false, Some(id))?;
        if t == ObjectType::Invoices {
            portal.check_invoice_opening(Some(id), &values, &[])?;
        }
        if !portal.apply(t, id, values, now, &source) {
            return Err(ApiError::not_found(format!("no {} {id}", t.singular())));
        }
        let r = portal.get(t, id).map(|r| {
            portal.record_json(
                t,
                r,
                Some(&r.properties.keys().cloned().collect::<Vec<_>>()),
            )
        });
        Ok(Json(r.unwrap_or(Value::Null)).into_response())
    })
}

async fn user_archive(
    State(app): State<AppState>,
    Path((portal_id, t, id)): Path<(u64, String, u64)>,
) -> Result<Response, ApiError> {
    let t = ObjectType::parse(&t).ok_or_else(|| ApiError::unknown_object_type(&t))?;
    let source = user_source(&app, portal_id);
    app.write(portal_id, |portal, now| {
        portal.archive(t, id, now, &source);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Deserialize)]
struct MintRequest {
    portal_id: Option<u64>,
    /// Default: every scope the app has.
    scopes: Option<Vec<String>>,
    access_token_ttl_seconds: Option<i64>,
}

/// Mints an access + refresh token without the browser dance.
async fn mint(State(app): State<AppState>, Json(req): Json<MintRequest>) -> Response {
    let now = app.services.clock.now();
    let ttl = req
        .access_token_ttl_seconds
        .unwrap_or(app.policy().access_token_ttl_seconds);
    let scopes: BTreeSet<String> = req
        .scopes
        .unwrap_or_else(|| app.config.app_scopes.clone())
        .into_iter()
        .collect();
    let mut state = lock(&app.state);
    let portal_id = match req
        .portal_id
        .or_else(|| state.portals.keys().next().copied())
    {
        Some(id) if state.portals.contains_key(&id) => id,
        Some(id) => return control_error(StatusCode::NOT_FOUND, format!("unknown portal {id}")),
        None => return control_error(StatusCode::NOT_FOUND, "no portals loaded"),
    };
    state.installed.insert(portal_id);
    let user_id = state.portals.get(&portal_id).map_or(0, |p| p.user_id);
    let pair = state.oauth.mint(portal_id, user_id, scopes, ttl, None, now);
    (StatusCode::CREATED, Json(pair)).into_response()
}

async fn policy(State(app): State<AppState>) -> Json<Policy> {
    Json(app.policy())
}

async fn set_policy(State(app): State<AppState>, Json(p): Json<Policy>) -> Json<Policy> {
    app.set_policy(p.clone());
    Json(p)
}

async fn throttle(State(app): State<AppState>) -> Json<RateLimits> {
    Json(app.throttle.limits())
}

async fn set_throttle(State(app): State<AppState>, Json(l): Json<RateLimits>) -> Json<RateLimits> {
    app.throttle.set_limits(l.clone());
    Json(l)
}

async fn webhooks(State(app): State<AppState>) -> Json<WebhookSettings> {
    Json(app.webhooks.settings())
}

async fn set_webhooks(
    State(app): State<AppState>,
    Json(s): Json<WebhookSettings>,
) -> Json<WebhookSettings> {
    Json(app.webhooks.set_settings(s))
}

async fn add_subscription(State(app): State<AppState>, Json(s): Json<Subscription>) -> Response {
    (StatusCode::CREATED, Json(app.webhooks.add_subscription(s))).into_response()
}

async fn remove_subscription(State(app): State<AppState>, Path(id): Path<u64>) -> StatusCode {
    if app.webhooks.remove_subscription(id) {
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

async fn deliveries(State(app): State<AppState>, Query(q): Query<Since>) -> Json<Value> {
    Json(json!({"deliveries": app.webhooks.sender.attempts(q.since)}))
}

async fn clear_deliveries(State(app): State<AppState>) -> StatusCode {
    app.webhooks.sender.clear_log();
    StatusCode::NO_CONTENT
}

async fn runner_settings(State(app): State<AppState>) -> Json<RunnerSettings> {
    Json(app.runner.settings())
}

async fn set_runner_settings(
    State(app): State<AppState>,
    Json(s): Json<RunnerSettings>,
) -> Json<RunnerSettings> {
    app.runner.set_settings(s.clone());
    Json(s)
}

#[derive(Deserialize)]
struct EnrollRequest {
    portal_id: Option<u64>,
    /// A stored action definition (its `actionUrl` and `objectRequestOptions.properties`)…
    definition_id: Option<String>,
    /// …or an action URL directly.
    action_url: Option<String>,
    object_type: String,
    object_id: u64,
    #[serde(default)]
    input_fields: Map<String, Value>,
    /// Properties of the enrolled record to include (overrides the definition's).
    properties: Option<Vec<String>>,
    workflow_id: Option<u64>,
}

/// Enrolls a record in a "workflow" whose custom action runs now.
async fn enroll(State(app): State<AppState>, Json(req): Json<EnrollRequest>) -> Response {
    let t = match parse_type(&req.object_type) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let def_id = req
        .definition_id
        .as_deref()
        .and_then(|d| d.parse::<u64>().ok());
    let definition = def_id.and_then(|d| app.runner.definition(d));
    if req.definition_id.is_some() && definition.is_none() {
        return control_error(StatusCode::NOT_FOUND, "unknown action definition");
    }
    let action_url = req.action_url.clone().or_else(|| {
        definition
            .as_ref()
            .and_then(|d| d["actionUrl"].as_str().map(str::to_string))
    });
    let Some(action_url) = action_url else {
        return control_error(StatusCode::BAD_REQUEST, "send definition_id or action_url");
    };
    let wanted: Vec<String> = req.properties.clone().unwrap_or_else(|| {
        definition
            .as_ref()
            .and_then(|d| d["objectRequestOptions"]["properties"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    let state = lock(&app.state);
    let portal_id = match req
        .portal_id
        .or_else(|| state.portals.keys().next().copied())
    {
        Some(id) => id,
        None => return control_error(StatusCode::NOT_FOUND, "no portals"),
    };
    let Some(record) = state
        .portals
        .get(&portal_id)
        .and_then(|p| p.live(t, req.object_id))
    else {
        return control_error(
            StatusCode::NOT_FOUND,
            format!(
                "no {} {} in portal {portal_id}",
                t.singular(),
                req.object_id
            ),
        );
    };
    let properties: Map<String, Value> = wanted
        .iter()
        .map(|k| {
            (
                k.clone(),
                record.properties.get(k).map_or(Value::Null, |v| json!(v)),
            )
        })
        .collect();
    drop(state);
    let seq = app.runner.next_seq();
    let workflow_id = req.workflow_id.unwrap_or(100_000 + seq);
    let callback_id = format!(
        "ap-{portal_id}-{}-{}-0",
        50_000_000_000u64 + seq,
        def_id.unwrap_or(1)
    );
    let mut object = json!({"objectId": req.object_id, "objectType": t.upper()});
    let settings = app.runner.settings();
    let mut body = json!({
        "callbackId": callback_id,
        "origin": {
            "portalId": portal_id,
            "actionDefinitionId": def_id.unwrap_or(0),
            "actionDefinitionVersion": definition.as_ref().and_then(|d| d["revisionId"].as_str()).and_then(|r| r.parse::<u64>().ok()).unwrap_or(1),
            "extensionDefinitionId": def_id.unwrap_or(0),
            "extensionDefinitionVersionId": 1,
        },
        "context": {"source": "WORKFLOWS", "workflowId": workflow_id},
        "inputFields": req.input_fields,
    });
    let placement = settings.object_properties_in.as_str();
    if matches!(placement, "object" | "both") {
        if let Some(o) = object.as_object_mut() {
            o.insert("properties".into(), Value::Object(properties.clone()));
        }
    }
    if let Some(b) = body.as_object_mut() {
        b.insert("object".into(), object);
        if matches!(placement, "root" | "both") {
            b.insert("properties".into(), Value::Object(properties));
        }
    }
    let execution = app.runner.enroll(Enrollment {
        portal_id,
        definition_id: def_id,
        action_url,
        object_type: t.name().into(),
        object_id: req.object_id,
        body,
        callback_id,
    });
    let _ = raw_values;
    (StatusCode::ACCEPTED, Json(execution)).into_response()
}

async fn executions(State(app): State<AppState>) -> Json<Value> {
    Json(json!({"executions": app.runner.executions()}))
}

async fn execution(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.runner.execution(&id) {
        Some(e) => Json(e).into_response(),
        None => control_error(StatusCode::NOT_FOUND, format!("no execution {id}")),
    }
}
