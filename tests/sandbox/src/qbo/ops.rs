//! Entity operations — read, create, full/sparse update, delete, void — with SyncToken checks,
//! MetaData, and the knock-on effects of payments on invoices and customer balances.

use super::entity::EntityKind;
use super::fault::Fault;
use super::format::{meta_time, money, parse_datetime};
use super::rules::names::customer_balance;
use super::rules::payment::{linked_invoices, payments_towards};
use super::rules::sales::void_amounts;
use super::rules::{check_period_open, prepare, Object, WriteCtx};
use super::store::{amount, ref_id_of, ref_value, ChangeOp, Realm};
use crate::qbo::format::parse_date;
use serde_json::{json, Value};

/// Parses a path/body Id (2030 when not a number).
pub fn parse_id(text: &str) -> Result<u64, Fault> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| Fault::invalid_id(text))
}

fn body_id(body: &Value) -> Result<Option<u64>, Fault> {
    match body.get("Id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_id(s).map(Some),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Fault::invalid_id(&n.to_string())),
        Some(other) => Err(Fault::invalid_id(&other.to_string())),
    }
}

fn not_found(realm: &Realm, kind: EntityKind, id: u64) -> Fault {
    if realm.is_deleted(kind, id) {
        Fault::deleted_transaction()
    } else {
        Fault::object_not_found()
    }
}

pub fn read(realm: &Realm, kind: EntityKind, id_text: &str) -> Result<Value, Fault> {
    let id = parse_id(id_text)?;
    realm
        .value(kind, id)
        .cloned()
        .ok_or_else(|| not_found(realm, kind, id))
}

/// Strips what clients echo back but cannot set, and treats empty strings/nulls as absent
/// (python-quickbooks sends `""` for every unset text field).
fn clean(body: Value) -> Result<Object, Fault> {
    let Value::Object(mut map) = body else {
        return Err(Fault::invalid_property(
            "",
            "The request body must be a JSON object.",
        ));
    };
    map.retain(|_, v| !(v.is_null() || v.as_str() == Some("")));
    for key in [
        "domain",
        "sparse",
        "status",
        "MetaData",
        "time",
        "Id",
        "SyncToken",
    ] {
        map.remove(key);
    }
    Ok(map)
}

fn sync_token_of(value: &Value) -> u64 {
    value.get("SyncToken").and_then(ref_id_of).unwrap_or(0)
}

/// 5010 unless the body carries the entity's current SyncToken.
fn check_sync_token(body: &Value, existing: &Value) -> Result<(), Fault> {
    let given = match body.get("SyncToken") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(Fault::required("SyncToken")),
    };
    if given != sync_token_of(existing).to_string() {
        return Err(Fault::stale_object());
    }
    Ok(())
}

fn txn_date_of(value: &Value) -> Option<time::Date> {
    value
        .get("TxnDate")
        .and_then(Value::as_str)
        .and_then(parse_date)
}

/// Create or update, as the client's `save()` does (an Id means update).
pub fn save(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    body: Value,
) -> Result<Value, Fault> {
    if body_id(&body)?.is_some_and(|id| id > 0) || kind.is_singleton() {
        update(realm, ctx, kind, body)
    } else {
        create(realm, ctx, kind, body)
    }
}

pub fn create(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    body: Value,
) -> Result<Value, Fault> {
    if !kind.creatable() {
        return Err(Fault::unsupported(format!(
            "Operation Create is not supported for {}.",
            kind.name()
        )));
    }
    let explicit = if ctx.seeding { body_id(&body)? } else { None };
    let meta = if ctx.seeding {
        body.get("MetaData").cloned()
    } else {
        None
    };
    let mut obj = clean(body)?;
    prepare(realm, ctx, kind, &mut obj, None, explicit)?;
    let id = match explicit {
        Some(id) => id,
        None => realm.allocate_id(kind),
    };
    let value = store(realm, ctx, kind, id, obj, 0, meta);
    after_write(realm, ctx, kind, None, Some(&value));
    change(realm, ctx, kind, id, ChangeOp::Create);
    Ok(value)
}

pub fn update(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    body: Value,
) -> Result<Value, Fault> {
    let sparse = body.get("sparse").and_then(Value::as_bool).unwrap_or(false);
    let id = match body_id(&body)? {
        Some(id) => id,
        None if kind.is_singleton() => realm.records(kind).next().map(|(id, _)| *id).unwrap_or(1),
        None => return Err(Fault::required("Id")),
    };
    let existing = realm
        .value(kind, id)
        .cloned()
        .ok_or_else(|| not_found(realm, kind, id))?;
    check_sync_token(&body, &existing)?;
    if kind.is_transaction() {
        if let Some(date) = txn_date_of(&existing) {
            check_period_open(realm, date)?;
        }
    }
    let mut obj = clean(body)?;
    if sparse {
        // Top-level fields are merged; arrays such as Line arrive whole and replace the old ones.
        let mut merged = clean(existing.clone())?;
        merged.extend(obj);
        obj = merged;
    }
    if kind.is_singleton() {
        // Preferences/CompanyInfo sections not sent are kept: clients send only what they change.
        let mut merged = clean(existing.clone())?;
        merged.extend(obj);
        obj = merged;
    }
    prepare(realm, ctx, kind, &mut obj, Some(&existing), Some(id))?;
    let value = store(
        realm,
        ctx,
        kind,
        id,
        obj,
        sync_token_of(&existing) + 1,
        existing.get("MetaData").cloned(),
    );
    after_write(realm, ctx, kind, Some(&existing), Some(&value));
    change(realm, ctx, kind, id, ChangeOp::Update);
    Ok(value)
}

pub fn delete(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    body: Value,
) -> Result<Value, Fault> {
    if !kind.is_transaction() {
        return Err(Fault::unsupported(format!(
            "Operation Delete is not supported for {}; make it inactive instead.",
            kind.name()
        )));
    }
    let (id, existing) = removable(realm, kind, &body)?;
    realm.delete(kind, id, ctx.now);
    after_write(realm, ctx, kind, Some(&existing), None);
    change(realm, ctx, kind, id, ChangeOp::Delete);
    Ok(json!({"domain": "QBO", "status": "Deleted", "Id": id.to_string()}))
}

pub fn void(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    body: Value,
) -> Result<Value, Fault> {
    if !kind.voidable() {
        return Err(Fault::unsupported(format!(
            "Operation Void is not supported for {}.",
            kind.name()
        )));
    }
    let (id, existing) = removable(realm, kind, &body)?;
    let mut obj = clean(existing.clone())?;
    if kind == EntityKind::Payment {
        obj.insert("Line".into(), Value::Array(Vec::new()));
        obj.insert("TotalAmt".into(), Value::from(0));
        obj.insert("UnappliedAmt".into(), Value::from(0));
        obj.insert("PrivateNote".into(), Value::String("Voided".into()));
    } else {
        void_amounts(&mut obj);
    }
    let value = store(
        realm,
        ctx,
        kind,
        id,
        obj,
        sync_token_of(&existing) + 1,
        existing.get("MetaData").cloned(),
    );
    after_write(realm, ctx, kind, Some(&existing), Some(&value));
    change(realm, ctx, kind, id, ChangeOp::Void);
    Ok(value)
}

/// The transaction a delete or void names, once it may be removed: it exists, the caller saw its
/// current SyncToken, its period is open and (for invoices) no payment is applied to it.
fn removable(realm: &Realm, kind: EntityKind, body: &Value) -> Result<(u64, Value), Fault> {
    let id = body_id(body)?.ok_or_else(|| Fault::required("Id"))?;
    let existing = realm
        .value(kind, id)
        .cloned()
        .ok_or_else(|| not_found(realm, kind, id))?;
    check_sync_token(body, &existing)?;
    if let Some(date) = txn_date_of(&existing) {
        check_period_open(realm, date)?;
    }
    refuse_if_paid(realm, kind, id)?;
    Ok((id, existing))
}

/// An invoice with payments applied cannot be deleted or voided until they are removed.
fn refuse_if_paid(realm: &Realm, kind: EntityKind, id: u64) -> Result<(), Fault> {
    if kind == EntityKind::Invoice {
        let (_, payments) = payments_towards(realm, id);
        if !payments.is_empty() {
            return Err(Fault::business(format!(
                "This invoice has payments applied to it (Payment Id {}). Delete or unapply the payments first.",
                payments.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

/// Stamps Id, SyncToken, MetaData and the QBO attributes, and stores the entity.
fn store(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    id: u64,
    mut obj: Object,
    sync_token: u64,
    previous_meta: Option<Value>,
) -> Value {
    let now = meta_time(ctx.now, ctx.offset);
    let create_time = previous_meta
        .as_ref()
        .and_then(|m| m.get("CreateTime"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| now.clone());
    // Seeds may date their records in the past (CDC windows, incremental sync tests).
    let (updated, changed_at) = match previous_meta
        .as_ref()
        .filter(|_| ctx.seeding)
        .and_then(|m| m.get("LastUpdatedTime"))
        .and_then(Value::as_str)
        .and_then(|t| parse_datetime(t, ctx.offset).map(|at| (t.to_string(), at)))
    {
        Some(found) => found,
        None => (now, ctx.now),
    };
    obj.insert("Id".into(), Value::String(id.to_string()));
    obj.insert("SyncToken".into(), Value::String(sync_token.to_string()));
    obj.insert(
        "MetaData".into(),
        json!({"CreateTime": create_time, "LastUpdatedTime": updated}),
    );
    obj.insert("domain".into(), Value::String("QBO".into()));
    obj.insert("sparse".into(), Value::Bool(false));
    let value = Value::Object(obj);
    realm.put(kind, id, value.clone(), changed_at);
    value
}

fn change(realm: &mut Realm, ctx: &WriteCtx, kind: EntityKind, id: u64, op: ChangeOp) {
    if !ctx.seeding {
        realm.record_change(kind, id, op, ctx.now);
    }
}

/// Payments move invoice balances; invoices move customer balances. Seed loads settle all
/// balances once at the end instead (`settle_balances`).
fn after_write(
    realm: &mut Realm,
    ctx: &WriteCtx,
    kind: EntityKind,
    old: Option<&Value>,
    new: Option<&Value>,
) {
    if ctx.seeding {
        return;
    }
    let customers: Vec<u64> = [old, new]
        .into_iter()
        .flatten()
        .filter_map(|v| ref_value(v.get("CustomerRef")))
        .filter_map(|id| id.parse().ok())
        .collect();
    match kind {
        EntityKind::Payment => {
            let mut invoices: Vec<u64> = [old, new]
                .into_iter()
                .flatten()
                .flat_map(linked_invoices)
                .collect();
            invoices.sort_unstable();
            invoices.dedup();
            for invoice in invoices {
                reconcile_invoice(realm, ctx, invoice);
            }
        }
        EntityKind::Invoice => {
            if let Some(invoice) = new {
                close_estimates(realm, ctx, invoice);
            }
        }
        _ => return,
    }
    for customer in customers {
        let balance = customer_balance(realm, customer);
        if let Some(Value::Object(map)) = realm
            .get_mut(EntityKind::Customer, customer)
            .map(|r| &mut r.value)
        {
            map.insert("Balance".into(), money(balance));
            map.insert("BalanceWithJobs".into(), money(balance));
        }
    }
}

/// An invoice whose `LinkedTxn` names an estimate closes it, and the estimate links back to
/// the invoice (QBO's conversion of an estimate).
fn close_estimates(realm: &mut Realm, ctx: &WriteCtx, invoice: &Value) {
    let Some(invoice_id) = invoice.get("Id").and_then(ref_id_of) else {
        return;
    };
    let estimates: Vec<u64> = invoice
        .get("LinkedTxn")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("TxnType").and_then(Value::as_str) == Some("Estimate"))
        .filter_map(|l| l.get("TxnId").and_then(ref_id_of))
        .collect();
    for estimate in estimates {
        let Some(record) = realm.get_mut(EntityKind::Estimate, estimate) else {
            continue;
        };
        let Value::Object(map) = &mut record.value else {
            continue;
        };
        let back = json!({"TxnId": invoice_id.to_string(), "TxnType": "Invoice"});
        let mut links: Vec<Value> = map
            .get("LinkedTxn")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if links.contains(&back) && map.get("TxnStatus") == Some(&json!("Closed")) {
            continue;
        }
        if !links.contains(&back) {
            links.push(back);
        }
        map.insert("LinkedTxn".into(), Value::Array(links));
        map.insert("TxnStatus".into(), Value::String("Closed".into()));
        let next = map.get("SyncToken").and_then(ref_id_of).unwrap_or(0) + 1;
        map.insert("SyncToken".into(), Value::String(next.to_string()));
        if let Some(Value::Object(meta)) = map.get_mut("MetaData") {
            meta.insert(
                "LastUpdatedTime".into(),
                Value::String(meta_time(ctx.now, ctx.offset)),
            );
        }
        record.changed_at = ctx.now;
        realm.record_change(EntityKind::Estimate, estimate, ChangeOp::Update, ctx.now);
    }
}

/// Recomputes an invoice's Balance and payment links; a real change bumps its SyncToken.
fn reconcile_invoice(realm: &mut Realm, ctx: &WriteCtx, invoice_id: u64) {
    let (paid, payments) = payments_towards(realm, invoice_id);
    let Some(record) = realm.get_mut(EntityKind::Invoice, invoice_id) else {
        return;
    };
    let Value::Object(map) = &mut record.value else {
        return;
    };
    let balance = money(amount(&Value::Object(map.clone()), "TotalAmt") - paid);
    let mut links: Vec<Value> = map
        .get("LinkedTxn")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("TxnType").and_then(Value::as_str) != Some("Payment"))
        .cloned()
        .collect();
    links.extend(
        payments
            .iter()
            .map(|id| json!({"TxnId": id.to_string(), "TxnType": "Payment"})),
    );
    let links = Value::Array(links);
    if map.get("Balance") == Some(&balance) && map.get("LinkedTxn") == Some(&links) {
        return;
    }
    map.insert("Balance".into(), balance);
    map.insert("LinkedTxn".into(), links);
    if !ctx.seeding {
        let next = map.get("SyncToken").and_then(ref_id_of).unwrap_or(0) + 1;
        map.insert("SyncToken".into(), Value::String(next.to_string()));
        if let Some(Value::Object(meta)) = map.get_mut("MetaData") {
            meta.insert(
                "LastUpdatedTime".into(),
                Value::String(meta_time(ctx.now, ctx.offset)),
            );
        }
        record.changed_at = ctx.now;
        realm.record_change(EntityKind::Invoice, invoice_id, ChangeOp::Update, ctx.now);
    }
}

/// Recomputes every invoice balance/payment link and customer balance in one pass (seed loads).
pub fn settle_balances(realm: &mut Realm) {
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    let mut paid: BTreeMap<u64, (Decimal, Vec<u64>)> = BTreeMap::new();
    for (payment_id, record) in realm.records(EntityKind::Payment) {
        for invoice in linked_invoices(&record.value) {
            let entry = paid.entry(invoice).or_default();
            if !entry.1.contains(payment_id) {
                entry.0 += super::rules::payment::applied_to(&record.value, invoice);
                entry.1.push(*payment_id);
            }
        }
    }
    let invoice_ids: Vec<u64> = realm
        .records(EntityKind::Invoice)
        .map(|(id, _)| *id)
        .collect();
    let mut owed: BTreeMap<u64, Decimal> = BTreeMap::new();
    for id in invoice_ids {
        let (amount_paid, payments) = paid.remove(&id).unwrap_or_default();
        let Some(Value::Object(map)) = realm.get_mut(EntityKind::Invoice, id).map(|r| &mut r.value)
        else {
            continue;
        };
        let balance = amount(&Value::Object(map.clone()), "TotalAmt") - amount_paid;
        let mut links: Vec<Value> = map
            .get("LinkedTxn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|l| l.get("TxnType").and_then(Value::as_str) != Some("Payment"))
            .cloned()
            .collect();
        links.extend(
            payments
                .iter()
                .map(|p| json!({"TxnId": p.to_string(), "TxnType": "Payment"})),
        );
        map.insert("Balance".into(), money(balance));
        map.insert("LinkedTxn".into(), Value::Array(links));
        if let Some(customer) = ref_value(map.get("CustomerRef")).and_then(|c| c.parse().ok()) {
            *owed.entry(customer).or_default() += balance;
        }
    }
    let customer_ids: Vec<u64> = realm
        .records(EntityKind::Customer)
        .map(|(id, _)| *id)
        .collect();
    for id in customer_ids {
        let balance = owed.get(&id).copied().unwrap_or_default();
        if let Some(Value::Object(map)) = realm
            .get_mut(EntityKind::Customer, id)
            .map(|r| &mut r.value)
        {
            map.insert("Balance".into(), money(balance));
            map.insert("BalanceWithJobs".into(), money(balance));
        }
    }
}
