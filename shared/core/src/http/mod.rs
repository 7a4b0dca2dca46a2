//! HTTP on both sides: the HTTPS functions' JSON error answers (here), and what every outbound
//! call to a provider shares — `bearer` (where the access token comes from), `retry` (Retry-After, backoff with jitter, when to retry) and
//! `pacing` (the providers' rate limits, kept per company and per portal across every worker).

pub mod bearer;
pub mod cookies;
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

/// The address a request reached, from its `Host` (a function URL's host is the URL itself) and
/// `x-forwarded-proto` (`https` unless it says `http`): `https://host`. `None` without a
/// plausible host.
pub fn request_origin(headers: &axum::http::HeaderMap) -> Option<String> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
    {
        Some("http") => "http",
        _ => "https",
    };
    Some(format!("{scheme}://{host}"))
}

/// The URLs a signed request may have been signed over: the configured public base with the
/// request's path and query, and the address the request reached (a function URL's host is its
/// own).
pub fn request_urls(
    public_base: Option<&str>,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Vec<String> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut urls = Vec::new();
    if let Some(base) = public_base {
        urls.push(format!("{}{path}", base.trim_end_matches('/')));
    }
    let origin =
        request_origin(headers).or_else(|| uri.authority().map(|a| format!("https://{a}")));
    if let Some(origin) = origin {
        urls.push(format!("{origin}{path}"));
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_says_where_it_arrived() {
        let origin = |pairs: &[(&str, &str)]| {
            let mut headers = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            request_origin(&headers)
        };
        assert_eq!(
            origin(&[("host", "abc.lambda-url.us-east-1.on.aws")]).as_deref(),
            Some("https://abc.lambda-url.us-east-1.on.aws")
        );
        assert_eq!(
            origin(&[("host", "127.0.0.1:8080"), ("x-forwarded-proto", "http")]).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin(&[("host", "evil.example/path?")]), None);
        assert_eq!(origin(&[]), None);
    }
}
