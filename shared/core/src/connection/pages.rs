//! The install function's pages (a Lambda function URL): HTML for browsers, JSON for clients that
//! ask for it (`Accept: application/json`).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::install::{
    CallbackParams, Confirmation, ConnectError, Connected, InitialSyncState, InstallFlow, Intent,
    Outcome, HUBSPOT_CALLBACK_PATH, QBO_CALLBACK_PATH,
};
use super::oauth_state::BrowserKey;
use super::registry::Connection;
use crate::domain::{ConnectionId, PortalId, RealmId};
use crate::error_class::ErrorClass;
use crate::http::{cookies, error_response};

pub fn router(flow: Arc<InstallFlow>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/install", get(install))
        .route("/reconnect", get(reconnect))
        .route("/disconnect", get(disconnect))
        .route("/uninstall", get(uninstall))
        .route(CONFIRM_PATH, post(confirm))
        .route(HUBSPOT_CALLBACK_PATH, get(hubspot_callback))
        .route(QBO_CALLBACK_PATH, get(qbo_callback))
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "there is no such page")
        })
        .with_state(flow)
}

/// Where a confirmation page posts to.
pub const CONFIRM_PATH: &str = "/confirm";
/// The cookie that binds a flow to its browser (`__Host-` prefixed on https).
pub const BROWSER_COOKIE: &str = "hsqbo-browser";
/// Long enough for both consents and a confirmation.
const BROWSER_COOKIE_MAX_AGE: u32 = 3600;

/// The browser's key from its cookie, if it sent one of ours.
pub(crate) fn browser_of(headers: &HeaderMap, base_url: &str) -> Option<BrowserKey> {
    cookies::read(headers, BROWSER_COOKIE, base_url).and_then(BrowserKey::parse)
}

/// `Set-Cookie` for the browser's key: SameSite=Lax (sent on the providers' top-level
/// redirects back to us, not on cross-site posts).
pub(crate) fn browser_cookie(browser: &BrowserKey, base_url: &str) -> String {
    cookies::set(
        BROWSER_COOKIE,
        browser.cookie_value(),
        base_url,
        BROWSER_COOKIE_MAX_AGE,
        cookies::SameSite::Lax,
    )
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
    crate::http::request_origin(headers).ok_or(ConnectError::MissingParameter("Host header"))
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

/// Starts a flow in this browser: its key is reused, or made and set as a cookie.
async fn start(
    flow: &InstallFlow,
    headers: &HeaderMap,
    intent: Result<Intent, ConnectError>,
) -> Response {
    let base = match base_url(flow, headers) {
        Ok(base) => base,
        Err(error) => return answer(Err(error), headers),
    };
    let browser = browser_of(headers, &base).unwrap_or_else(BrowserKey::generate);
    let started = match intent {
        Ok(intent) => flow.start(intent, &base, &browser).await,
        Err(error) => Err(error),
    };
    let mut response = answer(started, headers);
    if let Ok(cookie) = HeaderValue::from_str(&browser_cookie(&browser, &base)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn install(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let intent = parse::<PortalId>("portal", params.portal.as_deref())
        .map(|portal| Intent::Install { portal });
    start(&flow, &headers, intent).await
}

/// Intuit's "reconnect URL": by connection, or by the company Intuit names.
async fn reconnect(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let intent = async {
        let connection = match (
            parse::<ConnectionId>("connection", params.connection.as_deref())?,
            parse::<RealmId>("realmId", params.realm_id.as_deref())?,
        ) {
            (Some(connection), _) => connection,
            (None, Some(realm)) => flow.holder_of(&realm).await?,
            (None, None) => return Err(ConnectError::MissingParameter("connection")),
        };
        Ok(Intent::Reconnect { connection })
    };
    start(&flow, &headers, intent.await).await
}

async fn disconnect(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Response {
    let intent = parse::<ConnectionId>("connection", params.connection.as_deref())
        .and_then(|c| c.ok_or(ConnectError::MissingParameter("connection")))
        .map(|connection| Intent::Disconnect { connection });
    start(&flow, &headers, intent).await
}

async fn uninstall(State(flow): State<Arc<InstallFlow>>, headers: HeaderMap) -> Response {
    start(&flow, &headers, Ok(Intent::Uninstall)).await
}

/// The browser a callback or confirmation came from, by its cookie.
fn calling_browser(
    flow: &InstallFlow,
    headers: &HeaderMap,
) -> Result<Option<BrowserKey>, ConnectError> {
    Ok(browser_of(headers, &base_url(flow, headers)?))
}

async fn hubspot_callback(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let outcome = match calling_browser(&flow, &headers) {
        Ok(browser) => flow.hubspot_callback(&params, browser.as_ref()).await,
        Err(error) => Err(error),
    };
    answer(outcome, &headers)
}

async fn qbo_callback(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let outcome = match calling_browser(&flow, &headers) {
        Ok(browser) => flow.qbo_callback(&params, browser.as_ref()).await,
        Err(error) => Err(error),
    };
    answer(outcome, &headers)
}

#[derive(Default, Deserialize)]
struct ConfirmParams {
    token: Option<String>,
}

/// The confirmation page's POST: only this acts on a disconnect or uninstall.
async fn confirm(
    State(flow): State<Arc<InstallFlow>>,
    headers: HeaderMap,
    form: Result<Form<ConfirmParams>, FormRejection>,
) -> Response {
    // A body that is not a form has no token: refused below like a missing one.
    let token = form.ok().and_then(|Form(params)| params.token);
    let outcome = match calling_browser(&flow, &headers) {
        Ok(browser) => flow.confirm(token.as_deref(), browser.as_ref()).await,
        Err(error) => Err(error),
    };
    answer(outcome, &headers)
}

fn answer(outcome: Result<Outcome, ConnectError>, headers: &HeaderMap) -> Response {
    let json = wants_json(headers);
    match outcome {
        Ok(Outcome::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Ok(Outcome::Confirm(confirmation)) if json => {
            Json(confirmation_json(&confirmation)).into_response()
        }
        Ok(Outcome::Confirm(confirmation)) => confirmation_page(&confirmation),
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

fn confirmation_message(confirmation: &Confirmation) -> (&'static str, String) {
    let companies: Vec<&str> = confirmation
        .connections
        .iter()
        .map(|c| c.company_name.as_str())
        .collect();
    match &confirmation.intent {
        Intent::Uninstall => (
            "uninstall",
            format!(
                "Uninstall the app from HubSpot portal {} and disconnect {} QuickBooks \
                 compan{} ({})? Tokens are revoked and syncing stops; the sync history is kept.",
                confirmation.portal,
                companies.len(),
                if companies.len() == 1 { "y" } else { "ies" },
                companies.join(", ")
            ),
        ),
        _ => (
            "disconnect",
            format!(
                "Disconnect HubSpot portal {} from QuickBooks company {}? Tokens are revoked and \
                 syncing stops; the sync history is kept.",
                confirmation.portal,
                companies.join(", ")
            ),
        ),
    }
}

fn confirmation_json(confirmation: &Confirmation) -> serde_json::Value {
    let (action, message) = confirmation_message(confirmation);
    json!({
        "status": "confirm",
        "action": action,
        "portal_id": confirmation.portal,
        "connections": confirmation.connections.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "message": message,
        "confirm_url": format!("{}{CONFIRM_PATH}", confirmation.base_url),
        "token": confirmation.token,
    })
}

fn confirmation_page(confirmation: &Confirmation) -> Response {
    let (action, message) = confirmation_message(confirmation);
    page(
        StatusCode::OK,
        "Please confirm",
        &format!(
            "<p>{}</p><form method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Yes, {action}</button></form>\
             <p><a href=\"/\">No, keep everything as it is</a></p>",
            escape(&message),
            escape(&format!("{}{CONFIRM_PATH}", confirmation.base_url)),
            escape(&confirmation.token),
        ),
    )
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
    fn the_browser_cookie_is_pinned_to_the_host_on_https() {
        let key = BrowserKey::generate();
        let https = browser_cookie(&key, "https://abc.lambda-url.eu-west-1.on.aws");
        assert!(https.starts_with(&format!("__Host-hsqbo-browser={};", key.cookie_value())));
        for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
            assert!(https.contains(attribute), "{https}");
        }
        assert!(!https.contains("Domain"), "__Host- cookies carry no Domain");
        let http = browser_cookie(&key, "http://127.0.0.1:4000");
        assert!(
            http.starts_with("hsqbo-browser=") && !http.contains("Secure"),
            "{http}"
        );

        // It is read back under the name of the scheme it was set for, among other cookies.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!(
                "theme=dark; __Host-hsqbo-browser={}; x=1",
                key.cookie_value()
            )
            .parse()
            .unwrap(),
        );
        let read = browser_of(&headers, "https://abc.example").map(|k| k.cookie_value().to_owned());
        assert_eq!(read.as_deref(), Some(key.cookie_value()));
        assert!(browser_of(&headers, "http://abc.example").is_none());
        headers.insert(
            header::COOKIE,
            "__Host-hsqbo-browser=forged".parse().unwrap(),
        );
        assert!(browser_of(&headers, "https://abc.example").is_none());
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
