//! The v3 data API: `/v3/company/{realmId}/…` — entity reads and writes, query, CDC, batch,
//! with `requestid` replay.

use super::app::{App, AppState};
use super::auth::authenticate;
use super::entity::EntityKind;
use super::fault::Fault;
use super::rules::WriteCtx;
use super::store::{Realm, StoredResponse};
use super::{batch, cdc, ops, query};
use crate::common::sync::lock;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/company/{realm}/{resource}",
            get(get_resource).post(post_resource),
        )
        .route(
            "/v3/company/{realm}/{resource}/{id}",
            get(get_by_id).post(post_sub_resource),
        )
}

type Params = HashMap<String, String>;

/// `include=a,b` — also accepted repeated.
fn includes(params: &Params, wanted: &str) -> bool {
    params
        .get("include")
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(wanted)))
}

async fn get_resource(
    State(app): State<AppState>,
    Path((realm_id, resource)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&app, &headers, &realm_id) {
        return *denied;
    }
    match resource.as_str() {
        "query" => {
            let statement = params.get("query").cloned().unwrap_or_default();
            run_query(&app, &realm_id, &statement)
        }
        "cdc" => {
            let entities = params.get("entities").cloned().unwrap_or_default();
            let since = params.get("changedSince").cloned().unwrap_or_default();
            let now = app.services.clock.now();
            let result = with_realm(&app, &realm_id, |realm| {
                cdc::execute(realm, &entities, &since, now, app.config.utc_offset)
            });
            respond_body(&app, result)
        }
        "preferences" => {
            let result = with_realm(&app, &realm_id, |realm| {
                realm
                    .preferences()
                    .cloned()
                    .ok_or_else(Fault::object_not_found)
            });
            respond_entity(&app, EntityKind::Preferences, result)
        }
        other => app.fault(&Fault::unsupported(format!(
            "Operation GET /{other} is not supported."
        ))),
    }
}

async fn get_by_id(
    State(app): State<AppState>,
    Path((realm_id, resource, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&app, &headers, &realm_id) {
        return *denied;
    }
    let Some(kind) = EntityKind::from_resource(&resource) else {
        return app.fault(&Fault::unsupported(format!(
            "Operation GET /{resource}/{id} is not supported."
        )));
    };
    let result = with_realm(&app, &realm_id, |realm| {
        if kind == EntityKind::CompanyInfo {
            // Read as /companyinfo/{realmId}.
            let ok = id == realm.id
                || realm
                    .company_info()
                    .and_then(|c| c.get("Id"))
                    .and_then(Value::as_str)
                    == Some(id.as_str());
            return realm
                .company_info()
                .filter(|_| ok)
                .cloned()
                .ok_or_else(Fault::object_not_found);
        }
        ops::read(realm, kind, &id)
    });
    respond_entity(&app, kind, result)
}

async fn post_sub_resource(
    State(app): State<AppState>,
    Path((realm_id, resource, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&app, &headers, &realm_id) {
        return *denied;
    }
    app.fault(&Fault::unsupported(format!(
        "Operation POST /{resource}/{id} is not supported by the sandbox."
    )))
}

async fn post_resource(
    State(app): State<AppState>,
    Path((realm_id, resource)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authenticate(&app, &headers, &realm_id) {
        return *denied;
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return app.fault(&Fault::unsupported(
            "Unsupported Operation : MalformedByteSequenceException: invalid UTF-8 in the request body",
        ));
    };
    if resource == "query" {
        return run_query(&app, &realm_id, text);
    }
    let kind = match resource.as_str() {
        "batch" => None,
        other => match EntityKind::from_resource(other) {
            Some(kind) => Some(kind),
            None => {
                return app.fault(&Fault::unsupported(format!(
                    "Operation POST /{other} is not supported."
                )))
            }
        },
    };
    let parsed: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(err) => {
            return app.fault(&Fault::invalid_property(
                "",
                format!("Error parsing the request body as JSON: {err}"),
            ));
        }
    };
    let request_id = params.get("requestid").filter(|r| !r.is_empty()).cloned();
    let ctx = app.write_ctx(includes(&params, "allowduplicatedocnum"));
    let mut state = lock(&app.state);
    let Some(realm) = state.realm_mut(&realm_id) else {
        drop(state);
        return app.fault(&Fault::object_not_found());
    };
    // A repeated requestid gets the original answer and changes nothing.
    if let Some(stored) = request_id.as_ref().and_then(|id| realm.idempotency.get(id)) {
        return stored_response(stored);
    }
    let (status, body) = match kind {
        None => match batch::execute(realm, &ctx, parsed) {
            Ok(result) => (StatusCode::OK, with_time(&app, result)),
            Err(fault) => (fault.status, app.fault_body(&fault)),
        },
        Some(kind) => match write(realm, &ctx, kind, &params, parsed) {
            Ok(value) => (StatusCode::OK, entity_body(&app, kind, value)),
            Err(fault) => (fault.status, app.fault_body(&fault)),
        },
    };
    if let Some(id) = request_id {
        realm.idempotency.insert(
            id,
            StoredResponse {
                status: status.as_u16(),
                body: body.clone(),
            },
        );
    }
    app.announce(&mut state);
    (status, Json(body)).into_response()
}

/// Chooses the write from `operation` / `include` the way QBO does.
fn write(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    params: &Params,
    body: Value,
) -> Result<Value, Fault> {
    match params.get("operation").map(String::as_str) {
        Some("delete") => ops::delete(realm, ctx, kind, body),
        Some("void") => ops::void(realm, ctx, kind, body),
        Some("update") if includes(params, "void") => ops::void(realm, ctx, kind, body),
        Some("update") => ops::update(realm, ctx, kind, body),
        Some("create") => ops::create(realm, ctx, kind, body),
        None => ops::save(realm, ctx, kind, body),
        Some(other) => Err(Fault::unsupported(format!(
            "Operation {other} is not supported."
        ))),
    }
}

fn run_query(app: &App, realm_id: &str, statement: &str) -> Response {
    let offset = app.config.utc_offset;
    let result = with_realm(app, realm_id, |realm| {
        query::execute(realm, statement, offset)
    });
    match result {
        Ok(response) => {
            let mut body = serde_json::Map::new();
            body.insert("QueryResponse".into(), response);
            app.ok_body(Value::Object(body))
        }
        Err(fault) => app.fault(&fault),
    }
}

fn with_realm<T>(
    app: &App,
    realm_id: &str,
    f: impl FnOnce(&Realm) -> Result<T, Fault>,
) -> Result<T, Fault> {
    let state = lock(&app.state);
    let realm = state.realm(realm_id).ok_or_else(Fault::object_not_found)?;
    f(realm)
}

fn entity_body(app: &App, kind: EntityKind, value: Value) -> Value {
    let mut body = serde_json::Map::new();
    body.insert(kind.name().into(), value);
    body.insert("time".into(), Value::String(app.now_text()));
    Value::Object(body)
}

fn with_time(app: &App, mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.insert("time".into(), Value::String(app.now_text()));
    }
    body
}

fn respond_entity(app: &App, kind: EntityKind, result: Result<Value, Fault>) -> Response {
    match result {
        Ok(value) => app.ok(kind.name(), value),
        Err(fault) => app.fault(&fault),
    }
}

fn respond_body(app: &App, result: Result<Value, Fault>) -> Response {
    match result {
        Ok(body) => app.ok_body(body),
        Err(fault) => app.fault(&fault),
    }
}

fn stored_response(stored: &StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    (status, Json(stored.body.clone())).into_response()
}
