//! The input fields of the actions, what each may hold and the default of each left empty; and
//! the records an action may run on. Pure.

use super::request::ActionRequest;
use super::ActionKind;

/// Which QuickBooks account (company): its realm id. Default: the portal's only one.
pub const ACCOUNT: &str = "qboAccount";
/// The QuickBooks customer (its id). Default: the enrolled record's first contact's customer.
pub const CUSTOMER: &str = "qboCustomer";
/// The QuickBooks item (its id) of lines that match none. Default: such lines are unmatched.
pub const ITEM: &str = "qboItem";
/// "Create the product in QuickBooks if it doesn't exist?" `yes` / `no` (default).
pub const CREATE_PRODUCTS: &str = "createProducts";
/// Payment terms of an invoice (a QBO term id). Default: the customer's, else the company's.
pub const TERM: &str = "qboTerm";
/// A note kept on the document (QBO's private note).
pub const MEMO: &str = "memo";

/// The output fields every action answers with.
pub mod outputs {
    pub const DOCUMENT_ID: &str = "qboDocumentId";
    pub const DOCUMENT_NUMBER: &str = "qboDocumentNumber";
    pub const DOCUMENT_TOTAL: &str = "qboDocumentTotal";
    pub const CUSTOMER_ID: &str = "qboCustomerId";
    /// The paid invoice's payment.
    pub const PAYMENT_ID: &str = "qboPaymentId";
    /// A sentence saying what happened, or why nothing did.
    pub const MESSAGE: &str = "message";
    /// A stable code of why nothing was made (for execution rules and branches).
    pub const ERROR_CODE: &str = "errorCode";
}

/// The record a workflow runs on, as far as the actions care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    Deal(String),
    Quote(String),
    /// A HubSpot commerce payment.
    Payment(String),
    Other {
        object_type: String,
        id: String,
    },
}

impl Enrolled {
    /// Reads HubSpot's object type in any of its spellings (`DEAL`, `deals`, `0-3`; the
    /// payment's is unconfirmed, so several are taken).
    pub fn read(object_type: &str, id: u64) -> Self {
        let id = id.to_string();
        match object_type.trim().to_ascii_lowercase().as_str() {
            "deal" | "deals" | "0-3" => Enrolled::Deal(id),
            "quote" | "quotes" | "0-14" => Enrolled::Quote(id),
            "commerce_payment" | "commerce_payments" | "commercepayment" | "commercepayments"
            | "payment" | "payments" | "0-101" => Enrolled::Payment(id),
            _ => Enrolled::Other {
                object_type: object_type.to_owned(),
                id,
            },
        }
    }

    /// The CRM API's name of its object (`deals`), for reads and associations.
    pub fn crm_type(&self) -> &str {
        match self {
            Enrolled::Deal(_) => "deals",
            Enrolled::Quote(_) => "quotes",
            Enrolled::Payment(_) => "commerce_payments",
            Enrolled::Other { object_type, .. } => object_type,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Enrolled::Deal(id) | Enrolled::Quote(id) | Enrolled::Payment(id) => id,
            Enrolled::Other { id, .. } => id,
        }
    }

    /// What a person calls it.
    pub fn noun(&self) -> &str {
        match self {
            Enrolled::Deal(_) => "deal",
            Enrolled::Quote(_) => "quote",
            Enrolled::Payment(_) => "payment",
            Enrolled::Other { .. } => "record",
        }
    }
}

/// The records each action runs on (A1–A6).
pub fn runs_on(kind: ActionKind, enrolled: &Enrolled) -> bool {
    match (kind, enrolled) {
        (ActionKind::CreateInvoice | ActionKind::CreateEstimate, e) => {
            matches!(e, Enrolled::Deal(_) | Enrolled::Quote(_))
        }
        (ActionKind::CreateSalesReceipt, e) => !matches!(e, Enrolled::Other { .. }),
        (
            ActionKind::CreatePaidInvoice
            | ActionKind::CreateExpense
            | ActionKind::CreateRefundReceipt,
            e,
        ) => matches!(e, Enrolled::Payment(_)),
    }
}

/// The object types an action's definition names (as `objectTypes`).
pub fn object_types(kind: ActionKind, payment_object_type: &str) -> Vec<String> {
    let sales = || vec!["DEAL".to_owned(), "QUOTE".to_owned()];
    match kind {
        ActionKind::CreateInvoice | ActionKind::CreateEstimate => sales(),
        ActionKind::CreateSalesReceipt => {
            let mut types = sales();
            types.push(payment_object_type.to_owned());
            types
        }
        _ => vec![payment_object_type.to_owned()],
    }
}

/// The inputs of one call, read and defaulted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs {
    pub account: Option<String>,
    pub customer: Option<String>,
    pub item: Option<String>,
    pub create_products: bool,
    pub term: Option<String>,
    pub memo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the input \"{field}\" is {value:?}, which is not one of {expected}")]
pub struct InputError {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// `yes`/`no` as HubSpot's select, checkbox or a typed value may send it.
pub fn yes_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" | "on" => Some(true),
        "no" | "false" | "0" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A QBO id as an input must give it: digits only (a label or a name is not an id).
fn qbo_id(field: &'static str, value: Option<String>) -> Result<Option<String>, InputError> {
    match value {
        Some(v) if !v.chars().all(|c| c.is_ascii_digit()) => Err(InputError {
            field,
            value: v,
            expected: "the QuickBooks ids the field's options list",
        }),
        other => Ok(other),
    }
}

impl Inputs {
    pub fn read(request: &ActionRequest) -> Result<Self, InputError> {
        let create_products = match request.input(CREATE_PRODUCTS) {
            None => false,
            Some(text) => yes_no(&text).ok_or(InputError {
                field: CREATE_PRODUCTS,
                value: text,
                expected: "yes or no",
            })?,
        };
        Ok(Self {
            account: request.input(ACCOUNT),
            customer: qbo_id(CUSTOMER, request.input(CUSTOMER))?,
            item: qbo_id(ITEM, request.input(ITEM))?,
            create_products,
            term: qbo_id(TERM, request.input(TERM))?,
            memo: request.input(MEMO),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(inputs: serde_json::Value) -> ActionRequest {
        ActionRequest::parse(
            serde_json::json!({"callbackId": "ap-1", "origin": {"portalId": 7}, "inputFields": inputs})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn empty_inputs_take_their_defaults() {
        assert_eq!(
            Inputs::read(&call(serde_json::json!({}))).unwrap(),
            Inputs::default()
        );
        let read = Inputs::read(&call(serde_json::json!({
            "qboAccount": "9130", "qboCustomer": " 58 ", "createProducts": "Yes",
            "qboTerm": "3", "memo": "from the deal", "qboItem": ""
        })))
        .unwrap();
        assert_eq!(read.account.as_deref(), Some("9130"));
        assert_eq!(read.customer.as_deref(), Some("58"));
        assert!(read.create_products);
        assert_eq!(read.term.as_deref(), Some("3"));
        assert_eq!(read.item, None);
    }

    #[test]
    fn inputs_that_cannot_be_meant_are_refused_by_name() {
        let cases = [
            (
                serde_json::json!({"createProducts": "maybe"}),
                CREATE_PRODUCTS,
            ),
            (
                serde_json::json!({"qboCustomer": "Amy's Bird Sanctuary"}),
                CUSTOMER,
            ),
            (serde_json::json!({"qboTerm": "Net 30"}), TERM),
            (serde_json::json!({"qboItem": "7; drop"}), ITEM),
        ];
        for (inputs, field) in cases {
            assert_eq!(Inputs::read(&call(inputs)).unwrap_err().field, field);
        }
    }

    #[test]
    fn each_action_runs_on_its_records() {
        let deal = Enrolled::read("DEAL", 5);
        let quote = Enrolled::read("0-14", 6);
        let payment = Enrolled::read("COMMERCE_PAYMENT", 7);
        let contact = Enrolled::read("CONTACT", 8);
        assert_eq!(deal, Enrolled::Deal("5".into()));
        assert_eq!(payment.crm_type(), "commerce_payments");
        let table = [
            (ActionKind::CreateInvoice, [true, true, false, false]),
            (ActionKind::CreateEstimate, [true, true, false, false]),
            (ActionKind::CreateSalesReceipt, [true, true, true, false]),
            (ActionKind::CreatePaidInvoice, [false, false, true, false]),
            (ActionKind::CreateExpense, [false, false, true, false]),
            (ActionKind::CreateRefundReceipt, [false, false, true, false]),
        ];
        for (kind, expected) in table {
            let got = [&deal, &quote, &payment, &contact].map(|e| runs_on(kind, e));
            assert_eq!(got, expected, "{kind:?}");
        }
    }

    #[test]
    fn yes_and_no_in_their_spellings() {
        for (text, expected) in [
            ("yes", Some(true)),
            ("TRUE", Some(true)),
            ("no", Some(false)),
            ("false", Some(false)),
            ("perhaps", None),
        ] {
            assert_eq!(yes_no(text), expected, "{text}");
        }
    }
}
