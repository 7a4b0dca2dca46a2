//! The admin API (V1–V5, S1): the connections, each object's counts, the records with their
//! status, reason and history, retries, the sync settings, the workflow-action runs and the
//! error categories explained. JSON over the `admin` function's URL.
//!
//! Who may call it: an operator with the deployment's operator key (`Authorization: Bearer
//! <key>`), compared in constant time. Without a configured key the API is closed.

pub mod records;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::actions::settings::{ActionSettings, ActionSettingsStore};
use crate::clock::Clock;
use crate::connection::registry::{Connection, ConnectionStatus, Connections};
use crate::domain::{ConnectionId, ObjectKind, Provider};
use crate::http::error_response;
use crate::ledger::{Ledger, LedgerError, LinkStatus, RetryOne};
use crate::runtime::Services;
use crate::settings::{ObjectSettings, SettingsError, SettingsStore};
use crate::status::categories::{explain, CATEGORIES};
use crate::store::{keys, Query as StoreQuery, Store, StoreError, Table};
use crate::sync::settings::SyncSettings;
use records::{page, RecordFilter};

/// How many workflow-action runs the runs list shows.
const RECENT_RUNS: u32 = 100;

pub struct AdminService {
    operator_key: Option<SecretString>,
    action_settings: ActionSettingsStore,
    connections: Connections,
    ledger: Ledger,
    settings: SettingsStore,
    sync_settings: SyncSettings,
    store: Arc<dyn Store>,
    clock: Clock,
}

/// An error answer (boxed: a response is large), with its category and message.
struct Failed(Box<Response>);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What a handler answers: JSON, or an error.
type Answer = Result<Response, Failed>;

fn failed(status: StatusCode, category: &str, message: impl Into<String>) -> Failed {
    Failed(Box::new(error_response(status, category, message)))
}

fn store_error(error: StoreError) -> Failed {
    failed(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        error.to_string(),
    )
}

fn object_of(text: &str) -> Result<ObjectKind, Failed> {
    ObjectKind::ALL
        .into_iter()
        .find(|o| o.as_str() == text)
        .ok_or_else(|| {
            failed(
                StatusCode::NOT_FOUND,
                "unknown_object",
                format!("{text:?} is not one of contact, product, invoice"),
            )
        })
}

impl AdminService {
    pub fn new(services: &Services) -> Self {
        Self {
            operator_key: services.config.admin_operator_key.clone(),
            action_settings: ActionSettingsStore::new(services.store.clone()),
            connections: Connections::new(services.store.clone()),
            ledger: Ledger::new(services.store.clone()),
            settings: SettingsStore::new(services.store.clone()),
            sync_settings: SyncSettings::new(services.store.clone()),
            store: services.store.clone(),
            clock: services.clock.clone(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_seconds()
    }

    /// The caller holds the operator key.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Failed> {
        let Some(key) = &self.operator_key else {
            return Err(failed(
                StatusCode::UNAUTHORIZED,
                "admin_closed",
                "the admin API is closed: set the deployment's operator key (AdminOperatorKey) to open it",
            ));
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = key.expose_secret().as_bytes();
        if !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(())
        } else {
            Err(failed(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the operator key as `Authorization: Bearer <key>`",
            ))
        }
    }

    async fn connection(&self, id: &str) -> Result<Connection, Failed> {
        let not_found = || {
            failed(
                StatusCode::NOT_FOUND,
                "unknown_connection",
                format!("there is no connection {id:?}"),
            )
        };
        let id = ConnectionId::parse(id).map_err(|_| not_found())?;
        self.connections
            .get(&id, self.now())
            .await
            .map_err(store_error)?
            .ok_or_else(not_found)
    }
}

/// The router of the admin function.
pub fn router(service: Arc<AdminService>) -> Router {
    Router::new()
        .route("/api/categories", get(categories))
        .route("/api/connections", get(list_connections))
        .route("/api/connections/{id}/overview", get(overview))
        .route("/api/connections/{id}/records/{object}", get(list_records))
        .route(
            "/api/connections/{id}/records/{object}/{side}/{record}",
            get(one_record),
        )
        .route("/api/connections/{id}/retry/{object}", post(retry))
        .route(
            "/api/connections/{id}/settings/{object}",
            get(read_settings).put(write_settings),
        )
        .route("/api/connections/{id}/action-runs", get(action_runs))
        .route(
            "/api/connections/{id}/action-settings",
            get(read_action_settings).put(write_action_settings),
        )
        .fallback(|| async { failed(StatusCode::NOT_FOUND, "not_found", "no such admin API path") })
        .with_state(service)
}

fn done(value: Value) -> Answer {
    Ok(Json(value).into_response())
}

async fn categories(State(admin): State<Arc<AdminService>>, headers: HeaderMap) -> Answer {
    admin.authorize(&headers)?;
    done(json!({ "categories": CATEGORIES }))
}

fn connection_json(c: &Connection) -> Value {
    json!({
        "connection_id": c.id,
        "portal_id": c.portal_id,
        "realm_id": c.realm_id,
        "company_name": c.company_name,
        "status": c.status.as_str(),
        "reconnect_provider": c.reconnect_provider.map(|p| p.as_str()),
        "connected_at": c.connected_at,
    })
}

async fn list_connections(State(admin): State<Arc<AdminService>>, headers: HeaderMap) -> Answer {
    admin.authorize(&headers)?;
    let mut all = Vec::new();
    for status in [
        ConnectionStatus::Active,
        ConnectionStatus::ReconnectRequired,
        ConnectionStatus::Disconnected,
    ] {
        all.extend(
            admin
                .connections
                .with_status(status, admin.now())
                .await
                .map_err(store_error)?,
        );
    }
    all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    done(json!({ "connections": all.iter().map(connection_json).collect::<Vec<_>>() }))
}

/// V1: each object's records by status, and whether it syncs.
async fn overview(
    State(admin): State<Arc<AdminService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let now = admin.now();
    let mut objects = Vec::new();
    for object in ObjectKind::ALL {
        let counts = admin
            .ledger
            .counts(&connection.id, object, now)
            .await
            .map_err(store_error)?;
        let settings = admin
            .settings
            .get(&connection.id, object, now)
            .await
            .map_err(store_error)?;
        let mut by_status = serde_json::Map::new();
        for status in LinkStatus::ALL {
            by_status.insert(
                status.as_str().into(),
                json!(counts.get(&status).copied().unwrap_or(0)),
            );
        }
        objects.push(json!({
            "object": object.as_str(),
            "enabled": settings.as_ref().is_some_and(|s| s.enabled),
            "direction": settings.as_ref().map(|s| s.direction),
            "counts": by_status,
        }));
    }
    done(json!({"connection": connection_json(&connection), "objects": objects}))
}

/// V1, V3: the records of one object, filtered and paged.
async fn list_records(
    State(admin): State<Arc<AdminService>>,
    Path((id, object)): Path<(String, String)>,
    Query(filter): Query<RecordFilter>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let object = object_of(&object)?;
    let invalid =
        |e: records::FilterError| failed(StatusCode::BAD_REQUEST, "invalid_filter", e.to_string());
    let mut entries = Vec::new();
    for status in filter.statuses().map_err(invalid)? {
        entries.extend(
            admin
                .ledger
                .with_status(&connection.id, object, status, admin.now())
                .await
                .map_err(store_error)?,
        );
    }
    let (rows, next, total) = page(entries, &filter).map_err(invalid)?;
    done(json!({"records": rows, "next": next, "total": total}))
}

fn side_of(text: &str) -> Result<Provider, Failed> {
    match text {
        "hubspot" => Ok(Provider::HubSpot),
        "qbo" | "quickbooks" => Ok(Provider::Qbo),
        other => Err(failed(
            StatusCode::NOT_FOUND,
            "unknown_side",
            format!("{other:?} is not hubspot or qbo"),
        )),
    }
}

/// V2, V3: one record, its activity, and its failure explained.
async fn one_record(
    State(admin): State<Arc<AdminService>>,
    Path((id, object, side, record)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let object = object_of(&object)?;
    let side = side_of(&side)?;
    let stored = admin
        .ledger
        .find(
            &connection.id,
            object,
            side,
            std::slice::from_ref(&record),
            admin.now(),
        )
        .await
        .map_err(store_error)?
        .remove(&record)
        .ok_or_else(|| {
            failed(
                StatusCode::NOT_FOUND,
                "unknown_record",
                format!(
                    "no {} record {record} is known to this connection",
                    side.as_str()
                ),
            )
        })?;
    let explanation = stored
        .entry
        .failure
        .as_ref()
        .and_then(|f| explain(&f.category));
    done(json!({
        "record": records::RecordRow::of(&stored.entry),
        "activity": stored.entry.activity,
        "failure": stored.entry.failure,
        "explanation": explanation,
    }))
}

#[derive(Debug, Deserialize)]
struct RetryRequest {
    /// One record (`hubspot` or `qbo`, and its id)…
    side: Option<String>,
    id: Option<String>,
    /// …or every failing record of a category (or of every category: `"*"`).
    category: Option<String>,
}

/// V5: a failing record, or every failing record of a category, tried again now.
async fn retry(
    State(admin): State<Arc<AdminService>>,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    Json(request): Json<RetryRequest>,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let object = object_of(&object)?;
    let now = admin.now();
    let ledger_error = |e: LedgerError| match e {
        LedgerError::Store(e) => store_error(e),
        LedgerError::Conflict => failed(
            StatusCode::CONFLICT,
            "changed",
            "the record changed meanwhile: read it again",
        ),
    };
    match (request.side, request.id, request.category) {
        (Some(side), Some(record), None) => {
            let side = side_of(&side)?;
            match admin
                .ledger
                .retry_one(&connection.id, object, side, &record, now)
                .await
                .map_err(ledger_error)?
            {
                RetryOne::Retried => done(json!({"retried": 1})),
                RetryOne::NotFailing(status) => Err(failed(
                    StatusCode::CONFLICT,
                    "not_failing",
                    format!("record {record} is {}, not failing: there is nothing to retry", status.as_str()),
                )),
                RetryOne::Unknown => Err(failed(
                    StatusCode::NOT_FOUND,
                    "unknown_record",
                    format!("no {} record {record} is known to this connection", side.as_str()),
                )),
            }
        }
        (None, None, Some(category)) => {
            let only = (category != "*").then_some(category.as_str());
            let retried = admin
                .ledger
                .retry_failures(&connection.id, object, only, now)
                .await
                .map_err(ledger_error)?;
            done(json!({ "retried": retried }))
        }
        _ => Err(failed(
            StatusCode::BAD_REQUEST,
            "invalid_retry",
            "send {\"side\": \"hubspot\"|\"qbo\", \"id\": \"…\"} for one record, or {\"category\": \"…\"} (\"*\": every category)",
        )),
    }
}

/// S1: one object's settings, with the version an edit must name.
async fn read_settings(
    State(admin): State<Arc<AdminService>>,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let object = object_of(&object)?;
    let (settings, version) = admin
        .settings
        .get_versioned(&connection.id, object, admin.now())
        .await
        .map_err(store_error)?
        .ok_or_else(|| no_settings(object))?;
    done(json!({"settings": settings, "version": version}))
}

fn no_settings(object: ObjectKind) -> Failed {
    failed(
        StatusCode::NOT_FOUND,
        "no_settings",
        format!("the connection has no {object} settings"),
    )
}

/// S1: replaces one object's settings, checked field by field.
async fn write_settings(
    State(admin): State<Arc<AdminService>>,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let object = object_of(&object)?;
    let mut wanted: ObjectSettings = serde_json::from_slice(&body).map_err(|e| {
        failed(
            StatusCode::BAD_REQUEST,
            "malformed_settings",
            format!("the body is not settings: {e}"),
        )
    })?;
    wanted.object = object;
    let saved = admin
        .sync_settings
        .edit(&connection.id, object, admin.now(), |s| *s = wanted.clone())
        .await
        .map_err(|e| match e {
            SettingsError::Invalid(fields) => invalid_fields(
                fields
                    .iter()
                    .map(|f| (f.field.as_str(), f.message.as_str())),
            ),
            SettingsError::Changed => failed(
                StatusCode::CONFLICT,
                "changed",
                "the settings were changed meanwhile: read them again",
            ),
            SettingsError::Store(e) => store_error(e),
        })?
        .ok_or_else(|| no_settings(object))?;
    done(json!({ "settings": saved }))
}

/// The portal's recent workflow-action runs, with their outcome.
async fn action_runs(
    State(admin): State<Arc<AdminService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let query = StoreQuery::partition(keys::action_runs::partition(&connection.portal_id))
        .limit(RECENT_RUNS);
    let page = admin
        .store
        .query(Table::ActionRuns, query, admin.now())
        .await
        .map_err(store_error)?;
    let runs: Vec<Value> = page
        .items
        .iter()
        .filter_map(|item| item.to_value::<Value>().ok())
        .collect();
    done(json!({ "runs": runs }))
}

/// The connection's workflow-action settings (defaults when none were saved).
async fn read_action_settings(
    State(admin): State<Arc<AdminService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let settings = admin
        .action_settings
        .get(&connection.id, admin.now())
        .await
        .map_err(store_error)?;
    done(json!({ "settings": settings }))
}

/// Replaces the connection's workflow-action settings, checked field by field.
async fn write_action_settings(
    State(admin): State<Arc<AdminService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    admin.authorize(&headers)?;
    let connection = admin.connection(&id).await?;
    let settings: ActionSettings = serde_json::from_slice(&body).map_err(|e| {
        failed(
            StatusCode::BAD_REQUEST,
            "malformed_settings",
            format!("the body is not action settings: {e}"),
        )
    })?;
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(invalid_fields(
            problems.iter().map(|(f, m)| (f.as_str(), m.as_str())),
        ));
    }
    admin
        .action_settings
        .put(&connection.id, &settings)
        .await
        .map_err(store_error)?;
    done(json!({ "settings": settings }))
}

/// `422 invalid_settings` with each field's problem.
fn invalid_fields<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> Failed {
    Failed(Box::new(
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "status": "error",
                "category": "invalid_settings",
                "message": "some settings are not valid",
                "fields": fields.map(|(field, message)| json!({"field": field, "message": message})).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
    ))
}
