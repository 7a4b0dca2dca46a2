//! Payments: applied to invoices through `Line[].LinkedTxn`, reducing their Balance.

use super::{
    currency_ref, default_field, resolve_optional, resolve_required, txn_date, Object, WriteCtx,
};
use crate::qbo::entity::EntityKind;
use crate::qbo::fault::Fault;
use crate::qbo::format::{cents, decimal, money};
use crate::qbo::store::{amount, ref_id_of, ref_value, Realm};
use rust_decimal::Decimal;
use serde_json::{json, Value};

pub fn prepare(
    realm: &Realm,
    ctx: &WriteCtx,
    obj: &mut Object,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let customer_id = resolve_required(realm, EntityKind::Customer, obj, "CustomerRef")?;
    let total = obj
        .get("TotalAmt")
        .and_then(decimal)
        .map(cents)
        .ok_or_else(|| Fault::required("TotalAmt"))?;
    if total.is_sign_negative() {
        return Err(Fault::business("The payment amount cannot be negative."));
    }
    txn_date(realm, ctx, obj)?;
    resolve_optional(realm, EntityKind::Account, obj, "DepositToAccountRef")?;
    resolve_optional(realm, EntityKind::Account, obj, "ARAccountRef")?;
    resolve_optional(realm, EntityKind::PaymentMethod, obj, "PaymentMethodRef")?;

    let input = match obj.remove("Line") {
        Some(Value::Array(lines)) => lines,
        _ => Vec::new(),
    };
    let mut lines = Vec::with_capacity(input.len());
    let mut applied = Decimal::ZERO;
    for line in input {
        let line_amount = line
            .get("Amount")
            .and_then(decimal)
            .map(cents)
            .ok_or_else(|| Fault::required("Line.Amount"))?;
        let mut links = Vec::new();
        for link in line
            .get("LinkedTxn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let txn_type = link
                .get("TxnType")
                .and_then(Value::as_str)
                .unwrap_or("Invoice");
            let id = link
                .get("TxnId")
                .and_then(ref_id_of)
                .ok_or_else(|| Fault::required("Line.LinkedTxn.TxnId"))?;
            if txn_type == "Invoice" {
                check_invoice(realm, id, customer_id, line_amount, self_id)?;
            }
            links.push(json!({"TxnId": id.to_string(), "TxnType": txn_type}));
        }
        applied += line_amount;
        lines.push(json!({"Amount": money(line_amount), "LinkedTxn": links}));
    }
    if applied > total {
        return Err(Fault::business(format!(
            "The amount applied to invoices ({applied}) is more than the payment amount ({total})."
        )));
    }
    obj.insert("Line".into(), Value::Array(lines));
    obj.insert("TotalAmt".into(), money(total));
    obj.insert("UnappliedAmt".into(), money(total - applied));
    default_field(obj, "ProcessPayment", Value::Bool(false));
    default_field(obj, "CurrencyRef", currency_ref(realm));
    Ok(())
}

fn check_invoice(
    realm: &Realm,
    invoice_id: u64,
    customer_id: u64,
    line_amount: Decimal,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let Some(invoice) = realm.value(EntityKind::Invoice, invoice_id) else {
        return Err(if realm.is_deleted(EntityKind::Invoice, invoice_id) {
            Fault::deleted_transaction()
        } else {
            Fault::invalid_reference("Invoice", &invoice_id.to_string())
        });
    };
    if ref_value(invoice.get("CustomerRef")) != Some(customer_id.to_string()) {
        return Err(Fault::business(format!(
            "Invoice {invoice_id} belongs to a different customer than this payment."
        )));
    }
    // On update, what this payment already applied is available again.
    let already = self_id
        .and_then(|id| realm.value(EntityKind::Payment, id))
        .map(|p| applied_to(p, invoice_id))
        .unwrap_or_default();
    let open = amount(invoice, "Balance") + already;
    if line_amount > open {
        return Err(Fault::business(format!(
            "The payment amount applied to invoice {invoice_id} ({line_amount}) is more than its open balance ({open})."
        )));
    }
    Ok(())
}

/// What `payment` applies to `invoice_id`.
pub fn applied_to(payment: &Value, invoice_id: u64) -> Decimal {
    payment
        .get("Line")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|line| {
            line.get("LinkedTxn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|l| {
                    l.get("TxnType").and_then(Value::as_str) == Some("Invoice")
                        && l.get("TxnId").and_then(ref_id_of) == Some(invoice_id)
                })
        })
        .map(|line| amount(line, "Amount"))
        .sum()
}

/// Total paid towards an invoice and the payments that did it.
pub fn payments_towards(realm: &Realm, invoice_id: u64) -> (Decimal, Vec<u64>) {
    let mut paid = Decimal::ZERO;
    let mut ids = Vec::new();
    for (id, record) in realm.records(EntityKind::Payment) {
        let links = record
            .value
            .get("Line")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|l| {
                l.get("LinkedTxn")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|l| l.get("TxnId").and_then(ref_id_of) == Some(invoice_id));
        if links {
            paid += applied_to(&record.value, invoice_id);
            ids.push(*id);
        }
    }
    (paid, ids)
}

/// Invoice Ids a payment links to.
pub fn linked_invoices(payment: &Value) -> Vec<u64> {
    payment
        .get("Line")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l.get("LinkedTxn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|l| l.get("TxnType").and_then(Value::as_str) == Some("Invoice"))
        .filter_map(|l| l.get("TxnId").and_then(ref_id_of))
        .collect()
}
