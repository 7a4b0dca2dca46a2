//! Sales forms: Invoice, Estimate, SalesReceipt, RefundReceipt — lines, totals, tax codes,
//! DocNumber, terms and balances.

use super::payment::payments_towards;
use super::{
    currency_ref, default_field, resolve_optional, resolve_ref, resolve_required, text, txn_date,
    Object, WriteCtx,
};
use crate::qbo::entity::EntityKind;
use crate::qbo::fault::Fault;
use crate::qbo::format::{cents, decimal, format_date, money, parse_date};
use crate::qbo::store::{ref_id_of, ref_value, Realm};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use time::Duration;

const MAX_DOC_NUMBER: usize = 21;

pub fn prepare(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    obj: &mut Object,
    existing: Option<&Value>,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let customer_id = if matches!(kind, EntityKind::Invoice | EntityKind::Estimate) {
        Some(resolve_required(
            realm,
            EntityKind::Customer,
            obj,
            "CustomerRef",
        )?)
    } else {
        resolve_optional(realm, EntityKind::Customer, obj, "CustomerRef")?
    };
    let customer = customer_id
        .and_then(|id| realm.value(EntityKind::Customer, id))
        .cloned();
    let date = txn_date(realm, ctx, obj)?;
    resolve_optional(realm, EntityKind::PaymentMethod, obj, "PaymentMethodRef")?;

    let totals = compute_lines(realm, kind, obj)?;
    let tax = obj
        .get("TxnTaxDetail")
        .and_then(|d| d.get("TotalTax"))
        .and_then(decimal)
        .map(cents)
        .unwrap_or_default();
    let inclusive = obj.get("GlobalTaxCalculation").and_then(Value::as_str) == Some("TaxInclusive");
    let total = if inclusive {
        totals.subtotal - totals.discount
    } else {
        totals.subtotal - totals.discount + tax
    };
    let mut tax_detail = obj
        .get("TxnTaxDetail")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    tax_detail.insert("TotalTax".into(), money(tax));
    obj.insert("TxnTaxDetail".into(), Value::Object(tax_detail));
    obj.insert("TotalAmt".into(), money(total));
    if realm.is_us() {
        obj.remove("GlobalTaxCalculation");
    } else {
        default_field(
            obj,
            "GlobalTaxCalculation",
            Value::String("TaxExcluded".into()),
        );
    }

    assign_doc_number(realm, ctx, kind, obj, existing, self_id)?;
    default_field(obj, "CurrencyRef", currency_ref(realm));
    default_field(obj, "PrintStatus", Value::String("NotSet".into()));
    default_field(obj, "EmailStatus", Value::String("NotSet".into()));
    default_field(obj, "ApplyTaxAfterDiscount", Value::Bool(false));
    apply_custom_fields(realm, obj);
    copy_customer_contact(obj, customer.as_ref());

    match kind {
        EntityKind::Invoice => {
            apply_terms(realm, obj, customer.as_ref(), date)?;
            let (paid, payment_ids) = self_id
                .map(|id| payments_towards(realm, id))
                .unwrap_or_default();
            if paid > total {
                return Err(Fault::business(format!(
                    "The invoice total ({total}) cannot be less than the payments already applied to it ({paid})."
                )));
            }
            obj.insert("Balance".into(), money(total - paid));
            obj.insert(
                "LinkedTxn".into(),
                Value::Array(merge_payment_links(obj.get("LinkedTxn"), &payment_ids)),
            );
            default_field(obj, "Deposit", Value::from(0));
            default_field(obj, "AllowIPNPayment", Value::Bool(false));
            default_field(obj, "AllowOnlinePayment", Value::Bool(false));
            default_field(obj, "AllowOnlineCreditCardPayment", Value::Bool(false));
            default_field(obj, "AllowOnlineACHPayment", Value::Bool(false));
        }
        EntityKind::Estimate => {
            default_field(obj, "TxnStatus", Value::String("Pending".into()));
            normalise_links(obj);
        }
        _ => {
            // A sales receipt's money goes to Undeposited Funds unless it names an account; a
            // refund receipt must name the account it is paid from.
            if kind == EntityKind::SalesReceipt && obj.get("DepositToAccountRef").is_none() {
                if let Some(id) = undeposited_funds(realm) {
                    obj.insert(
                        "DepositToAccountRef".into(),
                        serde_json::json!({"value": id.to_string()}),
                    );
                }
            }
            resolve_required(realm, EntityKind::Account, obj, "DepositToAccountRef")?;
            obj.insert("Balance".into(), Value::from(0));
            normalise_links(obj);
        }
    }
    Ok(())
}

struct Totals {
    subtotal: Decimal,
    discount: Decimal,
}

/// Validates and numbers the lines, checks Amount = Qty × UnitPrice, appends the SubTotal line.
fn compute_lines(realm: &Realm, kind: EntityKind, obj: &mut Object) -> Result<Totals, Fault> {
    let input = match obj.remove("Line") {
        Some(Value::Array(lines)) => lines,
        _ => Vec::new(),
    };
    let mut lines: Vec<Value> = input
        .into_iter()
        .filter(|l| detail_type(l).as_deref() != Some("SubTotalLineDetail"))
        .collect();
    if lines.is_empty() {
        return Err(Fault::required("Line"));
    }
    let mut next_line_id = lines
        .iter()
        .filter_map(|l| l.get("Id").and_then(ref_id_of))
        .max()
        .unwrap_or(0)
        + 1;
    let mut subtotal = Decimal::ZERO;
    let mut discount_lines = Vec::new();
    for (index, line) in lines.iter_mut().enumerate() {
        let Some(map) = line.as_object_mut() else {
            return Err(Fault::invalid_property(
                "Line",
                "Each Line must be an object",
            ));
        };
        let line_id = match map.get("Id").and_then(ref_id_of) {
            Some(id) => id,
            None => {
                next_line_id += 1;
                next_line_id - 1
            }
        };
        map.insert("Id".into(), Value::String(line_id.to_string()));
        map.insert("LineNum".into(), Value::from(index + 1));
        let dtype = map
            .get("DetailType")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Fault::required("Line.DetailType"))?;
        match dtype.as_str() {
            "SalesItemLineDetail" => {
                subtotal += sales_item_line(realm, kind, map)?;
            }
            "DiscountLineDetail" => discount_lines.push(index),
            "DescriptionOnly" => {
                map.remove("Amount");
            }
            "GroupLineDetail" => {
                if let Some(a) = map.get("Amount").and_then(decimal) {
                    subtotal += cents(a);
                }
            }
            other => return Err(Fault::invalid_enum("Line.DetailType", other)),
        }
    }
    let mut discount = Decimal::ZERO;
    for index in discount_lines {
        let Some(map) = lines.get_mut(index).and_then(Value::as_object_mut) else {
            continue;
        };
        let detail = map
            .get("DiscountLineDetail")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let percent_based = detail
            .get("PercentBased")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let value = match (
            percent_based,
            detail.get("DiscountPercent").and_then(decimal),
        ) {
            (true, Some(pct)) => cents(subtotal * pct / Decimal::from(100)),
            _ => map
                .get("Amount")
                .and_then(decimal)
                .map(cents)
                .ok_or_else(|| Fault::required("Line.Amount"))?,
        };
        map.insert("Amount".into(), money(value));
        discount += value;
    }
    lines.push(json!({"Amount": money(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
    obj.insert("Line".into(), Value::Array(lines));
    Ok(Totals { subtotal, discount })
}

fn detail_type(line: &Value) -> Option<String> {
    line.get("DetailType")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One SalesItemLineDetail line; returns its amount.
fn sales_item_line(realm: &Realm, kind: EntityKind, line: &mut Object) -> Result<Decimal, Fault> {
    let mut detail = line
        .remove("SalesItemLineDetail")
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Some(item_ref) = detail.get_mut("ItemRef") {
        if super::has_ref_value(item_ref) {
            resolve_ref(
                realm,
                EntityKind::Item,
                item_ref,
                "Line.SalesItemLineDetail.ItemRef",
            )?;
        }
    }
    let nonzero = |v: Option<Decimal>| v.filter(|d| !d.is_zero());
    let qty = nonzero(detail.get("Qty").and_then(decimal));
    let price = nonzero(detail.get("UnitPrice").and_then(decimal));
    let given = line.get("Amount").and_then(decimal);
    let amount = match (given, qty, price) {
        (_, Some(q), Some(p)) => {
            let expected = cents(q * p);
            if let Some(a) = given {
                if cents(a) != expected {
                    return Err(Fault::amount_mismatch(
                        &expected.to_string(),
                        &a.to_string(),
                    ));
                }
            }
            expected
        }
        (Some(a), Some(q), None) => {
            set(&mut detail, "UnitPrice", money((a / q).round_dp(7)));
            cents(a)
        }
        (Some(a), None, Some(p)) => {
            set(&mut detail, "Qty", money((a / p).round_dp(7)));
            cents(a)
        }
        (Some(a), None, None) => {
            set(&mut detail, "Qty", Value::from(1));
            set(&mut detail, "UnitPrice", money(a));
            cents(a)
        }
        (None, _, _) => return Err(Fault::required("Line.Amount")),
    };
    check_line_tax_code(
        realm,
        kind,
        &mut detail,
        "Line.SalesItemLineDetail.TaxCodeRef",
    )?;
    line.insert("Amount".into(), money(amount));
    line.insert("SalesItemLineDetail".into(), detail);
    Ok(amount)
}

fn set(detail: &mut Value, field: &str, value: Value) {
    if let Some(map) = detail.as_object_mut() {
        map.insert(field.into(), value);
    }
}

/// US companies: `TAX`/`NON` only (default `NON`). Other countries: a real TaxCode Id is required
/// on every line (6000, with the country's VAT/GST wording).
pub fn check_line_tax_code(
    realm: &Realm,
    _kind: EntityKind,
    detail: &mut Value,
    element: &str,
) -> Result<(), Fault> {
    let given = ref_value(detail.get("TaxCodeRef"));
    if realm.is_us() {
        match given.as_deref() {
            None => set(detail, "TaxCodeRef", json!({"value": "NON"})),
            Some("TAX") | Some("NON") => {}
            Some(other) => return Err(Fault::invalid_line_tax_code(other)),
        }
        return Ok(());
    }
    let tax_word = match realm.country().as_str() {
        "GB" | "UK" | "IE" | "FR" | "DE" => "VAT",
        "CA" => "GST/HST",
        _ => "GST",
    };
    let missing = || {
        Fault::business(format!(
            "Make sure all your transactions have a {tax_word} rate before you save."
        ))
    };
    let id = given
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(missing)?;
    if realm.value(EntityKind::TaxCode, id).is_none() {
        return Err(missing());
    }
    if let Some(reference) = detail.get_mut("TaxCodeRef") {
        super::resolve_ref(realm, EntityKind::TaxCode, reference, element)?;
    }
    Ok(())
}

fn assign_doc_number(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    obj: &mut Object,
    existing: Option<&Value>,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let auto_requested = obj
        .get("AutoDocNumber")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match text(obj, "DocNumber") {
        Some(doc) => {
            if doc.chars().count() > MAX_DOC_NUMBER {
                return Err(Fault::invalid_property(
                    "DocNumber",
                    format!(
                        "String length is either shorter or longer than supported by specification. Min:0 Max:{MAX_DOC_NUMBER} supported. Supplied length:{}",
                        doc.chars().count()
                    ),
                ));
            }
            if !ctx.allow_duplicate_doc_number {
                if let Some(owner) = realm.doc_number_owner(kind, &doc, self_id) {
                    return Err(Fault::duplicate_doc_number(
                        &doc,
                        kind.name(),
                        &owner.to_string(),
                    ));
                }
            }
            obj.insert("DocNumber".into(), Value::String(doc));
        }
        None => {
            if let Some(previous) = existing.and_then(|e| e.get("DocNumber")).cloned() {
                obj.insert("DocNumber".into(), previous);
            } else if !realm.custom_txn_numbers() || auto_requested {
                let doc = realm.next_doc_number(kind);
                obj.insert("DocNumber".into(), Value::String(doc));
            } else {
                obj.remove("DocNumber");
            }
        }
    }
    obj.remove("AutoDocNumber");
    Ok(())
}

/// Keeps only the enabled legacy custom fields (first three string fields), with values given.
fn apply_custom_fields(realm: &Realm, obj: &mut Object) {
    let definitions = realm.custom_field_definitions();
    let given = obj
        .get("CustomField")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let fields: Vec<Value> = definitions
        .into_iter()
        .map(|(slot, name)| {
            let mut field = json!({"DefinitionId": slot, "Name": name, "Type": "StringType"});
            let value = given
                .iter()
                .find(|g| {
                    g.get("DefinitionId").map(super::value_text).as_deref() == Some(slot.as_str())
                        || g.get("Name").and_then(Value::as_str) == Some(name.as_str())
                })
                .and_then(|g| g.get("StringValue"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            if let (Some(v), Some(map)) = (value, field.as_object_mut()) {
                map.insert("StringValue".into(), Value::String(v.to_string()));
            }
            field
        })
        .collect();
    obj.insert("CustomField".into(), Value::Array(fields));
}

fn copy_customer_contact(obj: &mut Object, customer: Option<&Value>) {
    let Some(customer) = customer else { return };
    if !obj.contains_key("BillEmail") {
        if let Some(email) = customer
            .get("PrimaryEmailAddr")
            .filter(|e| e.get("Address").is_some())
        {
            obj.insert("BillEmail".into(), json!({"Address": email.get("Address")}));
        }
    }
    for field in ["BillAddr", "ShipAddr"] {
        if !obj.contains_key(field) {
            if let Some(addr) = customer.get(field) {
                obj.insert(field.into(), addr.clone());
            }
        }
    }
}

/// SalesTermRef (given, else the customer's, else the company default) and DueDate from it.
fn apply_terms(
    realm: &Realm,
    obj: &mut Object,
    customer: Option<&Value>,
    date: time::Date,
) -> Result<(), Fault> {
    let mut term_id = resolve_optional(realm, EntityKind::Term, obj, "SalesTermRef")?;
    if term_id.is_none() {
        term_id = customer
            .and_then(|c| c.get("SalesTermRef"))
            .and_then(|r| r.get("value"))
            .and_then(ref_id_of)
            .or_else(|| realm.default_terms_id())
            .filter(|id| realm.value(EntityKind::Term, *id).is_some());
        if let Some(id) = term_id {
            let mut reference = json!({"value": id.to_string()});
            resolve_ref(realm, EntityKind::Term, &mut reference, "SalesTermRef")?;
            obj.insert("SalesTermRef".into(), reference);
        }
    }
    match obj.get("DueDate").and_then(Value::as_str) {
        Some(due) => {
            parse_date(due).ok_or_else(|| {
                Fault::invalid_property("DueDate", format!("Invalid date format: {due}"))
            })?;
        }
        None => {
            let days = term_id
                .and_then(|id| realm.value(EntityKind::Term, id))
                .and_then(|t| t.get("DueDays"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            obj.insert(
                "DueDate".into(),
                Value::String(format_date(date + Duration::days(days))),
            );
        }
    }
    Ok(())
}

/// Client-supplied links other than payments (e.g. the Estimate an invoice came from) + the
/// server-maintained payment links.
fn merge_payment_links(given: Option<&Value>, payment_ids: &[u64]) -> Vec<Value> {
    let mut links: Vec<Value> = given
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| {
            l.get("TxnType")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "Payment")
        })
        .filter_map(normalise_link)
        .collect();
    links.extend(
        payment_ids
            .iter()
            .map(|id| json!({"TxnId": id.to_string(), "TxnType": "Payment"})),
    );
    links
}

fn normalise_link(link: &Value) -> Option<Value> {
    let id = link.get("TxnId").and_then(ref_id_of)?;
    let txn_type = link.get("TxnType").and_then(Value::as_str)?;
    Some(json!({"TxnId": id.to_string(), "TxnType": txn_type}))
}

fn normalise_links(obj: &mut Object) {
    let links: Vec<Value> = obj
        .get("LinkedTxn")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(normalise_link)
        .collect();
    obj.insert("LinkedTxn".into(), Value::Array(links));
}

/// Voiding zeroes every amount and notes it, as QBO does.
pub fn void_amounts(obj: &mut Object) {
    if let Some(Value::Array(lines)) = obj.get_mut("Line") {
        for line in lines.iter_mut() {
            if let Some(map) = line.as_object_mut() {
                if map.contains_key("Amount") {
                    map.insert("Amount".into(), Value::from(0));
                }
                if let Some(Value::Object(detail)) = map.get_mut("SalesItemLineDetail") {
                    detail.insert("Qty".into(), Value::from(0));
                }
            }
        }
    }
    obj.insert("TotalAmt".into(), Value::from(0));
    if obj.contains_key("Balance") {
        obj.insert("Balance".into(), Value::from(0));
    }
    if let Some(Value::Object(tax)) = obj.get_mut("TxnTaxDetail") {
        tax.insert("TotalTax".into(), Value::from(0));
    }
    obj.insert("PrivateNote".into(), Value::String("Voided".into()));
}

/// The company's Undeposited Funds account.
fn undeposited_funds(realm: &Realm) -> Option<u64> {
    realm
        .records(EntityKind::Account)
        .find(|(_, r)| r.value["AccountSubType"] == "UndepositedFunds")
        .map(|(id, _)| *id)
}
