//! Intuit OAuth 2.0 as a consenting user would see it: `authorize` redirects straight back with a
//! code, the token endpoint issues 1-hour access tokens and rotating refresh tokens, plus revoke,
//! userinfo, JWKS and the OpenID discovery document.

use super::app::{App, AppState};
use crate::common::sync::lock;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

pub const AUTHORIZE_PATH: &str = "/connect/oauth2";
pub const TOKEN_PATH: &str = "/oauth2/v1/tokens/bearer";
pub const REVOKE_PATH: &str = "/v2/oauth2/tokens/revoke";
pub const USERINFO_PATH: &str = "/v1/openid_connect/userinfo";
pub const JWKS_PATH: &str = "/op/v1/jwks";
pub const DISCOVERY_PATH: &str = "/.well-known/openid_sandbox_configuration";

/// Authorization codes live five minutes and work once.
const CODE_TTL: Duration = Duration::minutes(5);
/// Refresh tokens have an absolute five-year cap.
const HARD_TTL: Duration = Duration::days(5 * 365);

#[derive(Clone, Debug)]
struct AuthCode {
    realm_id: String,
    redirect_uri: String,
    expires_at: OffsetDateTime,
    used: bool,
}

#[derive(Clone, Debug)]
pub struct AccessGrant {
    pub realm_id: String,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
struct RefreshGrant {
    realm_id: String,
    expires_at: OffsetDateTime,
    hard_expires_at: OffsetDateTime,
    superseded_at: Option<OffsetDateTime>,
    revoked: bool,
}

/// Token lifetimes and rotation policy (changeable through `/_sandbox/oauth`).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct TokenPolicy {
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_seconds: i64,
    /// Every refresh returns a new refresh token; the previous one dies after the grace period.
    pub rotate_refresh_tokens: bool,
    pub refresh_grace_seconds: i64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 3600,
            refresh_token_ttl_seconds: 8_726_400,
            rotate_refresh_tokens: true,
            refresh_grace_seconds: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct OAuthState {
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
    issued: u64,
}

/// A freshly issued token pair.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenPair {
    pub realm_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub x_refresh_token_expires_in: i64,
    #[serde(skip)]
    pub hard_expires_in: i64,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired,
    Revoked,
}

impl OAuthState {
    fn random_token() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    pub fn issue_code(
        &mut self,
        realm_id: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> String {
        let code = format!("AB11{}", Self::random_token());
        self.codes.insert(
            code.clone(),
            AuthCode {
                realm_id: realm_id.into(),
                redirect_uri: redirect_uri.into(),
                expires_at: now + CODE_TTL,
                used: false,
            },
        );
        code
    }

    /// Mints a new pair for `realm_id` (`hard_expires_at` carries over on refresh).
    pub fn mint(
        &mut self,
        realm_id: &str,
        now: OffsetDateTime,
        policy: &TokenPolicy,
        hard_expires_at: Option<OffsetDateTime>,
    ) -> TokenPair {
        self.issued += 1;
        // Real access tokens are ~1 KB JWE strings; clients must not assume a short length.
        let access_token = format!(
            "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..{}{}{}",
            Self::random_token(),
            Self::random_token(),
            Self::random_token()
        );
        let refresh_token = format!("RT1-{}-H0-{}", self.issued, Self::random_token());
        let access_ttl = Duration::seconds(policy.access_token_ttl_seconds);
        let refresh_ttl = Duration::seconds(policy.refresh_token_ttl_seconds);
        let hard = hard_expires_at.unwrap_or(now + HARD_TTL);
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                realm_id: realm_id.into(),
                expires_at: now + access_ttl,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshGrant {
                realm_id: realm_id.into(),
                expires_at: (now + refresh_ttl).min(hard),
                hard_expires_at: hard,
                superseded_at: None,
                revoked: false,
            },
        );
        TokenPair {
            realm_id: realm_id.into(),
            access_token,
            refresh_token,
            expires_in: policy.access_token_ttl_seconds,
            x_refresh_token_expires_in: refresh_ttl.min(hard - now).whole_seconds(),
            hard_expires_in: (hard - now).whole_seconds(),
        }
    }

    /// The realm an access token is good for, at `now`.
    pub fn check_access(&self, token: &str, now: OffsetDateTime) -> Result<String, TokenProblem> {
        let grant = self.access.get(token).ok_or(TokenProblem::Unknown)?;
        if grant.revoked {
            return Err(TokenProblem::Revoked);
        }
        if now >= grant.expires_at {
            return Err(TokenProblem::Expired);
        }
        Ok(grant.realm_id.clone())
    }

    fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<String, &'static str> {
        let grant = self.codes.get_mut(code).ok_or("Token invalid")?;
        if grant.used || now >= grant.expires_at {
            return Err("Token invalid");
        }
        if grant.redirect_uri != redirect_uri {
            return Err("Redirect URI mismatch");
        }
        grant.used = true;
        Ok(grant.realm_id.clone())
    }

    fn refresh(
        &mut self,
        token: &str,
        now: OffsetDateTime,
        policy: &TokenPolicy,
    ) -> Result<TokenPair, &'static str> {
        let grant = self.refresh.get(token).cloned().ok_or("Token invalid")?;
        if grant.revoked || now >= grant.expires_at || now >= grant.hard_expires_at {
            return Err("Token invalid");
        }
        if let Some(at) = grant.superseded_at {
            if now > at + Duration::seconds(policy.refresh_grace_seconds) {
                return Err("Token invalid");
            }
        }
        if !policy.rotate_refresh_tokens {
            // Same refresh value back, window rolled forward; only a new access token.
            let mut pair = self.mint(&grant.realm_id, now, policy, Some(grant.hard_expires_at));
            self.refresh.remove(&pair.refresh_token);
            pair.refresh_token = token.to_string();
            if let Some(g) = self.refresh.get_mut(token) {
                g.expires_at = (now + Duration::seconds(policy.refresh_token_ttl_seconds))
                    .min(g.hard_expires_at);
            }
            return Ok(pair);
        }
        if let Some(g) = self.refresh.get_mut(token) {
            g.superseded_at.get_or_insert(now);
        }
        Ok(self.mint(&grant.realm_id, now, policy, Some(grant.hard_expires_at)))
    }

    /// Revoking either token disconnects the app from the realm: every token for it dies.
    fn revoke(&mut self, token: &str) -> bool {
        let realm = self
            .refresh
            .get(token)
            .map(|g| g.realm_id.clone())
            .or_else(|| self.access.get(token).map(|g| g.realm_id.clone()));
        let Some(realm) = realm else { return false };
        self.revoke_realm(&realm);
        true
    }

    /// The app is disconnected from `realm_id` (a revoke, or the user disconnecting it inside
    /// QuickBooks): every access and refresh token for it dies.
    pub fn revoke_realm(&mut self, realm_id: &str) {
        for g in self.refresh.values_mut().filter(|g| g.realm_id == realm_id) {
            g.revoked = true;
        }
        for g in self.access.values_mut().filter(|g| g.realm_id == realm_id) {
            g.revoked = true;
        }
    }
}

pub fn routes() -> Router<AppState> {
    let discovery_paths = [
        DISCOVERY_PATH,
        "/.well-known/openid_sandbox_configuration/",
        "/.well-known/openid-sandbox-configuration",
        "/.well-known/openid_configuration",
        "/.well-known/openid_configuration/",
        "/.well-known/openid-configuration",
    ];
    let mut router = Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(USERINFO_PATH, get(userinfo))
        .route(JWKS_PATH, get(|| async { Json(json!({"keys": []})) }));
    for path in discovery_paths {
        router = router.route(path, get(discovery));
    }
    router
}

/// The base URL the client used to reach us (so `localhost` stays `localhost`).
pub fn request_base(app: &App, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("http://{host}"))
        .unwrap_or_else(|| app.base_url())
}

async fn discovery(State(app): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = request_base(&app, &headers);
    Json(json!({
        "issuer": format!("{base}/op/v1"),
        "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{base}{USERINFO_PATH}"),
        "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"]
    }))
}

fn oauth_error(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let mut body = json!({"error": error});
    if let (Some(d), Some(map)) = (description, body.as_object_mut()) {
        map.insert("error_description".into(), Value::String(d.into()));
    }
    (status, Json(body)).into_response()
}

/// Redirect URIs are accepted on loopback hosts only (the sandbox's stand-in for the app's
/// registered list).
fn loopback_redirect(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]") | Some("::1")
        )
}

async fn authorize(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != app.config.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            Some("Unknown client_id"),
        );
    }
    let redirect_uri = get("redirect_uri");
    if !loopback_redirect(redirect_uri) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("redirect_uri must be an http(s) URL on 127.0.0.1 or localhost"),
        );
    }
    let Ok(mut target) = reqwest::Url::parse(redirect_uri) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("bad redirect_uri"),
        );
    };
    if get("response_type") != "code" {
        target
            .query_pairs_mut()
            .append_pair("error", "unsupported_response_type")
            .append_pair("state", get("state"));
        return redirect(target.as_str());
    }
    let now = app.services.clock.now();
    let code_and_realm = {
        let mut state = lock(&app.state);
        let realm_id = match params.get("realm_id").or_else(|| params.get("realmId")) {
            Some(id) if state.realm(id).is_some() => Some(id.clone()),
            Some(_) => None,
            None => state.realm_ids().into_iter().next(),
        };
        realm_id.map(|realm| (state.oauth.issue_code(&realm, redirect_uri, now), realm))
    };
    let Some((code, realm_id)) = code_and_realm else {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", get("state"));
        return redirect(target.as_str());
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"))
        .append_pair("realmId", &realm_id);
    redirect(target.as_str())
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// Client authentication: HTTP Basic, or `client_id`/`client_secret` in the form.
fn client_authenticated(app: &App, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let from_basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(i, s)| (i.to_string(), s.to_string()))
        });
    let (id, secret) = match from_basic {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    id == app.config.client_id && secret == app.config.client_secret
}

async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !client_authenticated(&app, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    }
    let now = app.services.clock.now();
    let policy = app.token_policy();
    let outcome = {
        let mut state = lock(&app.state);
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").map(String::as_str).unwrap_or("");
                let redirect_uri = form.get("redirect_uri").map(String::as_str).unwrap_or("");
                state
                    .oauth
                    .exchange_code(code, redirect_uri, now)
                    .map(|realm| state.oauth.mint(&realm, now, &policy, None))
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
                state.oauth.refresh(token, now, &policy)
            }
            _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None),
        }
    };
    match outcome {
        Ok(pair) => {
            let mut body = json!({
                "token_type": "bearer",
                "access_token": pair.access_token,
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "x_refresh_token_expires_in": pair.x_refresh_token_expires_in,
            });
            let wants_hard = headers
                .get("x-include-refresh-token-hard-expires-in")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if let (true, Some(map)) = (wants_hard, body.as_object_mut()) {
                map.insert(
                    "x_refresh_token_hard_expires_in".into(),
                    Value::from(pair.hard_expires_in),
                );
            }
            Json(body).into_response()
        }
        Err(description) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", Some(description))
        }
    }
}

async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !client_authenticated(&app, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    }
    // intuit-oauth sends JSON; node-quickbooks sends a form. Accept both.
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
        .or_else(|| form.get("token").cloned())
        .unwrap_or_default();
    if token.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("token is required"),
        );
    }
    lock(&app.state).oauth.revoke(&token);
    // Intuit answers 200 whether or not the token was live.
    StatusCode::OK.into_response()
}

async fn userinfo(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = app.services.clock.now();
    let token = bearer(&headers).unwrap_or_default();
    match lock(&app.state).oauth.check_access(&token, now) {
        Ok(realm) => Json(json!({
            "sub": format!("sandbox-user-{realm}"),
            "givenName": "Sandbox",
            "familyName": "User",
            "email": "sandbox.user@example.com",
            "emailVerified": true,
            "realmid": realm,
        }))
        .into_response(),
        Err(_) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", None),
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_redirect("http://127.0.0.1:8080/callback"));
        assert!(loopback_redirect("http://localhost/cb?x=1"));
        assert!(!loopback_redirect("https://example.com/cb"));
        assert!(!loopback_redirect("not a url"));
    }

    #[test]
    fn refresh_rotates_and_old_token_dies() {
        let mut s = OAuthState::default();
        let policy = TokenPolicy::default();
        let now = OffsetDateTime::now_utc();
        let first = s.mint("1", now, &policy, None);
        let second = s.refresh(&first.refresh_token, now, &policy);
        assert!(second.is_ok());
        let second = second.unwrap_or_else(|_| unreachable!());
        assert_ne!(second.refresh_token, first.refresh_token);
        assert!(s
            .refresh(&first.refresh_token, now + Duration::seconds(1), &policy)
            .is_err());
        assert!(s.refresh(&second.refresh_token, now, &policy).is_ok());
    }
}
