//! HubSpot's signatures on the requests it sends (workflow-action calls, webhooks), checked over
//! the raw body and the canonical URL, compared in constant time:
//! - v3 (`X-HubSpot-Signature-v3` with `X-HubSpot-Request-Timestamp`, epoch ms): HMAC-SHA256,
//!   keyed by the app's client secret, of method + URI + body + timestamp, base64; the timestamp
//!   must be within five minutes of now;
//! - v2 (`X-HubSpot-Signature`, version `v2`): SHA-256 of client secret + method + URI + body,
//!   lower-case hex (what HubSpot documents for custom workflow actions).
//!
//! When both are sent, v3 decides. Pure: the caller passes the headers, the body and the time.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far a v3 timestamp may be from now.
pub const MAX_TIMESTAMP_SKEW_MS: i64 = 5 * 60 * 1000;

/// The signature headers of a request, as sent (any may be missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignatureHeaders<'a> {
    /// `X-HubSpot-Signature`.
    pub signature: Option<&'a str>,
    /// `X-HubSpot-Signature-Version` (`v1`, `v2`).
    pub version: Option<&'a str>,
    /// `X-HubSpot-Signature-v3`.
    pub signature_v3: Option<&'a str>,
    /// `X-HubSpot-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
}

impl<'a> SignatureHeaders<'a> {
    /// The signature headers of a request as it arrived (names in any case).
    pub fn from_headers(headers: &'a axum::http::HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            signature: header("x-hubspot-signature"),
            version: header("x-hubspot-signature-version"),
            signature_v3: header("x-hubspot-signature-v3"),
            timestamp: header("x-hubspot-request-timestamp"),
        }
    }
}

/// A request as HubSpot signed it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called (scheme, host, path, query), as configured.
    pub uri: &'a str,
    pub body: &'a [u8],
    pub headers: SignatureHeaders<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no HubSpot signature")]
    Missing,
    #[error("the HubSpot signature does not match the request")]
    Mismatch,
    #[error("the request's timestamp is missing, unreadable or more than five minutes from now")]
    Stale,
    #[error("HubSpot signature version {0:?} is not accepted here (v2 or v3)")]
    Version(String),
}

/// Checks a request's signature with the app's client secret at `now_ms`.
pub fn verify(
    client_secret: &str,
    request: &SignedRequest<'_>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let headers = request.headers;
    if let Some(given) = headers.signature_v3 {
        let timestamp = headers
            .timestamp
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or(SignatureError::Stale)?;
        if (now_ms - timestamp).abs() > MAX_TIMESTAMP_SKEW_MS {
            return Err(SignatureError::Stale);
        }
        let given = base64::engine::general_purpose::STANDARD
            .decode(given.trim())
            .map_err(|_| SignatureError::Mismatch)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(request.method.as_bytes());
        mac.update(request.uri.as_bytes());
        mac.update(request.body);
        mac.update(timestamp.to_string().as_bytes());
        return mac
            .verify_slice(&given)
            .map_err(|_| SignatureError::Mismatch);
    }
    let given = headers.signature.ok_or(SignatureError::Missing)?;
    match headers.version.map(str::trim) {
        Some("v2") | None => {}
        Some(other) => return Err(SignatureError::Version(other.to_owned())),
    }
    let expected = v2_signature(client_secret, request.method, request.uri, request.body);
    let given = given.trim().to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The v2 signature of a request: hex SHA-256 of secret + method + URI + body.
pub fn v2_signature(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(client_secret.as_bytes());
    hash.update(method.as_bytes());
    hash.update(uri.as_bytes());
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The v3 signature of a request at `timestamp_ms`.
pub fn v3_signature(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    // Any key length is accepted by HMAC: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of HubSpot's documentation and SDKs.
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://www.example.com/webhook_uri";

    fn request<'a>(
        method: &'a str,
        body: &'a [u8],
        headers: SignatureHeaders<'a>,
    ) -> SignedRequest<'a> {
        SignedRequest {
            method,
            uri: URI,
            body,
            headers,
        }
    }

    #[test]
    fn the_published_vectors_hold() {
        assert_eq!(
            v2_signature(SECRET, "GET", URI, b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            v2_signature(SECRET, "POST", URI, br#"{"example_field":"example_value"}"#),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            v3_signature(
                SECRET,
                "POST",
                URI,
                b"{'example_field':'example_value'}",
                1_693_657_560_000
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
    }

    #[test]
    fn each_request_is_accepted_or_refused_for_its_reason() {
        let body: &[u8] = br#"{"callbackId":"ap-1","origin":{"portalId":62515}}"#;
        let now = 1_765_000_000_000;
        let v2 = v2_signature(SECRET, "POST", URI, body);
        let v3 = v3_signature(SECRET, "POST", URI, body, now - 1_000);
        let stamp = (now - 1_000).to_string();
        let old = (now - MAX_TIMESTAMP_SKEW_MS - 1).to_string();
        let old_v3 = v3_signature(SECRET, "POST", URI, body, now - MAX_TIMESTAMP_SKEW_MS - 1);
        let upper = v2.to_ascii_uppercase();
        type Case<'a> = (
            &'a str,
            &'a [u8],
            SignatureHeaders<'a>,
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            (
                "v2",
                body,
                SignatureHeaders {
                    signature: Some(&v2),
                    version: Some("v2"),
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                "v2 in capitals",
                body,
                SignatureHeaders {
                    signature: Some(&upper),
                    version: Some("v2"),
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                "v3",
                body,
                SignatureHeaders {
                    signature_v3: Some(&v3),
                    timestamp: Some(&stamp),
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                "v3 decides over a wrong v2",
                body,
                SignatureHeaders {
                    signature: Some("00"),
                    version: Some("v2"),
                    signature_v3: Some(&v3),
                    timestamp: Some(&stamp),
                },
                Ok(()),
            ),
            (
                "none",
                body,
                SignatureHeaders::default(),
                Err(SignatureError::Missing),
            ),
            (
                "a body changed",
                b"{}",
                SignatureHeaders {
                    signature: Some(&v2),
                    version: Some("v2"),
                    ..Default::default()
                },
                Err(SignatureError::Mismatch),
            ),
            (
                "v3 of another body",
                b"{}",
                SignatureHeaders {
                    signature_v3: Some(&v3),
                    timestamp: Some(&stamp),
                    ..Default::default()
                },
                Err(SignatureError::Mismatch),
            ),
            (
                "v3 stale",
                body,
                SignatureHeaders {
                    signature_v3: Some(&old_v3),
                    timestamp: Some(&old),
                    ..Default::default()
                },
                Err(SignatureError::Stale),
            ),
            (
                "v3 without a timestamp",
                body,
                SignatureHeaders {
                    signature_v3: Some(&v3),
                    ..Default::default()
                },
                Err(SignatureError::Stale),
            ),
            (
                "v3 not base64",
                body,
                SignatureHeaders {
                    signature_v3: Some("%%%"),
                    timestamp: Some(&stamp),
                    ..Default::default()
                },
                Err(SignatureError::Mismatch),
            ),
            (
                "v1",
                body,
                SignatureHeaders {
                    signature: Some(&v2),
                    version: Some("v1"),
                    ..Default::default()
                },
                Err(SignatureError::Version("v1".into())),
            ),
        ];
        for (what, body, headers, expected) in cases {
            assert_eq!(
                verify(SECRET, &request("POST", body, headers), now),
                expected,
                "{what}"
            );
        }
        let wrong_secret = verify(
            "another-secret",
            &request(
                "POST",
                body,
                SignatureHeaders {
                    signature: Some(&v2),
                    version: Some("v2"),
                    ..Default::default()
                },
            ),
            now,
        );
        assert_eq!(wrong_secret, Err(SignatureError::Mismatch));
    }
}
