//! QBO error bodies. Data-API faults use the PascalCase `{"Fault":{"Error":[…],"type":…}}` shape;
//! gateway authentication faults use the lower-case `fault` shape (see `auth`).

use axum::http::StatusCode;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultError {
    pub message: String,
    pub detail: String,
    pub code: String,
    pub element: Option<String>,
}

/// A QBO fault: HTTP status, fault type and one or more errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("QBO fault {} ({})", .status, .errors.first().map(|e| e.code.as_str()).unwrap_or(""))]
pub struct Fault {
    pub status: StatusCode,
    pub fault_type: &'static str,
    pub errors: Vec<FaultError>,
}

const INACTIVE_DETAIL: &str = "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.";

impl Fault {
    pub fn validation(
        code: &str,
        message: &str,
        detail: impl Into<String>,
        element: Option<&str>,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            fault_type: "ValidationFault",
            errors: vec![FaultError {
                message: message.to_string(),
                detail: detail.into(),
                code: code.to_string(),
                element: element.map(str::to_string),
            }],
        }
    }

    pub fn code(&self) -> &str {
        self.errors.first().map(|e| e.code.as_str()).unwrap_or("")
    }

    /// 5010: the SyncToken sent is not the current one.
    pub fn stale_object() -> Self {
        Self::validation(
            "5010",
            "Stale Object Error",
            "Stale Object Error : You and Sandbox User were working on this at the same time. Sandbox User finished before you did, so your work was not saved.",
            Some(""),
        )
    }

    /// 6240: DisplayName / Name already used.
    pub fn duplicate_name(detail: &str) -> Self {
        Self::validation(
            "6240",
            "Duplicate Name Exists Error",
            format!("The name supplied already exists. : {detail}"),
            Some(""),
        )
    }

    /// 610 for an inactive or unknown entity.
    pub fn object_not_found() -> Self {
        Self::validation("610", "Object Not Found", INACTIVE_DETAIL, Some(""))
    }

    /// 610 for a deleted transaction.
    pub fn deleted_transaction() -> Self {
        Self::validation(
            "610",
            "Object Not Found",
            "Object Not Found : Another user has deleted this transaction.",
            Some(""),
        )
    }

    /// 2020: a required field is missing.
    pub fn required(param: &str) -> Self {
        Self::validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            format!("Required parameter {param} is missing in the request"),
            Some(param),
        )
    }

    /// 2030: an Id that is not a number.
    pub fn invalid_id(supplied: &str) -> Self {
        Self::validation(
            "2030",
            "Invalid ID",
            format!("Id should be a valid number. Supplied value:{supplied}"),
            Some("Id"),
        )
    }

    /// 2010: malformed property value.
    pub fn invalid_property(element: &str, detail: impl Into<String>) -> Self {
        Self::validation(
            "2010",
            "Request has invalid or unsupported property",
            detail,
            Some(element),
        )
    }

    /// 2170: value outside an enumeration.
    pub fn invalid_enum(element: &str, value: &str) -> Self {
        Self::validation(
            "2170",
            "Invalid Enumeration",
            format!("Invalid Enumeration : {value}"),
            Some(element),
        )
    }

    /// 2500: a reference to an entity that does not exist.
    pub fn invalid_reference(entity: &str, id: &str) -> Self {
        Self::validation(
            "2500",
            "Invalid Reference Id",
            format!("Invalid Reference Id : {entity} assigned to this transaction has been deleted. Id={id}"),
            Some(""),
        )
    }

    /// 6000: generic business validation error, reason in the detail.
    pub fn business(detail: impl Into<String>) -> Self {
        Self::validation(
            "6000",
            "A business validation error has occurred while processing your request",
            format!("Business Validation Error: {}", detail.into()),
            Some(""),
        )
    }

    /// 6070: Amount is not UnitPrice × Qty.
    pub fn amount_mismatch(expected: &str, given: &str) -> Self {
        Self::validation(
            "6070",
            "Amount calculation incorrect in the request",
            format!("Amount is not equal to UnitPrice * Qty. Supplied value:{given}, expected:{expected}"),
            Some("Line.Amount"),
        )
    }

    /// 6080: no name parts at all.
    pub fn no_name() -> Self {
        Self::validation(
            "6080",
            "No Name Provided",
            "You must specify a name for this record (DisplayName, or Title/GivenName/MiddleName/FamilyName/Suffix).",
            Some("DisplayName"),
        )
    }

    /// 6100: a US line TaxCodeRef other than TAX/NON.
    pub fn invalid_line_tax_code(value: &str) -> Self {
        Self::validation(
            "6100",
            "Invalid Line TaxCode",
            format!("Line TaxCode must be TAX or NON for US companies. Supplied value:{value}"),
            Some("Line.SalesItemLineDetail.TaxCodeRef"),
        )
    }

    /// 6140: DocNumber already used for this transaction type.
    pub fn duplicate_doc_number(doc_number: &str, txn_type: &str, txn_id: &str) -> Self {
        Self::validation(
            "6140",
            "Duplicate Document Number Error",
            format!("Duplicate Document Number Error : You must specify a different number. This number has already been used. DocNumber={doc_number} is assigned to TxnType={txn_type} with TxnId={txn_id}"),
            Some(""),
        )
    }

    /// 6210: transaction dated in a closed period.
    pub fn period_closed(close_date: &str) -> Self {
        Self::validation(
            "6210",
            "Account Period Closed",
            format!(
                "The account period has closed and the books are locked on or before {close_date}."
            ),
            Some(""),
        )
    }

    /// 500: path/operation not supported.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::validation("500", "Unsupported Operation", detail, Some(""))
    }

    /// 4000: query did not parse.
    pub fn query_parse(detail: impl Into<String>) -> Self {
        Self::validation(
            "4000",
            "Error parsing query",
            format!("QueryParserError: {}", detail.into()),
            Some(""),
        )
    }

    /// 4001: query names an unknown entity or property.
    pub fn query_validation(detail: impl Into<String>) -> Self {
        Self::validation(
            "4001",
            "Invalid query",
            format!("QueryValidationError: {}", detail.into()),
            Some(""),
        )
    }

    /// 1040: more than the allowed number of batch items.
    pub fn batch_too_large(max: usize) -> Self {
        Self::validation(
            "1040",
            "Batch size exceeds allowed limit",
            format!("Batch size limit exceeded. Max: {max}"),
            Some(""),
        )
    }

    /// 429 / 3001 throttle.
    pub fn throttled() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            fault_type: "SERVICE",
            errors: vec![FaultError {
                message: "message=ThrottleExceeded; errorCode=003001; statusCode=429".into(),
                detail: "The request limit was reached.  Try again later".into(),
                code: "3001".into(),
                element: None,
            }],
        }
    }

    /// 500 / 10000 for an unexpected internal problem.
    pub fn system(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            fault_type: "SystemFault",
            errors: vec![FaultError {
                message: "An application error has occurred while processing your request".into(),
                detail: detail.into(),
                code: "10000".into(),
                element: None,
            }],
        }
    }

    /// `{"Error":[…],"type":…}` — the value of the `Fault` key.
    pub fn fault_json(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let mut v = json!({"Message": e.message, "Detail": e.detail, "code": e.code});
                if let (Some(el), Some(obj)) = (&e.element, v.as_object_mut()) {
                    obj.insert("element".into(), Value::String(el.clone()));
                }
                v
            })
            .collect();
        json!({"Error": errors, "type": self.fault_type})
    }
}
