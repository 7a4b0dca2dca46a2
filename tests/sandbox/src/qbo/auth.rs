//! Bearer-token checks for the data API, answered the way Intuit's gateway does (lower-case
//! `fault` body, 401 code 3200 / 403 code 3100), and the answer for unknown paths.

use super::app::App;
use super::fault::Fault;
use super::oauth::{bearer, TokenProblem};
use crate::common::sync::lock;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

fn gateway_fault(
    app: &App,
    status: StatusCode,
    message: &str,
    detail: &str,
    code: &str,
    kind: &str,
) -> Response {
    let body = json!({
        "warnings": null,
        "intuitObject": null,
        "fault": {"error": [{"message": message, "detail": detail, "code": code, "element": null}], "type": kind},
        "report": null,
        "queryResponse": null,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": null,
        "requestId": null,
        "time": app.services.clock.now().unix_timestamp() * 1000,
        "status": null,
        "cdcresponse": []
    });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"Intuit\", error=\"invalid_token\""),
        );
    }
    response
}

fn unauthorized(app: &App, detail: &str) -> Response {
    gateway_fault(
        app,
        StatusCode::UNAUTHORIZED,
        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        detail,
        "3200",
        "AUTHENTICATION",
    )
}

/// Ok when the request's bearer token is live and was issued for `realm_id`.
pub fn authenticate(app: &App, headers: &HeaderMap, realm_id: &str) -> Result<(), Box<Response>> {
    let Some(token) = bearer(headers) else {
        return Err(Box::new(unauthorized(
            app,
            "Authorization header missing or not a Bearer token",
        )));
    };
    let now = app.services.clock.now();
    let state = lock(&app.state);
    // The token is a secret: details never echo it.
    let token_realm = match state.oauth.check_access(&token, now) {
        Ok(realm) => realm,
        Err(TokenProblem::Expired) => return Err(Box::new(unauthorized(app, "Token expired"))),
        Err(TokenProblem::Revoked) => return Err(Box::new(unauthorized(app, "Token revoked"))),
        Err(TokenProblem::Unknown) => return Err(Box::new(unauthorized(app, "Token invalid"))),
    };
    if token_realm != realm_id || state.realm(realm_id).is_none() {
        return Err(Box::new(gateway_fault(
            app,
            StatusCode::FORBIDDEN,
            "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
            "The access token is not authorized for this company (realm).",
            "3100",
            "SERVICE",
        )));
    }
    Ok(())
}

/// Unknown path under the data API: QBO's 400 "Unsupported Operation"; elsewhere a plain 404.
pub async fn unknown_path(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/v3/") {
        let fault = Fault::unsupported(format!("Operation {path} is not supported."));
        return app.fault(&fault);
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not found", "path": path})),
    )
        .into_response()
}
