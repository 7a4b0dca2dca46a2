//! Business rules applied to every write: required fields, references, uniqueness, computed
//! amounts. Each `prepare_*` turns a cleaned request body into the object QBO would store.

pub mod names;
pub mod payment;
pub mod purchase;
pub mod sales;

use super::entity::EntityKind;
use super::fault::Fault;
use super::format::{format_date, local_date, parse_date};
use super::store::{ref_id_of, Realm};
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime, UtcOffset};

pub type Object = Map<String, Value>;

/// Everything a write needs besides the realm.
#[derive(Clone, Copy, Debug)]
pub struct WriteCtx {
    pub now: OffsetDateTime,
    pub offset: UtcOffset,
    /// `include=allowduplicatedocnum`.
    pub allow_duplicate_doc_number: bool,
    /// Loading a seed: explicit Ids and MetaData are kept, nothing is announced by webhook.
    pub seeding: bool,
}

impl WriteCtx {
    pub fn today(&self) -> Date {
        local_date(self.now, self.offset)
    }
}

/// Prepares `obj` for storage as `kind`. `self_id` is the entity's Id on update.
pub fn prepare(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    obj: &mut Object,
    existing: Option<&Value>,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    match kind {
        EntityKind::Customer | EntityKind::Vendor | EntityKind::Employee => {
            names::prepare_person(realm, kind, obj, self_id)
        }
        EntityKind::Item => names::prepare_item(realm, obj, self_id),
        EntityKind::Account => names::prepare_account(realm, obj, self_id),
        EntityKind::Term => names::prepare_term(realm, obj, self_id),
        EntityKind::PaymentMethod => names::prepare_payment_method(realm, obj, self_id),
        EntityKind::Invoice
        | EntityKind::Estimate
        | EntityKind::SalesReceipt
        | EntityKind::RefundReceipt => sales::prepare(realm, ctx, kind, obj, existing, self_id),
        EntityKind::Payment => payment::prepare(realm, ctx, obj, self_id),
        EntityKind::Purchase => purchase::prepare(realm, ctx, obj),
        EntityKind::TaxCode => Err(Fault::unsupported(
            "Operation Create/Update is not supported for TaxCode; use the TaxService endpoint.",
        )),
        EntityKind::CompanyInfo | EntityKind::Preferences => Ok(()),
    }
}

/// The human name QBO puts in `Ref.name`.
pub fn display_name(kind: EntityKind, value: &Value) -> String {
    let field = match kind {
        EntityKind::Customer | EntityKind::Vendor | EntityKind::Employee => "DisplayName",
        EntityKind::Account | EntityKind::Item => "FullyQualifiedName",
        _ => "Name",
    };
    value
        .get(field)
        .or_else(|| value.get("Name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub fn is_active(value: &Value) -> bool {
    value.get("Active").and_then(Value::as_bool).unwrap_or(true)
}

/// Resolves `obj[field]` (a `{"value": id}` reference) to an active entity of `kind`, fills in
/// `name`, and returns the Id. Unknown/deleted → 2500, inactive → 610.
pub fn resolve_ref(
    realm: &Realm,
    kind: EntityKind,
    reference: &mut Value,
    element: &str,
) -> Result<u64, Fault> {
    let raw = reference.get("value").cloned().unwrap_or(Value::Null);
    let Some(id) = ref_id_of(&raw) else {
        return match raw {
            Value::Null => Err(Fault::required(element)),
            other => Err(Fault::invalid_reference(kind.name(), &value_text(&other))),
        };
    };
    let Some(target) = realm.value(kind, id) else {
        return Err(Fault::invalid_reference(kind.name(), &id.to_string()));
    };
    if !is_active(target) {
        return Err(Fault::object_not_found());
    }
    let name = display_name(kind, target);
    if let Some(r) = reference.as_object_mut() {
        r.insert("value".into(), Value::String(id.to_string()));
        if !name.is_empty() {
            r.insert("name".into(), Value::String(name));
        }
    }
    Ok(id)
}

/// Resolves an optional reference field of `obj`; absent (or `value` empty) is fine.
pub fn resolve_optional(
    realm: &Realm,
    kind: EntityKind,
    obj: &mut Object,
    field: &str,
) -> Result<Option<u64>, Fault> {
    match obj.get_mut(field) {
        Some(reference) if has_ref_value(reference) => {
            resolve_ref(realm, kind, reference, field).map(Some)
        }
        Some(_) => {
            obj.remove(field);
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Resolves a required reference field of `obj` (2020 when absent).
pub fn resolve_required(
    realm: &Realm,
    kind: EntityKind,
    obj: &mut Object,
    field: &str,
) -> Result<u64, Fault> {
    match obj.get_mut(field) {
        Some(reference) if has_ref_value(reference) => resolve_ref(realm, kind, reference, field),
        _ => Err(Fault::required(field)),
    }
}

pub fn has_ref_value(reference: &Value) -> bool {
    match reference.get("value") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    }
}

pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A trimmed non-empty string field.
pub fn text(obj: &Object, field: &str) -> Option<String> {
    obj.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Sets `field` to `default` when absent.
pub fn default_field(obj: &mut Object, field: &str, default: Value) {
    obj.entry(field.to_string()).or_insert(default);
}

/// `TxnDate` (defaulting to today in the company's offset), checked against the book close date.
pub fn txn_date(realm: &Realm, ctx: &WriteCtx, obj: &mut Object) -> Result<Date, Fault> {
    let date = match obj.get("TxnDate") {
        Some(Value::String(s)) => parse_date(s).ok_or_else(|| {
            Fault::invalid_property("TxnDate", format!("Invalid date format: {s}"))
        })?,
        _ => ctx.today(),
    };
    obj.insert("TxnDate".into(), Value::String(format_date(date)));
    check_period_open(realm, date)?;
    Ok(date)
}

/// 6210 when `date` falls on or before the company's book close date.
pub fn check_period_open(realm: &Realm, date: Date) -> Result<(), Fault> {
    match realm.book_close_date() {
        Some(closed) if date <= closed => Err(Fault::period_closed(&format_date(closed))),
        _ => Ok(()),
    }
}

/// `{"value":"USD","name":"United States Dollar"}` for the company's home currency.
pub fn currency_ref(realm: &Realm) -> Value {
    let code = realm.home_currency();
    let name = match code.as_str() {
        "USD" => "United States Dollar",
        "GBP" => "British Pound Sterling",
        "CAD" => "Canadian Dollar",
        "AUD" => "Australian Dollar",
        "EUR" => "Euro",
        _ => code.as_str(),
    }
    .to_string();
    serde_json::json!({"value": code, "name": name})
}
