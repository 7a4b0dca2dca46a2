//! HubSpot OAuth 2.0 for a public app: `/oauth/authorize` acts as a consenting user, the token
//! endpoints (v1 and v3) issue 30-minute access tokens, plus token metadata, refresh-token delete,
//! v3 introspect/revoke and app uninstall. Tokens expire by the sandbox clock.

use super::app::{App, AppState};
use super::auth::{authenticate, bearer};
use super::error::{oauth_error, ApiError, ApiResult};
use crate::common::sync::lock;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use time::{Duration, OffsetDateTime};

const CODE_TTL: Duration = Duration::minutes(10);

#[derive(Clone, Debug)]
struct AuthCode {
    portal_id: u64,
    redirect_uri: String,
    scopes: BTreeSet<String>,
    expires_at: OffsetDateTime,
    used: bool,
}

/// What an access token grants.
#[derive(Clone, Debug)]
pub struct AccessGrant {
    pub portal_id: u64,
    pub scopes: BTreeSet<String>,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
struct RefreshGrant {
    portal_id: u64,
    scopes: BTreeSet<String>,
    revoked: bool,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired(Duration),
    Revoked,
}

#[derive(Debug, Default)]
pub struct OAuthState {
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
}

/// A freshly issued token pair (the token endpoint's body).
#[derive(Clone, Debug, Serialize)]
pub struct TokenPair {
    pub token_type: &'static str,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub token_use: &'static str,
    pub hub_id: u64,
    pub user_id: u64,
    pub scopes: Vec<String>,
}

fn random_access_token() -> String {
    // Real tokens are opaque base64-ish strings up to ~300 characters starting with "C".
    let mut raw = Vec::with_capacity(96);
    for _ in 0..6 {
        raw.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    format!(
        "CN{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

impl OAuthState {
    fn issue_code(
        &mut self,
        portal_id: u64,
        redirect_uri: &str,
        scopes: BTreeSet<String>,
        now: OffsetDateTime,
    ) -> String {
        let code = uuid::Uuid::new_v4().to_string();
        self.codes.insert(
            code.clone(),
            AuthCode {
                portal_id,
                redirect_uri: redirect_uri.into(),
                scopes,
                expires_at: now + CODE_TTL,
                used: false,
            },
        );
        code
    }

    /// Mints an access token for an existing or new refresh token.
    pub fn mint(
        &mut self,
        portal_id: u64,
        user_id: u64,
        scopes: BTreeSet<String>,
        ttl_seconds: i64,
        refresh: Option<String>,
        now: OffsetDateTime,
    ) -> TokenPair {
        let access_token = random_access_token();
        let refresh_token = refresh.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                portal_id,
                scopes: scopes.clone(),
                expires_at: now + Duration::seconds(ttl_seconds),
                revoked: false,
            },
        );
        self.refresh
            .entry(refresh_token.clone())
            .or_insert(RefreshGrant {
                portal_id,
                scopes: scopes.clone(),
                revoked: false,
            });
        TokenPair {
            token_type: "bearer",
            access_token,
            refresh_token,
            expires_in: ttl_seconds,
            token_use: "access_token",
            hub_id: portal_id,
            user_id,
            scopes: scopes.into_iter().collect(),
        }
    }

    pub fn check_access(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessGrant, TokenProblem> {
        let grant = self.access.get(token).ok_or(TokenProblem::Unknown)?;
        if grant.revoked {
            return Err(TokenProblem::Revoked);
        }
        if now >= grant.expires_at {
            return Err(TokenProblem::Expired(now - grant.expires_at));
        }
        Ok(grant.clone())
    }

    /// Every token of a portal dies (uninstall).
    pub fn revoke_portal(&mut self, portal_id: u64) {
        for g in self
            .access
            .values_mut()
            .filter(|g| g.portal_id == portal_id)
        {
            g.revoked = true;
        }
        for g in self
            .refresh
            .values_mut()
            .filter(|g| g.portal_id == portal_id)
        {
            g.revoked = true;
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/{account}/authorize", get(authorize_pinned))
        .route("/oauth/v1/token", post(token))
        .route("/oauth/v3/token", post(token))
        .route("/oauth/2026-03/token", post(token))
        .route("/oauth/v3/token/introspect", post(introspect))
        .route("/oauth/v3/token/revoke", post(revoke))
        .route("/oauth/v1/access-tokens/{token}", get(access_token_info))
        .route(
            "/oauth/v1/refresh-tokens/{token}",
            get(refresh_token_info).delete(delete_refresh_token),
        )
        .route("/appinstalls/v3/external-install", delete(uninstall))
}

/// Redirect URIs are accepted on loopback hosts only.
pub fn loopback_redirect(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]") | Some("::1")
        )
}

fn split_scopes(text: &str) -> BTreeSet<String> {
    text.split([' ', '+', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

fn authorize_error(message: &str) -> Response {
    ApiError::validation(message).into_response()
}

async fn authorize_pinned(
    State(app): State<AppState>,
    Path(account): Path<String>,
    Query(mut params): Query<HashMap<String, String>>,
) -> Response {
    params.insert("portal_id".into(), account);
    consent(&app, &params)
}

async fn authorize(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    consent(&app, &params)
}

fn consent(app: &App, params: &HashMap<String, String>) -> Response {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != app.config.client_id {
        return authorize_error("Authorization failed because this app's client_id is invalid.");
    }
    let redirect_uri = get("redirect_uri");
    if !loopback_redirect(redirect_uri) {
        return authorize_error("redirect_uri must be an http(s) URL on 127.0.0.1 or localhost");
    }
    let Ok(mut target) = reqwest::Url::parse(redirect_uri) else {
        return authorize_error("bad redirect_uri");
    };
    let allowed: BTreeSet<String> = app.config.app_scopes.iter().cloned().collect();
    let requested = split_scopes(get("scope"));
    let missing: Vec<&String> = requested.difference(&allowed).collect();
    if !missing.is_empty() {
        return authorize_error(&format!(
            "Authorization failed because there is a mismatch between the scopes in the install URL and the app's configured scopes: {}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        ));
    }
    let mut granted = requested;
    granted.extend(
        split_scopes(get("optional_scope"))
            .into_iter()
            .filter(|s| allowed.contains(s)),
    );
    let now = app.services.clock.now();
    let mut state = lock(&app.state);
    let portal = match params.get("portal_id").or_else(|| params.get("portalId")) {
        Some(id) => id
            .parse::<u64>()
            .ok()
            .filter(|id| state.portals.contains_key(id)),
        None => state.portals.keys().next().copied(),
    };
    let Some(portal_id) = portal else {
        return authorize_error("no such portal");
    };
    state.installed.insert(portal_id);
    let code = state
        .oauth
        .issue_code(portal_id, redirect_uri, granted, now);
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = params.get("state") {
        target.query_pairs_mut().append_pair("state", s);
    }
    redirect(target.as_str())
}

fn bad(code: &str, message: &str, rfc: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, code, message, rfc)
}

async fn token(State(app): State<AppState>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let grant_type = get("grant_type");
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return bad(
            "BAD_GRANT_TYPE",
            "missing or unsupported grant type",
            "unsupported_grant_type",
        );
    }
    if get("client_id") != app.config.client_id {
        return bad(
            "BAD_CLIENT_ID",
            "missing or invalid client id",
            "invalid_client",
        );
    }
    if get("client_secret") != app.config.client_secret {
        return bad(
            "BAD_CLIENT_SECRET",
            "missing or invalid client secret",
            "invalid_client",
        );
    }
    let now = app.services.clock.now();
    let policy = app.policy();
    let mut state = lock(&app.state);
    let outcome = if grant_type == "authorization_code" {
        let code = get("code");
        match state.oauth.codes.get_mut(code) {
            Some(grant) if !grant.used && now < grant.expires_at => {
                if grant.redirect_uri != get("redirect_uri") {
                    return bad(
                        "BAD_REDIRECT_URI",
                        "redirect URI does not match initial auth code URL",
                        "invalid_grant",
                    );
                }
                grant.used = true;
                Ok((grant.portal_id, grant.scopes.clone(), None))
            }
            _ => Err(bad(
                "BAD_AUTH_CODE",
                "missing or unknown auth code",
                "invalid_grant",
            )),
        }
    } else {
        let token = get("refresh_token");
        match state.oauth.refresh.get(token).cloned() {
            Some(g) if !g.revoked => {
                let keep = if policy.rotate_refresh_tokens {
                    if let Some(old) = state.oauth.refresh.get_mut(token) {
                        old.revoked = true;
                    }
                    None
                } else {
                    Some(token.to_string())
                };
                Ok((g.portal_id, g.scopes, keep))
            }
            _ => Err(bad(
                "BAD_REFRESH_TOKEN",
                "missing or invalid refresh token",
                "invalid_grant",
            )),
        }
    };
    match outcome {
        Ok((portal_id, scopes, keep)) => {
            let user_id = state.portals.get(&portal_id).map_or(0, |p| p.user_id);
            let pair = state.oauth.mint(
                portal_id,
                user_id,
                scopes,
                policy.access_token_ttl_seconds,
                keep,
                now,
            );
            Json(pair).into_response()
        }
        Err(response) => response,
    }
}

fn access_info(app: &App, token: &str) -> Option<Value> {
    let now = app.services.clock.now();
    let state = lock(&app.state);
    let grant = state.oauth.access.get(token)?;
    if grant.revoked {
        return None;
    }
    let portal = state.portals.get(&grant.portal_id)?;
    let expires_in = (grant.expires_at - now).whole_seconds().max(0);
    Some(json!({
        "token": token,
        "user": portal.user,
        "hub_domain": portal.domain,
        "scopes": grant.scopes,
        "scope_to_scope_group_pks": [],
        "trial_scopes": [],
        "trial_scope_to_scope_group_pks": [],
        "hub_id": grant.portal_id,
        "app_id": app.config.app_id,
        "expires_in": expires_in,
        "user_id": portal.user_id,
        "token_type": "access",
        "is_private_distribution": false,
    }))
}

async fn access_token_info(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match access_info(&app, &token) {
        Some(info) => Json(info).into_response(),
        None => ApiError::not_found("Token not found").into_response(),
    }
}

fn refresh_info(app: &App, token: &str) -> Option<Value> {
    let state = lock(&app.state);
    let grant = state.oauth.refresh.get(token).filter(|g| !g.revoked)?;
    let portal = state.portals.get(&grant.portal_id)?;
    Some(json!({
        "token": token,
        "user": portal.user,
        "hub_domain": portal.domain,
        "scopes": grant.scopes,
        "hub_id": grant.portal_id,
        "client_id": app.config.client_id,
        "user_id": portal.user_id,
        "token_type": "refresh",
    }))
}

async fn refresh_token_info(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match refresh_info(&app, &token) {
        Some(info) => Json(info).into_response(),
        None => ApiError::not_found("Refresh token not found").into_response(),
    }
}

/// Deletes only the refresh token; access tokens keep working until they expire.
async fn delete_refresh_token(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    let mut state = lock(&app.state);
    match state.oauth.refresh.get_mut(&token).filter(|g| !g.revoked) {
        Some(g) => {
            g.revoked = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => ApiError::not_found("Refresh token not found").into_response(),
    }
}

fn client_ok(app: &App, form: &HashMap<String, String>) -> bool {
    form.get("client_id").map(String::as_str) == Some(app.config.client_id.as_str())
        && form.get("client_secret").map(String::as_str) == Some(app.config.client_secret.as_str())
}

async fn introspect(State(app): State<AppState>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !client_ok(&app, &form) {
        return bad(
            "BAD_CLIENT_ID",
            "missing or invalid client credentials",
            "invalid_client",
        );
    }
    let token = form.get("token").cloned().unwrap_or_default();
    if let Some(mut info) = access_info(&app, &token) {
        let now = app.services.clock.now();
        let live = lock(&app.state).oauth.check_access(&token, now).is_ok();
        if let Some(map) = info.as_object_mut() {
            map.insert("active".into(), json!(live));
            map.insert("token_use".into(), json!("access_token"));
            map.insert("client_id".into(), json!(app.config.client_id));
        }
        return Json(info).into_response();
    }
    if let Some(mut info) = refresh_info(&app, &token) {
        if let Some(map) = info.as_object_mut() {
            map.insert("active".into(), json!(true));
            map.insert("token_use".into(), json!("refresh_token"));
            map.insert("app_id".into(), json!(app.config.app_id));
        }
        return Json(info).into_response();
    }
    Json(json!({"active": false})).into_response()
}

async fn revoke(State(app): State<AppState>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !client_ok(&app, &form) {
        return bad(
            "BAD_CLIENT_ID",
            "missing or invalid client credentials",
            "invalid_client",
        );
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let mut state = lock(&app.state);
    if let Some(g) = state.oauth.refresh.get_mut(&token) {
        g.revoked = true;
    }
    if let Some(g) = state.oauth.access.get_mut(&token) {
        g.revoked = true;
    }
    StatusCode::OK.into_response()
}

/// Developer-initiated uninstall: every token of the portal dies and `app.uninstall` subscribers
/// are told (as for a user's uninstall; whether HubSpot notifies this case is UNCONFIRMED).
async fn uninstall(State(app): State<AppState>, headers: HeaderMap) -> ApiResult {
    let caller = authenticate(&app, &headers)?;
    let _ = bearer(&headers);
    let ended = {
        let mut state = lock(&app.state);
        state.oauth.revoke_portal(caller.portal_id);
        state.installed.remove(&caller.portal_id)
    };
    if ended {
        app.webhooks.notify_uninstall(caller.portal_id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_redirect("http://127.0.0.1:8080/callback"));
        assert!(loopback_redirect("http://localhost/cb?x=1"));
        assert!(!loopback_redirect("https://example.com/cb"));
    }

    #[test]
    fn scopes_split_on_spaces_and_plus() {
        let s = split_scopes("oauth crm.objects.contacts.read+automation");
        assert_eq!(s.len(), 3);
    }
}
