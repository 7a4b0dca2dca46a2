//! HubSpot workflow actions that create QuickBooks documents (A1–A11).

pub mod claims;
pub mod definitions;
pub mod documents;
mod execution;
pub mod inputs;
pub mod options;
pub mod payments;
pub mod registration;
pub mod request;
pub mod service;
pub mod settings;
pub use crate::hubspot::signature;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use service::{ActionService, Answer, Call, MAX_BODY_BYTES};
use signature::SignatureHeaders;

/// The six custom workflow actions, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    CreateInvoice,
    CreateEstimate,
    CreateSalesReceipt,
    CreatePaidInvoice,
    CreateExpense,
    CreateRefundReceipt,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::CreateInvoice,
        ActionKind::CreateEstimate,
        ActionKind::CreateSalesReceipt,
        ActionKind::CreatePaidInvoice,
        ActionKind::CreateExpense,
        ActionKind::CreateRefundReceipt,
    ];

    /// The document it makes, as named in request ids and records.
    pub fn document(self) -> &'static str {
        match self {
            ActionKind::CreateInvoice => "invoice",
            ActionKind::CreateEstimate => "estimate",
            ActionKind::CreateSalesReceipt => "sales_receipt",
            ActionKind::CreatePaidInvoice => "paid_invoice",
            ActionKind::CreateExpense => "expense",
            ActionKind::CreateRefundReceipt => "refund_receipt",
        }
    }

    /// The kind whose [`Self::document`] this is.
    pub fn from_document(document: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.document() == document)
    }

    /// The label HubSpot users see in the workflow editor.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::CreateInvoice => "Create QuickBooks invoice",
            ActionKind::CreateEstimate => "Create QuickBooks estimate",
            ActionKind::CreateSalesReceipt => "Create QuickBooks sales receipt",
            ActionKind::CreatePaidInvoice => "Create paid QuickBooks invoice",
            ActionKind::CreateExpense => "Create QuickBooks expense",
            ActionKind::CreateRefundReceipt => "Create QuickBooks refund receipt",
        }
    }
}

/// The HTTP handler of one action's function URL: a POST to `/options` asks for an input's
/// options, every other POST is a call of `kind`.
pub fn router(kind: ActionKind, service: Arc<ActionService>) -> axum::Router {
    axum::Router::new()
        .fallback(call)
        .layer(DefaultBodyLimit::disable())
        .with_state((kind, service))
}

async fn call(
    State((kind, service)): State<(ActionKind, Arc<ActionService>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return respond(Answer::error(
            405,
            "method_not_allowed",
            "workflow actions are called with POST",
        ));
    }
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES + 1).await else {
        return respond(Answer::error(
            413,
            "payload_too_large",
            format!("calls of at most {MAX_BODY_BYTES} bytes are taken"),
        ));
    };
    let call = Call {
        method: method.as_str(),
        urls: crate::http::request_urls(service.public_base_url(), &uri, &headers),
        body: &body,
        headers: SignatureHeaders::from_headers(&headers),
    };
    if uri
        .path()
        .trim_end_matches('/')
        .ends_with(definitions::OPTIONS_PATH)
    {
        respond(service.options(call).await)
    } else {
        respond(service.call(kind, call).await)
    }
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(answer.body)).into_response();
    if let Some(seconds) = answer.retry_after {
        if let Ok(value) = seconds.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}
