//! A workflow-action call as HubSpot sends it, and the answer it expects. Parsing is strict
//! about what identifies the call (its `callbackId` and portal) and lenient about the rest:
//! input values arrive as strings, and fields HubSpot may add are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ActionKind;
use crate::domain::{InvalidValue, PortalId, QboRequestId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    /// HubSpot's id of this execution: repeated on its retries, so it is the idempotency key.
    pub callback_id: String,
    pub origin: Origin,
    #[serde(default)]
    pub object: Option<EnrolledObject>,
    /// Input values by field name (strings; empty when left blank).
    #[serde(default)]
    pub input_fields: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub portal_id: u64,
    #[serde(default)]
    pub action_definition_id: Option<u64>,
}

/// The record the workflow runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrolledObject {
    pub object_id: u64,
    /// `CONTACT`, `DEAL`, `QUOTE`, … (or a type id).
    pub object_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is not a workflow-action call: {0}")]
    Malformed(String),
    #[error("the request has no callbackId")]
    NoCallbackId,
}

impl ActionRequest {
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let request: ActionRequest =
            serde_json::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
        if request.callback_id.trim().is_empty() {
            return Err(RequestError::NoCallbackId);
        }
        Ok(request)
    }

    pub fn portal(&self) -> Result<PortalId, InvalidValue> {
        PortalId::parse(self.origin.portal_id.to_string())
    }

    /// An input's value as text; blank ones count as not given.
    pub fn input(&self, name: &str) -> Option<String> {
        let text = match self.input_fields.get(name)? {
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Null => return None,
            other => other.to_string(),
        };
        (!text.is_empty()).then_some(text)
    }
}

/// The QBO `requestid` of the document an execution creates: the same for every retry of it,
/// and only for it (portal, callback and document kind), at most 50 characters.
pub fn requestid(
    portal: &PortalId,
    callback_id: &str,
    kind: ActionKind,
) -> Result<QboRequestId, InvalidValue> {
    step_requestid(portal, callback_id, kind, "")
}

/// The `requestid` of one more entity an execution creates (`step`: `payment`, `item-<sku>`,
/// `customer`): as stable as the document's, and distinct from it.
pub fn step_requestid(
    portal: &PortalId,
    callback_id: &str,
    kind: ActionKind,
    step: &str,
) -> Result<QboRequestId, InvalidValue> {
    let mut hash = Sha256::new();
    for part in [portal.as_str(), callback_id, kind.document()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    if !step.is_empty() {
        hash.update(step.as_bytes());
    }
    let digest: String = hash.finalize()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    QboRequestId::parse(format!("act-{digest}"))
}

/// How an execution ended, as HubSpot reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Success,
    /// Failed: the workflow records it and goes on.
    FailContinue,
    /// Still working: completed later through the callback API.
    Block,
}

/// The answer to an execution: `{"outputFields": {…, "hs_execution_state": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutcome {
    pub output_fields: BTreeMap<String, String>,
}

impl ActionOutcome {
    pub fn new(state: ExecutionState, outputs: BTreeMap<String, String>) -> Self {
        let mut output_fields = outputs;
        let state = match state {
            ExecutionState::Success => "SUCCESS",
            ExecutionState::FailContinue => "FAIL_CONTINUE",
            ExecutionState::Block => "BLOCK",
        };
        output_fields.insert("hs_execution_state".into(), state.into());
        Self { output_fields }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspots_example_call_is_read() {
        let body = br#"{"callbackId": "ap-102670506-56777914962-11-0",
            "origin": {"portalId": 102670506, "actionDefinitionId": 10860211, "actionDefinitionVersion": 1},
            "context": {"source": "WORKFLOWS", "workflowId": 192814114},
            "object": {"objectId": 614, "objectType": "CONTACT"},
            "inputFields": {"widgetOwner": "10887165", "widgetName": " ", "count": 3, "none": null}}"#;
        let request = ActionRequest::parse(body).unwrap();
        assert_eq!(request.callback_id, "ap-102670506-56777914962-11-0");
        assert_eq!(request.portal().unwrap().as_str(), "102670506");
        assert_eq!(request.object.as_ref().map(|o| o.object_id), Some(614));
        assert_eq!(request.input("widgetOwner").as_deref(), Some("10887165"));
        assert_eq!(
            request.input("widgetName"),
            None,
            "blank counts as not given"
        );
        assert_eq!(request.input("count").as_deref(), Some("3"));
        assert_eq!(request.input("none"), None);
        assert_eq!(request.input("missing"), None);
    }

    #[test]
    fn what_is_not_a_call_is_refused_with_the_reason() {
        type Case<'a> = (&'a [u8], fn(&RequestError) -> bool);
        let cases: [Case; 3] = [
            (b"not json", |e| matches!(e, RequestError::Malformed(_))),
            (br#"{"origin": {"portalId": 1}}"#, |e| {
                matches!(e, RequestError::Malformed(_))
            }),
            (br#"{"callbackId": " ", "origin": {"portalId": 1}}"#, |e| {
                *e == RequestError::NoCallbackId
            }),
        ];
        for (body, expected) in cases {
            let error = ActionRequest::parse(body).unwrap_err();
            assert!(expected(&error), "{error}");
        }
    }

    #[test]
    fn a_requestid_belongs_to_one_execution_and_document() {
        let portal = PortalId::parse("62515").unwrap();
        let id = requestid(&portal, "ap-1", ActionKind::CreateInvoice).unwrap();
        assert!(id.as_str().len() <= 50);
        assert_eq!(
            id,
            requestid(&portal, "ap-1", ActionKind::CreateInvoice).unwrap(),
            "retries"
        );
        let others = [
            requestid(&portal, "ap-2", ActionKind::CreateInvoice).unwrap(),
            requestid(&portal, "ap-1", ActionKind::CreateEstimate).unwrap(),
            requestid(
                &PortalId::parse("62516").unwrap(),
                "ap-1",
                ActionKind::CreateInvoice,
            )
            .unwrap(),
        ];
        for other in others {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn the_answer_carries_the_execution_state() {
        let outcome = ActionOutcome::new(
            ExecutionState::FailContinue,
            BTreeMap::from([("message".to_owned(), "no customer".to_owned())]),
        );
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({"outputFields": {"message": "no customer", "hs_execution_state": "FAIL_CONTINUE"}})
        );
    }
}
