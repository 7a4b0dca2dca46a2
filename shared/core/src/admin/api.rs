//! The admin JSON API: thin handlers over [`AdminService`]'s methods.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::records::RecordFilter;
use super::{failed, AdminService, Failed, Outcome, RetryRequest};
use crate::status::categories::CATEGORIES;

type Admin = State<Arc<AdminService>>;

pub(super) fn routes() -> Router<Arc<AdminService>> {
    Router::new()
        .route("/api/session", get(session))
        .route("/api/categories", get(categories))
        .route("/api/connections", get(list_connections))
        .route("/api/connections/{id}/overview", get(overview))
        .route("/api/connections/{id}/records/{object}", get(list_records))
        .route(
            "/api/connections/{id}/records/{object}/{side}/{record}",
            get(one_record),
        )
        .route("/api/connections/{id}/export/{object}", get(export))
        .route("/api/connections/{id}/retry/{object}", post(retry))
        .route(
            "/api/connections/{id}/settings/{object}",
            get(read_settings)
                .put(write_settings)
                .delete(delete_settings),
        )
        .route(
            "/api/connections/{id}/settings/{object}/recommended",
            post(add_recommended),
        )
        .route("/api/connections/{id}/preview/{object}", post(preview))
        .route("/api/connections/{id}/action-runs", get(action_runs))
        .route(
            "/api/connections/{id}/action-settings",
            get(read_action_settings).put(write_action_settings),
        )
}

fn answer(outcome: Outcome) -> Response {
    match outcome {
        Ok(value) => Json(value).into_response(),
        Err(failed) => failed.into_response(),
    }
}

/// The JSON body, or `400 malformed_<what>`.
fn body_of<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Failed> {
    serde_json::from_slice(body).map_err(|e| {
        failed(
            StatusCode::BAD_REQUEST,
            &format!("malformed_{}", what.replace(' ', "_")),
            format!("the body is not {what}: {e}"),
        )
    })
}

/// The signed-in person's portals and the token their changes carry (`X-CSRF-Token`).
async fn session(State(admin): Admin, headers: HeaderMap) -> Response {
    answer(
        async {
            match admin.caller(&headers).await? {
                super::Caller::Person(session) => Ok(json!({
                    "portals": session.portals,
                    "ends_at": session.ends_at,
                    "csrf_token": session.csrf_token(),
                })),
                super::Caller::Operator => Ok(json!({ "operator": true })),
            }
        }
        .await,
    )
}

async fn categories(State(admin): Admin, headers: HeaderMap) -> Response {
    answer(
        async {
            admin.caller(&headers).await?;
            Ok(json!({ "categories": CATEGORIES }))
        }
        .await,
    )
}

async fn list_connections(State(admin): Admin, headers: HeaderMap) -> Response {
    answer(async { admin.list_connections(&admin.caller(&headers).await?).await }.await)
}

async fn overview(State(admin): Admin, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(async { admin.overview(&admin.caller(&headers).await?, &id).await }.await)
}

async fn list_records(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    Query(filter): Query<RecordFilter>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = admin.caller(&headers).await?;
            admin.records(&caller, &id, &object, &filter).await
        }
        .await,
    )
}

async fn one_record(
    State(admin): Admin,
    Path((id, object, side, record)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = admin.caller(&headers).await?;
            admin.record(&caller, &id, &object, &side, &record).await
        }
        .await,
    )
}

/// V4: the filtered records as CSV, streamed page by page.
async fn export(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    Query(filter): Query<RecordFilter>,
    headers: HeaderMap,
) -> Response {
    let started = async {
        let caller = admin.caller(&headers).await?;
        admin.export(&caller, &id, &object, filter).await
    };
    match started.await {
        Ok(response) => response,
        Err(failed) => failed.into_response(),
    }
}

async fn retry(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(
        async {
            let caller = admin.changer(&headers, None).await?;
            let request: RetryRequest = body_of(&body, "a retry")?;
            admin.retry(&caller, &id, &object, request).await
        }
        .await,
    )
}

async fn read_settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = admin.caller(&headers).await?;
            admin.read_settings(&caller, &id, &object).await
        }
        .await,
    )
}

/// The version an edit was made from (`If-Match`), if sent.
fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, Failed> {
    headers
        .get("if-match")
        .map(|v| {
            v.to_str()
                .ok()
                .map(|v| v.trim().trim_matches('"'))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    failed(
                        StatusCode::BAD_REQUEST,
                        "invalid_version",
                        "If-Match must be the settings' version number, as read",
                    )
                })
        })
        .transpose()
}

async fn write_settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(
        async {
            let caller = admin.changer(&headers, None).await?;
            let expected = expected_version(&headers)?;
            let wanted = body_of(&body, "settings")?;
            admin
                .write_settings(&caller, &id, &object, wanted, expected)
                .await
        }
        .await,
    )
}

async fn delete_settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = admin.changer(&headers, None).await?;
            admin.delete_settings(&caller, &id, &object).await
        }
        .await,
    )
}

async fn add_recommended(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = admin.changer(&headers, None).await?;
            admin.add_recommended(&caller, &id, &object).await
        }
        .await,
    )
}

/// What the first run with these settings (the saved ones when the body is `{}` or empty)
/// would do; reads both sides and writes nothing.
async fn preview(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(
        async {
            let caller = admin.caller(&headers).await?;
            let candidate = match serde_json::from_slice::<serde_json::Value>(&body) {
                _ if body.iter().all(u8::is_ascii_whitespace) => None,
                Ok(serde_json::Value::Object(map)) if map.is_empty() => None,
                _ => Some(body_of(&body, "settings")?),
            };
            admin.preview(&caller, &id, &object, candidate).await
        }
        .await,
    )
}

async fn action_runs(State(admin): Admin, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(async { admin.action_runs(&admin.caller(&headers).await?, &id).await }.await)
}

async fn read_action_settings(
    State(admin): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            admin
                .read_action_settings(&admin.caller(&headers).await?, &id)
                .await
        }
        .await,
    )
}

async fn write_action_settings(
    State(admin): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(
        async {
            let caller = admin.changer(&headers, None).await?;
            let settings = body_of(&body, "action settings")?;
            admin.write_action_settings(&caller, &id, settings).await
        }
        .await,
    )
}
