//! The install function's pages (a Lambda function URL): HTML for browsers, JSON for clients that
//! ask for it (`Accept: application/json`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::install::{
    CallbackParams, ConnectError, Connected, InitialSyncState, InstallFlow, Intent, Outcome,
    HUBSPOT_CALLBACK_PATH, QBO_CALLBACK_PATH,
};
use super::registry::Connection;
use crate::domain::{ConnectionId, PortalId, RealmId};
use crate::error_class::ErrorClass;
use crate::http::error_response;

pub fn router(flow: Arc<InstallFlow>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/install", get(install))
        .route("/reconnect", get(reconnect))
        .route("/disconnect", get(disconnect))
        .route("/uninstall", get(uninstall))
        .route(HUBSPOT_CALLBACK_PATH, get(hubspot_callback))
        .route(QBO_CALLBACK_PATH, get(qbo_callback))
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "there is no such page")
        })
        .with_state(flow)
}

#[derive(Debug, Default, Deserialize)]
struct StartParams {
    portal: Option<String>,
    connection: Option<String>,
    #[serde(rename = "realmId")]
    realm_id: Option<String>,
}

/// Whether the client asked for JSON rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

/// This function's public address: configured, or the request's own host (a function URL's host
/// is the URL itself; `x-forwarded-proto` says the scheme).
fn base_url(flow: &InstallFlow, headers: &HeaderMap) -> Result<String, ConnectError> {
    if let Some(base) = &flow.config.public_base_url {
        return Ok(base.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .ok_or(ConnectError::MissingParameter("Host header"))?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
    {
        Some("http") => "http",
        _ => "https",
    };
    Ok(format!("{scheme}://{host}"))
}

fn parse<T: std::str::FromStr<Err = crate::domain::InvalidValue>>(
    name: &'static str,
    raw: Option<&str>,
) -> Result<Option<T>, ConnectError> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            r.parse::<T>().map_err(|e| ConnectError::InvalidParameter {
                name,
                reason: e.to_string(),
            })
        })
        .transpose()
}

async fn home() -> Response {
    page(
        StatusCode::OK,
        "Connect HubSpot and QuickBooks",
        "<p>Connect a HubSpot portal with a QuickBooks Online company.</p>\
         <p><a href=\"install\">Connect</a></p>",
    )
}

async fn install(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let started = async {
        let portal = parse::<PortalId>("portal", params.portal.as_deref())?;
        flow.start(Intent::Install { portal }, &base_url(&flow, &headers)?)
            .await
    };
    answer(started.await, &headers)
}

/// Intuit's "reconnect URL": by connection, or by the company Intuit names.
async fn reconnect(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let started = async {
        let connection = match (
            parse::<ConnectionId>("connection", params.connection.as_deref())?,
            parse::<RealmId>("realmId", params.realm_id.as_deref())?,
        ) {
            (Some(connection), _) => connection,
            (None, Some(realm)) => flow.holder_of(&realm).await?,
            (None, None) => return Err(ConnectError::MissingParameter("connection")),
        };
        flow.start(
            Intent::Reconnect { connection },
            &base_url(&flow, &headers)?,
        )
        .await
    };
    answer(started.await, &headers)
}

async fn disconnect(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let started = async {
        let connection = parse::<ConnectionId>("connection", params.connection.as_deref())?
            .ok_or(ConnectError::MissingParameter("connection"))?;
        flow.start(
            Intent::Disconnect { connection },
            &base_url(&flow, &headers)?,
        )
        .await
    };
    answer(started.await, &headers)
}

async fn uninstall(State(flow): State<Arc<InstallFlow>>, headers: HeaderMap) -> Response {
    let started = async {
        flow.start(Intent::Uninstall, &base_url(&flow, &headers)?)
            .await
    };
    answer(started.await, &headers)
}

async fn hubspot_callback(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    answer(flow.hubspot_callback(&params).await, &headers)
}

async fn qbo_callback(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    answer(flow.qbo_callback(&params).await, &headers)
}

fn answer(outcome: Result<Outcome, ConnectError>, headers: &HeaderMap) -> Response {
    let json = wants_json(headers);
    match outcome {
        Ok(Outcome::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Ok(Outcome::Connected(connected)) if json => {
            Json(connected_json(&connected)).into_response()
        }
        Ok(Outcome::Connected(connected)) => connected_page(&connected),
        Ok(Outcome::Disconnected(connection)) if json => Json(json!({
            "status": "disconnected",
            "connection_id": connection.id,
            "message": disconnected_message(&connection),
        }))
        .into_response(),
        Ok(Outcome::Disconnected(connection)) => page(
            StatusCode::OK,
            "Disconnected",
            &format!("<p>{}</p>", escape(&disconnected_message(&connection))),
        ),
        Ok(Outcome::Uninstalled {
            portal,
            connections,
        }) => {
            let message = format!(
                "The app is uninstalled from HubSpot portal {portal}; {} connection(s) \
                 disconnected, tokens revoked. The sync history is kept.",
                connections.len()
            );
            if json {
                Json(json!({
                    "status": "uninstalled",
                    "portal_id": portal,
                    "connections": connections.iter().map(|c| &c.id).collect::<Vec<_>>(),
                    "message": message,
                }))
                .into_response()
            } else {
                page(
                    StatusCode::OK,
                    "Uninstalled",
                    &format!("<p>{}</p>", escape(&message)),
                )
            }
        }
        Err(error) => {
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            tracing::warn!(category = error.category(), %error, "connect request refused");
            if json {
                error_response(status, error.category(), error.to_string())
            } else {
                // A refusal is decided before anything is written; a failure on our side or at a
                // provider may come after some writes, and trying again finishes the job.
                let (title, next) = match error.class() {
                    ErrorClass::Terminal => (
                        "The connection was not made",
                        "Nothing was changed. <a href=\"/install\">Start again</a>.",
                    ),
                    ErrorClass::Retryable => (
                        "Something went wrong",
                        "This is a passing failure on our side or at the provider. Please try \
                         again in a minute: <a href=\"/install\">start again</a>, or repeat the \
                         link you followed.",
                    ),
                };
                page(
                    status,
                    title,
                    &format!("<p>{}</p><p>{next}</p>", escape(&error.to_string())),
                )
            }
        }
    }
}

fn disconnected_message(connection: &Connection) -> String {
    format!(
        "HubSpot portal {} and QuickBooks company {} are disconnected: tokens revoked, syncing \
         stopped. The sync history is kept.",
        connection.portal_id, connection.company_name
    )
}

fn links(connected: &Connected) -> serde_json::Value {
    let base = &connected.base_url;
    let connection = &connected.connection;
    json!({
        "add_company": format!("{base}/install?portal={}", connection.portal_id),
        "reconnect": format!("{base}/reconnect?connection={}", connection.id),
        "disconnect": format!("{base}/disconnect?connection={}", connection.id),
    })
}

fn connected_json(connected: &Connected) -> serde_json::Value {
    let connection = &connected.connection;
    json!({
        "status": "connected",
        "created": connected.created,
        "connection_id": connection.id,
        "portal_id": connection.portal_id,
        "realm_id": connection.realm_id,
        "company_name": connection.company_name,
        "warnings": connected.warnings,
        "initial_sync": connected.initial_sync,
        "links": links(connected),
    })
}

fn connected_page(connected: &Connected) -> Response {
    let connection = &connected.connection;
    let warnings: String = connected
        .warnings
        .iter()
        .map(|w| format!("<li>{}</li>", escape(&w.message)))
        .collect();
    let links = links(connected);
    let link = |name: &str| escape(links[name].as_str().unwrap_or_default());
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "<p>HubSpot portal {} is connected with QuickBooks company {}.</p><p>{}</p>\
             {}<ul>\
             <li><a href=\"{}\">Connect another QuickBooks company</a></li>\
             <li><a href=\"{}\">Reconnect</a></li>\
             <li><a href=\"{}\">Disconnect</a></li></ul>",
            escape(connection.portal_id.as_str()),
            escape(&connection.company_name),
            match connected.initial_sync {
                InitialSyncState::Queued => "The initial sync has started.",
                InitialSyncState::Scheduled => "The initial sync starts within a few minutes.",
                InitialSyncState::AlreadyRequested => "Syncing goes on as before.",
            },
            if warnings.is_empty() {
                String::new()
            } else {
                format!("<h2>Before you sync</h2><ul>{warnings}</ul>")
            },
            link("add_company"),
            link("reconnect"),
            link("disconnect"),
        ),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>"
        )),
    )
        .into_response()
}

/// HTML-escapes text that may come from outside (a provider's error description).
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn json_is_chosen_only_when_asked_for() {
        let cases = [
            (None, false),
            (Some("text/html,application/xhtml+xml,*/*;q=0.8"), false),
            (Some("application/json"), true),
            (Some("application/json, text/plain"), true),
        ];
        for (accept, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(header::ACCEPT, accept.parse().unwrap());
            }
            assert_eq!(wants_json(&headers), expected, "{accept:?}");
        }
    }
}
