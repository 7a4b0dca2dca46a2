//! Purchase (expense / check / credit-card charge) with account- or item-based lines.

use super::sales::check_line_tax_code;
use super::{
    currency_ref, default_field, resolve_ref, resolve_required, txn_date, Object, WriteCtx,
};
use crate::qbo::entity::EntityKind;
use crate::qbo::fault::Fault;
use crate::qbo::format::{cents, decimal, money};
use crate::qbo::store::{ref_id_of, Realm};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const PAYMENT_TYPES: [&str; 3] = ["Cash", "Check", "CreditCard"];

pub fn prepare(realm: &Realm, ctx: &WriteCtx, obj: &mut Object) -> Result<(), Fault> {
    let payment_type =
        super::text(obj, "PaymentType").ok_or_else(|| Fault::required("PaymentType"))?;
    if !PAYMENT_TYPES.contains(&payment_type.as_str()) {
        return Err(Fault::invalid_enum("PaymentType", &payment_type));
    }
    resolve_required(realm, EntityKind::Account, obj, "AccountRef")?;
    resolve_payee(realm, obj)?;
    txn_date(realm, ctx, obj)?;

    let input = match obj.remove("Line") {
        Some(Value::Array(lines)) => lines,
        _ => Vec::new(),
    };
    if input.is_empty() {
        return Err(Fault::required("Line"));
    }
    let mut total = Decimal::ZERO;
    let mut lines = Vec::with_capacity(input.len());
    for (index, mut line) in input.into_iter().enumerate() {
        let Some(map) = line.as_object_mut() else {
            return Err(Fault::invalid_property(
                "Line",
                "Each Line must be an object",
            ));
        };
        let line_amount = map
            .get("Amount")
            .and_then(decimal)
            .map(cents)
            .ok_or_else(|| Fault::required("Line.Amount"))?;
        let dtype = map
            .get("DetailType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match dtype.as_str() {
            "AccountBasedExpenseLineDetail" => {
                let element = "Line.AccountBasedExpenseLineDetail.AccountRef";
                let mut detail = map
                    .remove(&dtype)
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                match detail.get_mut("AccountRef") {
                    Some(r) if super::has_ref_value(r) => {
                        resolve_ref(realm, EntityKind::Account, r, element)?;
                    }
                    _ => return Err(Fault::required(element)),
                }
                if let Some(r) = detail
                    .get_mut("CustomerRef")
                    .filter(|r| super::has_ref_value(r))
                {
                    resolve_ref(realm, EntityKind::Customer, r, "CustomerRef")?;
                }
                tax_code(realm, &mut detail)?;
                map.insert(dtype.clone(), detail);
            }
            "ItemBasedExpenseLineDetail" => {
                let element = "Line.ItemBasedExpenseLineDetail.ItemRef";
                let mut detail = map
                    .remove(&dtype)
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                match detail.get_mut("ItemRef") {
                    Some(r) if super::has_ref_value(r) => {
                        resolve_ref(realm, EntityKind::Item, r, element)?;
                    }
                    _ => return Err(Fault::required(element)),
                }
                tax_code(realm, &mut detail)?;
                map.insert(dtype.clone(), detail);
            }
            "" => return Err(Fault::required("Line.DetailType")),
            other => return Err(Fault::invalid_enum("Line.DetailType", other)),
        }
        map.insert("Id".into(), Value::String((index + 1).to_string()));
        map.insert("Amount".into(), money(line_amount));
        total += line_amount;
        lines.push(line);
    }
    let tax = obj
        .get("TxnTaxDetail")
        .and_then(|d| d.get("TotalTax"))
        .and_then(decimal)
        .map(cents)
        .unwrap_or_default();
    obj.insert("Line".into(), Value::Array(lines));
    obj.insert("TotalAmt".into(), money(total + tax));
    default_field(obj, "Credit", Value::Bool(false));
    default_field(obj, "CurrencyRef", currency_ref(realm));
    Ok(())
}

/// Non-US companies need a tax code on each expense line; US lines carry none by default.
fn tax_code(realm: &Realm, detail: &mut Value) -> Result<(), Fault> {
    if realm.is_us() {
        return Ok(());
    }
    check_line_tax_code(realm, EntityKind::Purchase, detail, "Line.TaxCodeRef")
}

/// `EntityRef` names a Vendor, Customer or Employee (by `type`, else whichever has the Id).
fn resolve_payee(realm: &Realm, obj: &mut Object) -> Result<(), Fault> {
    let Some(reference) = obj.get_mut("EntityRef") else {
        return Ok(());
    };
    if !super::has_ref_value(reference) {
        return Ok(());
    }
    let kinds = match reference.get("type").and_then(Value::as_str) {
        Some("Customer") => vec![EntityKind::Customer],
        Some("Employee") => vec![EntityKind::Employee],
        Some("Vendor") => vec![EntityKind::Vendor],
        _ => vec![
            EntityKind::Vendor,
            EntityKind::Customer,
            EntityKind::Employee,
        ],
    };
    let id = reference.get("value").and_then(ref_id_of);
    let kind = kinds
        .iter()
        .copied()
        .find(|k| id.is_some_and(|id| realm.value(*k, id).is_some()))
        .unwrap_or(kinds[0]);
    resolve_ref(realm, kind, reference, "EntityRef")?;
    if let Some(map) = reference.as_object_mut() {
        map.insert("type".into(), Value::String(kind.name().into()));
    }
    Ok(())
}
