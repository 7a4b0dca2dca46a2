//! HubSpot's error bodies: the standard `{"status":"error","message","correlationId","category",…}`
//! shape for API calls, the per-item `StandardError` inside 207 batch answers, and the legacy OAuth
//! shape (`{"status":"BAD_REFRESH_TOKEN","message":…}` plus RFC 6749 `error`).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

tokio::task_local! {
    /// The correlation id of the request being served (the `X-HubSpot-Correlation-Id` header).
    pub static CORRELATION_ID: String;
}

/// The current request's correlation id (a fresh one outside a request).
pub fn correlation_id() -> String {
    CORRELATION_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// An API error, rendered as HubSpot's standard error body (boxed: it travels in `Result`s).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{} {}: {}", .0.status, .0.category, .0.message)]
pub struct ApiError(pub Box<ErrorBody>);

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;
    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

/// The parts of an API error.
#[derive(Clone, Debug)]
pub struct ErrorBody {
    pub status: StatusCode,
    pub category: String,
    pub message: String,
    pub sub_category: Option<String>,
    pub context: Option<Value>,
    pub errors: Vec<Value>,
    /// Extra top-level fields (e.g. `policyName` on 429s).
    pub extra: Map<String, Value>,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status,
            category: category.into(),
            message: message.into(),
            sub_category: None,
            context: None,
            errors: Vec::new(),
            extra: Map::new(),
            headers: Vec::new(),
        }))
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    pub fn unknown_object_type(segment: &str) -> Self {
        Self::validation(format!("Unable to infer object type from: {segment}"))
            .with_sub_category("ObjectTypeIdUtils.INVALID_OBJECT_TYPE")
    }

    pub fn invalid_json(err: &serde_json::Error) -> Self {
        Self::validation(format!(
            "Invalid input JSON on line {}, column {}: {err}",
            err.line(),
            err.column()
        ))
    }

    pub fn with_sub_category(mut self, sub: &str) -> Self {
        self.sub_category = Some(sub.into());
        self
    }

    pub fn with_context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    pub fn with_errors(mut self, errors: Vec<Value>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_extra(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// The top-level error body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(self.message));
        body.insert("correlationId".into(), json!(correlation_id()));
        body.insert("category".into(), json!(self.category));
        if let Some(sub) = &self.sub_category {
            body.insert("subCategory".into(), json!(sub));
        }
        if let Some(context) = &self.context {
            body.insert("context".into(), context.clone());
        }
        if !self.errors.is_empty() {
            body.insert("errors".into(), Value::Array(self.errors.clone()));
        }
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    /// The per-item `StandardError` of a 207 batch answer.
    pub fn standard_error(&self) -> Value {
        let mut e = json!({
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context.clone().unwrap_or_else(|| json!({})),
            "errors": self.errors,
            "links": {},
        });
        if let (Some(sub), Some(map)) = (&self.sub_category, e.as_object_mut()) {
            map.insert("subCategory".into(), json!(sub));
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
        response
    }
}

/// An OAuth endpoint error in HubSpot's legacy shape plus the RFC 6749 fields.
pub fn oauth_error(status: StatusCode, code: &str, message: &str, rfc_error: &str) -> Response {
    (
        status,
        Json(json!({
            "status": code,
            "message": message,
            "correlationId": correlation_id(),
            "error": rfc_error,
            "error_description": message,
        })),
    )
        .into_response()
}

/// Parses a JSON body, answering HubSpot's validation error on malformed input.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
