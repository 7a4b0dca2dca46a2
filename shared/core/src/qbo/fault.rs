//! QuickBooks errors: the three fault envelopes parsed into one typed error, each with its class
//! and a category a bookkeeper can read.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error_class::ErrorClass;

/// One error of a QBO fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultError {
    pub code: String,
    pub message: String,
    pub detail: String,
    /// The field the error is about, when QBO names one (`Line.Amount`, `DisplayName`).
    pub element: Option<String>,
}

/// The codes the integration acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// 610: the object is not found, deleted, or made inactive.
    ObjectNotFound,
    /// 2020: a required field is missing.
    RequiredFieldMissing,
    /// 2010 / 2030 / 2170 / 2500: an invalid property, id, enumeration or reference.
    InvalidValue,
    /// 3001: throttled.
    Throttled,
    /// 3100 / 3200 / 100 / 120: authentication or authorization refused.
    AuthRefused,
    /// 4000 / 4001: an invalid query.
    InvalidQuery,
    /// 5010: the SyncToken is not the current one.
    StaleObject,
    /// 6000: a business rule (the reason is in the detail).
    BusinessValidation,
    /// 6140: the document number is used already.
    DuplicateDocNumber,
    /// 6210: the books are closed for that date.
    BooksClosed,
    /// 6240: the name is used already.
    DuplicateName,
    /// 6070 / 6100 / others: any other validation.
    Other,
    /// 10000 and system faults: QuickBooks failed.
    System,
}

impl FaultCode {
    pub fn of(code: &str) -> Self {
        match code {
            "610" => FaultCode::ObjectNotFound,
            "2020" => FaultCode::RequiredFieldMissing,
            "2010" | "2030" | "2170" | "2500" => FaultCode::InvalidValue,
            "3001" => FaultCode::Throttled,
            "100" | "120" | "3100" | "3200" => FaultCode::AuthRefused,
            "4000" | "4001" => FaultCode::InvalidQuery,
            "5010" => FaultCode::StaleObject,
            "6000" => FaultCode::BusinessValidation,
            "6140" => FaultCode::DuplicateDocNumber,
            "6210" => FaultCode::BooksClosed,
            "6240" => FaultCode::DuplicateName,
            "10000" => FaultCode::System,
            _ => FaultCode::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QboError {
    /// QuickBooks refused the request with a fault.
    #[error("QuickBooks refused the request: {}", describe(.errors))]
    Fault {
        status: u16,
        errors: Vec<FaultError>,
    },
    #[error("QuickBooks throttled the request")]
    Throttled { retry_after: Option<Duration> },
    /// The access token was refused even after a refresh.
    #[error("QuickBooks did not accept the connection's token: {0}")]
    Unauthorized(String),
    #[error("QuickBooks is unavailable: {0}")]
    Unavailable(String),
    #[error("QuickBooks answered something unreadable: {0}")]
    Unreadable(String),
    /// The connection's tokens cannot be used (reconnect, storage, sealing).
    #[error("{0}")]
    Auth(String),
    /// The connection's tokens cannot be refreshed: a person must reconnect.
    #[error("{0}")]
    ReconnectRequired(String),
    #[error("no QuickBooks call slot became free in time: {0}")]
    Paced(String),
}

fn describe(errors: &[FaultError]) -> String {
    errors
        .iter()
        .map(|e| {
            let text = if e.detail.is_empty() {
                &e.message
            } else {
                &e.detail
            };
            format!("{} (code {})", text, e.code)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl QboError {
    /// The first fault code, if this is a fault.
    pub fn fault_code(&self) -> Option<FaultCode> {
        match self {
            QboError::Fault { errors, .. } => errors.first().map(|e| FaultCode::of(&e.code)),
            QboError::Throttled { .. } => Some(FaultCode::Throttled),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            QboError::Throttled { .. }
            | QboError::Unavailable(_)
            | QboError::Paced(_)
            | QboError::Unreadable(_) => ErrorClass::Retryable,
            QboError::Unauthorized(_) | QboError::Auth(_) => ErrorClass::Retryable,
            QboError::ReconnectRequired(_) => ErrorClass::Terminal,
            QboError::Fault { status, .. } => match self.fault_code() {
                // A stale SyncToken is settled by reading again; a system fault by trying again.
                Some(FaultCode::StaleObject | FaultCode::System | FaultCode::Throttled) => {
                    ErrorClass::Retryable
                }
                _ if *status >= 500 => ErrorClass::Retryable,
                _ => ErrorClass::Terminal,
            },
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            QboError::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A stable name for the kind of failure, shown with failing records.
    pub fn category(&self) -> &'static str {
        match self {
            QboError::Throttled { .. } | QboError::Paced(_) => "rate_limited",
            QboError::Unavailable(_) | QboError::Unreadable(_) => "quickbooks_unavailable",
            QboError::Unauthorized(_) | QboError::Auth(_) => "token_expired",
            QboError::ReconnectRequired(_) => "reconnect_required",
            QboError::Fault { .. } => match self.fault_code() {
                Some(FaultCode::DuplicateName) => "duplicate_display_name",
                Some(FaultCode::ObjectNotFound) => "object_not_found",
                Some(FaultCode::RequiredFieldMissing) => "required_field_missing",
                Some(FaultCode::InvalidValue) => "invalid_value",
                Some(FaultCode::StaleObject) => "stale_object",
                Some(FaultCode::BusinessValidation) => "business_validation",
                Some(FaultCode::DuplicateDocNumber) => "duplicate_document_number",
                Some(FaultCode::BooksClosed) => "books_closed",
                Some(FaultCode::InvalidQuery) => "invalid_query",
                Some(FaultCode::AuthRefused) => "not_authorized",
                Some(FaultCode::Throttled) => "rate_limited",
                Some(FaultCode::System) => "quickbooks_unavailable",
                Some(FaultCode::Other) | None => "quickbooks_validation",
            },
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Fault")]
    upper: Option<FaultBody>,
    #[serde(rename = "fault")]
    lower: Option<LowerFaultBody>,
}

#[derive(Deserialize)]
struct FaultBody {
    #[serde(rename = "Error", default)]
    errors: Vec<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "Detail", default)]
    detail: String,
    #[serde(default, deserialize_with = "code_text")]
    code: String,
    #[serde(default)]
    element: Option<String>,
}

#[derive(Deserialize)]
struct LowerFaultBody {
    #[serde(rename = "error", default)]
    errors: Vec<LowerError>,
}

#[derive(Deserialize)]
struct LowerError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: String,
    #[serde(default, deserialize_with = "code_text")]
    code: String,
}

/// Codes are strings, but a number is read as its text.
fn code_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// The errors of a fault body: the data API's `Fault`, the gateway's lower-case `fault`, or
/// Intuit's XML `IntuitResponse` (sent even to JSON requests by older throttling and auth
/// faults). `None` when the body holds no fault.
pub fn parse_fault(body: &[u8]) -> Option<Vec<FaultError>> {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        if let Some(fault) = envelope.upper {
            return Some(
                fault
                    .errors
                    .into_iter()
                    .map(|e| FaultError {
                        code: e.code,
                        message: e.message,
                        detail: e.detail,
                        element: e.element.filter(|e| !e.is_empty()),
                    })
                    .collect(),
            );
        }
        if let Some(fault) = envelope.lower {
            return Some(
                fault
                    .errors
                    .into_iter()
                    .map(|e| FaultError {
                        code: e.code,
                        message: e.message,
                        detail: e.detail,
                        element: None,
                    })
                    .collect(),
            );
        }
        return None;
    }
    parse_xml_fault(std::str::from_utf8(body).ok()?)
}

/// `<Error code="3001"><Message>…</Message><Detail>…</Detail></Error>`, read without an XML
/// parser: the shape is fixed and only these three values matter.
fn parse_xml_fault(text: &str) -> Option<Vec<FaultError>> {
    if !text.contains("<Fault") {
        return None;
    }
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<Error") {
        rest = &rest[start..];
        let end = rest.find("</Error>").unwrap_or(rest.len());
        let element = &rest[..end];
        let code = element
            .find("code=\"")
            .map(|at| &element[at + 6..])
            .and_then(|after| after.split('"').next())
            .unwrap_or_default();
        let inner = |tag: &str| {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            element
                .find(&open)
                .map(|at| &element[at + open.len()..])
                .and_then(|after| after.split(&close).next())
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        errors.push(FaultError {
            code: code.to_owned(),
            message: inner("Message"),
            detail: inner("Detail"),
            element: None,
        });
        rest = &rest[end.min(rest.len())..];
        if end == rest.len() {
            break;
        }
        rest = rest.get(8..).unwrap_or_default();
    }
    (!errors.is_empty()).then_some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_envelopes_are_read() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"Fault":{"Error":[{"Message":"Duplicate Name Exists Error","Detail":"The name supplied already exists. : null","code":"6240","element":""}],"type":"ValidationFault"},"time":"2017-09-29T09:17:31.892-07:00"}"#,
                "6240",
                "The name supplied already exists. : null",
            ),
            (
                r#"{"warnings":null,"fault":{"error":[{"message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","detail":"Token expired: AB01","code":"3200","element":null}],"type":"AUTHENTICATION"},"time":1601391072830}"#,
                "3200",
                "Token expired: AB01",
            ),
            (
                r#"<?xml version="1.0"?><IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2020"><Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message><Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>"#,
                "3001",
                "The request limit was reached.  Try again later",
            ),
        ];
        for (body, code, detail) in cases {
            let errors = parse_fault(body.as_bytes()).unwrap();
            assert_eq!(errors.len(), 1, "{body}");
            assert_eq!(
                (errors[0].code.as_str(), errors[0].detail.as_str()),
                (*code, *detail)
            );
        }
        assert_eq!(parse_fault(br#"{"Customer":{"Id":"1"}}"#), None);
        assert_eq!(parse_fault(b"<html>busy</html>"), None);
        let several = parse_fault(
            br#"{"Fault":{"Error":[{"code":"6140","Message":"a"},{"code":2020,"Message":"b","element":"Line"}]}}"#,
        )
        .unwrap();
        assert_eq!(several.len(), 2);
        assert_eq!(several[1].code, "2020", "a numeric code is read as text");
        assert_eq!(several[1].element.as_deref(), Some("Line"));
    }

    #[test]
    fn every_fault_code_has_its_class_and_category() {
        let fault = |code: &str| QboError::Fault {
            status: 400,
            errors: vec![FaultError {
                code: code.into(),
                ..FaultError::default()
            }],
        };
        let cases: Vec<(QboError, ErrorClass, &str)> = vec![
            (
                fault("6240"),
                ErrorClass::Terminal,
                "duplicate_display_name",
            ),
            (fault("610"), ErrorClass::Terminal, "object_not_found"),
            (
                fault("2020"),
                ErrorClass::Terminal,
                "required_field_missing",
            ),
            (fault("2500"), ErrorClass::Terminal, "invalid_value"),
            (fault("6000"), ErrorClass::Terminal, "business_validation"),
            (
                fault("6140"),
                ErrorClass::Terminal,
                "duplicate_document_number",
            ),
            (fault("6210"), ErrorClass::Terminal, "books_closed"),
            (fault("4001"), ErrorClass::Terminal, "invalid_query"),
            (fault("6070"), ErrorClass::Terminal, "quickbooks_validation"),
            (fault("5010"), ErrorClass::Retryable, "stale_object"),
            (
                fault("10000"),
                ErrorClass::Retryable,
                "quickbooks_unavailable",
            ),
            (fault("3001"), ErrorClass::Retryable, "rate_limited"),
            (
                QboError::Throttled {
                    retry_after: Some(Duration::from_secs(60)),
                },
                ErrorClass::Retryable,
                "rate_limited",
            ),
            (
                QboError::Unavailable("502".into()),
                ErrorClass::Retryable,
                "quickbooks_unavailable",
            ),
            (
                QboError::ReconnectRequired("QuickBooks must be reconnected".into()),
                ErrorClass::Terminal,
                "reconnect_required",
            ),
        ];
        for (error, class, category) in cases {
            assert_eq!(
                (error.class(), error.category()),
                (class, category),
                "{error}"
            );
        }
        let server = QboError::Fault {
            status: 503,
            errors: vec![],
        };
        assert_eq!(server.class(), ErrorClass::Retryable);
    }
}
