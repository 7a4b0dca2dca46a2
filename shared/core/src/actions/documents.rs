//! The QuickBooks documents the actions make, as QBO's JSON, and the answer each gives HubSpot.
//! Pure: the caller resolves customer, items and accounts first.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::inputs::outputs;
use super::ActionKind;
use crate::domain::Money;
use crate::mapping::invoices::{self as map, HubSpotLine};

/// What a sales document (invoice, estimate, sales receipt) is made of.
#[derive(Debug, Clone)]
pub struct SalesDocument<'a> {
    pub customer: &'a str,
    pub lines: &'a [HubSpotLine],
    /// The QBO item of each line, by line id (every line has one by now).
    pub items: &'a HashMap<String, String>,
    /// Invoices only: the payment terms.
    pub term: Option<&'a str>,
    pub memo: Option<&'a str>,
}

/// The body of an invoice, estimate or sales receipt: one QBO line per HubSpot line item.
pub fn sales_document(document: &SalesDocument<'_>) -> Map<String, Value> {
    let mut body = map::qbo_invoice(
        &BTreeMap::new(),
        document.customer,
        document.lines,
        document.items,
        false,
        None,
    );
    if let Some(term) = document.term {
        body.insert("SalesTermRef".into(), json!({ "value": term }));
    }
    if let Some(memo) = document.memo {
        body.insert("PrivateNote".into(), Value::String(memo.to_owned()));
    }
    body
}

/// The sum of the lines as QBO books them (each rounded to cents).
pub fn lines_total(lines: &[HubSpotLine]) -> Money {
    lines
        .iter()
        .filter_map(|l| l.price.checked_mul(l.quantity).map(Money::round_cents))
        .fold(Money::ZERO, |sum, amount| {
            sum.checked_add(amount).unwrap_or(sum)
        })
}

/// A QBO Payment of `amount` applied to one invoice.
pub fn invoice_payment(
    customer: &str,
    invoice_id: &str,
    amount: Money,
    payment_method: Option<&str>,
    deposit_account: Option<&str>,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("CustomerRef".into(), json!({ "value": customer }));
    body.insert("TotalAmt".into(), json!(amount));
    body.insert(
        "Line".into(),
        json!([{ "Amount": amount, "LinkedTxn": [{ "TxnId": invoice_id, "TxnType": "Invoice" }] }]),
    );
    if let Some(method) = payment_method {
        body.insert("PaymentMethodRef".into(), json!({ "value": method }));
    }
    if let Some(account) = deposit_account {
        body.insert("DepositToAccountRef".into(), json!({ "value": account }));
    }
    body
}

/// Where a payment's fee is booked (A5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeBooking<'a> {
    /// The account the fee is paid from (a bank or clearing account).
    pub paid_from: &'a str,
    /// The expense account the fee is booked on.
    pub expense_account: &'a str,
    /// The vendor paid (the payment processor), if set.
    pub payee: Option<&'a str>,
}

/// A QBO Purchase (expense) of a payment's fee.
pub fn fee_expense(booking: &FeeBooking<'_>, fee: Money, memo: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("PaymentType".into(), json!("Cash"));
    body.insert("AccountRef".into(), json!({ "value": booking.paid_from }));
    if let Some(payee) = booking.payee {
        body.insert(
            "EntityRef".into(),
            json!({ "value": payee, "type": "Vendor" }),
        );
    }
    body.insert("PrivateNote".into(), Value::String(memo.to_owned()));
    body.insert(
        "Line".into(),
        json!([{
            "Amount": fee,
            "Description": memo,
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": { "AccountRef": { "value": booking.expense_account } }
        }]),
    );
    body
}

/// A QBO RefundReceipt of the lines refunded, paid back from `refund_from`.
pub fn refund_receipt(
    customer: &str,
    lines: &[HubSpotLine],
    items: &HashMap<String, String>,
    refund_from: &str,
    memo: Option<&str>,
) -> Map<String, Value> {
    let mut body = sales_document(&SalesDocument {
        customer,
        lines,
        items,
        term: None,
        memo,
    });
    body.insert(
        "DepositToAccountRef".into(),
        json!({ "value": refund_from }),
    );
    body
}

/// What QBO answered about a document it made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Made {
    pub id: String,
    pub number: Option<String>,
    pub total: Option<String>,
}

impl Made {
    pub fn read(document: &Map<String, Value>) -> Option<Self> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        Some(Self {
            id: document.get("Id").and_then(text)?,
            number: document.get("DocNumber").and_then(text),
            total: document.get("TotalAmt").and_then(text),
        })
    }
}

/// The document's name in an answer.
pub fn document_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::CreateInvoice | ActionKind::CreatePaidInvoice => "invoice",
        ActionKind::CreateEstimate => "estimate",
        ActionKind::CreateSalesReceipt => "sales receipt",
        ActionKind::CreateExpense => "expense",
        ActionKind::CreateRefundReceipt => "refund receipt",
    }
}

/// The output fields of a document made (or found made by an earlier attempt).
pub fn success_outputs(
    kind: ActionKind,
    made: &Made,
    customer: Option<&str>,
    payment: Option<&str>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(outputs::DOCUMENT_ID.to_owned(), made.id.clone());
    if let Some(number) = &made.number {
        out.insert(outputs::DOCUMENT_NUMBER.to_owned(), number.clone());
    }
    if let Some(total) = &made.total {
        out.insert(outputs::DOCUMENT_TOTAL.to_owned(), total.clone());
    }
    if let Some(customer) = customer {
        out.insert(outputs::CUSTOMER_ID.to_owned(), customer.to_owned());
    }
    if let Some(payment) = payment {
        out.insert(outputs::PAYMENT_ID.to_owned(), payment.to_owned());
    }
    let number = made
        .number
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    let total = made
        .total
        .as_deref()
        .map(|t| format!(" for {t}"))
        .unwrap_or_default();
    let paid = if payment.is_some() {
        " and recorded its payment"
    } else {
        ""
    };
    out.insert(
        outputs::MESSAGE.to_owned(),
        format!(
            "Created QuickBooks {}{number} (id {}){total}{paid}.",
            document_name(kind),
            made.id
        ),
    );
    out
}

/// The output fields of an execution that made nothing.
pub fn failure_outputs(category: &str, message: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (outputs::ERROR_CODE.to_owned(), category.to_owned()),
        (outputs::MESSAGE.to_owned(), message.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, name: &str, quantity: &str, price: &str) -> HubSpotLine {
        let properties = BTreeMap::from([
            ("name".to_owned(), Some(name.to_owned())),
            ("quantity".to_owned(), Some(quantity.to_owned())),
            ("price".to_owned(), Some(price.to_owned())),
        ]);
        HubSpotLine::read(id, &properties)
    }

    #[test]
    fn a_sales_document_books_each_line_on_its_item() {
        let lines = [
            line("11", "Design", "2", "150.00"),
            line("12", "Hosting", "1", "19.99"),
        ];
        let items = HashMap::from([
            ("11".to_owned(), "7".to_owned()),
            ("12".to_owned(), "8".to_owned()),
        ]);
        let body = sales_document(&SalesDocument {
            customer: "58",
            lines: &lines,
            items: &items,
            term: Some("3"),
            memo: Some("Deal 42"),
        });
        assert_eq!(body["CustomerRef"], json!({"value": "58"}));
        assert_eq!(body["SalesTermRef"], json!({"value": "3"}));
        assert_eq!(body["PrivateNote"], "Deal 42");
        let qbo_lines = body["Line"].as_array().unwrap();
        assert_eq!(qbo_lines.len(), 2);
        assert_eq!(qbo_lines[0]["Amount"], json!(300));
        assert_eq!(
            qbo_lines[0]["SalesItemLineDetail"]["ItemRef"],
            json!({"value": "7"})
        );
        assert_eq!(qbo_lines[0]["SalesItemLineDetail"]["Qty"], json!(2));
        assert_eq!(qbo_lines[1]["Amount"], json!(19.99));
        assert_eq!(lines_total(&lines).to_string(), "319.99");
        let no_terms = sales_document(&SalesDocument {
            customer: "58",
            lines: &lines,
            items: &items,
            term: None,
            memo: None,
        });
        assert!(no_terms.get("SalesTermRef").is_none() && no_terms.get("PrivateNote").is_none());
    }

    #[test]
    fn a_payment_is_applied_to_its_invoice() {
        let amount = Money::parse("319.99").unwrap();
        let body = invoice_payment("58", "130", amount, Some("2"), None);
        assert_eq!(body["TotalAmt"], json!(319.99));
        assert_eq!(
            body["Line"][0]["LinkedTxn"][0],
            json!({"TxnId": "130", "TxnType": "Invoice"})
        );
        assert_eq!(body["PaymentMethodRef"], json!({"value": "2"}));
        assert!(body.get("DepositToAccountRef").is_none());
    }

    #[test]
    fn a_fee_is_an_expense_on_its_account() {
        let booking = FeeBooking {
            paid_from: "35",
            expense_account: "60",
            payee: Some("41"),
        };
        let body = fee_expense(
            &booking,
            Money::parse("3.20").unwrap(),
            "HubSpot payment 9 fees",
        );
        assert_eq!(body["AccountRef"], json!({"value": "35"}));
        assert_eq!(body["EntityRef"], json!({"value": "41", "type": "Vendor"}));
        assert_eq!(body["Line"][0]["Amount"], json!(3.2));
        assert_eq!(
            body["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"],
            json!({"value": "60"})
        );
    }

    #[test]
    fn answers_say_what_was_made_or_why_not() {
        let made = Made::read(
            json!({"Id": "130", "DocNumber": "1037", "TotalAmt": 319.99})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let out = success_outputs(
            ActionKind::CreatePaidInvoice,
            &made,
            Some("58"),
            Some("131"),
        );
        assert_eq!(out[outputs::DOCUMENT_ID], "130");
        assert_eq!(out[outputs::DOCUMENT_TOTAL], "319.99");
        assert_eq!(out[outputs::PAYMENT_ID], "131");
        assert_eq!(
            out[outputs::MESSAGE],
            "Created QuickBooks invoice 1037 (id 130) for 319.99 and recorded its payment."
        );
        assert_eq!(
            Made::read(json!({"DocNumber": "1"}).as_object().unwrap()),
            None
        );
        let failed = failure_outputs("unmatched_items", "no item for Hosting");
        assert_eq!(failed[outputs::ERROR_CODE], "unmatched_items");
    }
}
