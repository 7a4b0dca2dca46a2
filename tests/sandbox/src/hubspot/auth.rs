//! Bearer-token authentication and scope checks for API calls (401/403 in HubSpot's shapes).

use super::app::App;
use super::error::ApiError;
use super::oauth::TokenProblem;
use crate::common::sync::lock;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

/// Who is calling: the portal the token belongs to and its scopes.
#[derive(Clone, Debug)]
pub struct Caller {
    pub portal_id: u64,
    pub scopes: BTreeSet<String>,
}

impl Caller {
    /// 403 `MISSING_SCOPES` unless the token has one of `any_of`.
    pub fn require(&self, any_of: &[String]) -> Result<(), ApiError> {
        if any_of.is_empty() || any_of.iter().any(|s| self.scopes.contains(s)) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        )
        .with_errors(vec![json!({
            "message": "One or more of the following scopes are required.",
            "context": {"requiredGranularScopes": any_of},
        })])
        .with_context(json!({"requiredScopes": any_of})))
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
        .filter(|t| !t.is_empty())
}

/// Checks the bearer token (never echoing it).
pub fn authenticate(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ));
    };
    let now = app.services.clock.now();
    let state = lock(&app.state);
    match state.oauth.check_access(&token, now) {
        Ok(grant) => Ok(Caller {
            portal_id: grant.portal_id,
            scopes: grant.scopes,
        }),
        Err(TokenProblem::Expired(ago)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!(
                "The OAuth token used to make this call expired {} minute(s) ago.",
                ago.whole_minutes()
            ),
        )),
        Err(TokenProblem::Unknown | TokenProblem::Revoked) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The OAuth token used to make this call is invalid.",
        )),
    }
}
