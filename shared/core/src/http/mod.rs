//! HTTP on both sides: the HTTPS functions' JSON error answers (here), and what every outbound
//! call to a provider shares — `bearer` (where the access token comes from), `retry` (Retry-After, backoff with jitter, when to retry) and
//! `pacing` (the providers' rate limits, kept per company and per portal across every worker).

pub mod bearer;
pub mod pacing;
pub mod retry;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The JSON body of every error answer: a stable machine-readable `category` and a sentence a
/// person can act on.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub status: &'static str,
    pub category: String,
    pub message: String,
}

pub fn error_response(status: StatusCode, category: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            status: "error",
            category: category.to_owned(),
            message: message.into(),
        }),
    )
        .into_response()
}

/// A router that answers every request with 501 and names the missing capability, so a deployed
/// function whose feature is not built yet says so instead of failing obscurely.
pub fn not_implemented(capability: &'static str) -> axum::Router {
    axum::Router::new().fallback(move || async move {
        error_response(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            format!("{capability} is not implemented yet"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn unbuilt_capabilities_answer_501_with_their_name() {
        let response = not_implemented("Create QuickBooks invoice")
            .oneshot(Request::post("/any/path").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body(), 4096).await.unwrap()).unwrap();
        assert_eq!(body["category"], "not_implemented");
        assert_eq!(
            body["message"],
            "Create QuickBooks invoice is not implemented yet"
        );
    }
}
