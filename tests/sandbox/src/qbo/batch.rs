//! Batch: up to 30 create/update/delete/void/query items in one request; HTTP 200 with a `Fault`
//! per failing item, each answer carrying the item's `bId`.

use super::entity::EntityKind;
use super::fault::Fault;
use super::rules::WriteCtx;
use super::store::Realm;
use super::{ops, query};
use serde_json::{json, Map, Value};

pub const MAX_ITEMS: usize = 30;

pub fn execute(realm: &mut Realm, ctx: &WriteCtx, body: Value) -> Result<Value, Fault> {
    let items = body
        .get("BatchItemRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| Fault::required("BatchItemRequest"))?;
    if items.len() > MAX_ITEMS {
        return Err(Fault::batch_too_large(MAX_ITEMS));
    }
    let responses: Vec<Value> = items
        .iter()
        .map(|item| run_item(realm, ctx, item))
        .collect();
    Ok(json!({"BatchItemResponse": responses}))
}

fn run_item(realm: &mut Realm, ctx: &WriteCtx, item: &Value) -> Value {
    let b_id = item.get("bId").cloned().unwrap_or(Value::Null);
    let outcome = run_operation(realm, ctx, item);
    let mut response = Map::new();
    match outcome {
        Ok((key, value)) => {
            response.insert(key, value);
        }
        Err(fault) => {
            response.insert("Fault".into(), fault.fault_json());
        }
    }
    response.insert("bId".into(), b_id);
    Value::Object(response)
}

fn run_operation(
    realm: &mut Realm,
    ctx: &WriteCtx,
    item: &Value,
) -> Result<(String, Value), Fault> {
    if let Some(statement) = item.get("Query").and_then(Value::as_str) {
        return query::execute(realm, statement, ctx.offset).map(|r| ("QueryResponse".into(), r));
    }
    let Some(map) = item.as_object() else {
        return Err(Fault::invalid_property(
            "BatchItemRequest",
            "Each batch item must be an object.",
        ));
    };
    let (kind, payload) = map
        .iter()
        .find_map(|(key, value)| {
            EntityKind::ALL
                .into_iter()
                .find(|k| k.name() == key)
                .map(|k| (k, value.clone()))
        })
        .ok_or_else(|| Fault::unsupported("Batch item names no supported entity or Query."))?;
    let options = item
        .get("optionsData")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut item_ctx = *ctx;
    item_ctx.allow_duplicate_doc_number |= options.contains("allowduplicatedocnum");
    let result = match item
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("create")
    {
        "create" => ops::create(realm, &item_ctx, kind, payload),
        "update" if options.contains("void") => ops::void(realm, &item_ctx, kind, payload),
        "update" => ops::update(realm, &item_ctx, kind, payload),
        "delete" => ops::delete(realm, &item_ctx, kind, payload),
        "void" => ops::void(realm, &item_ctx, kind, payload),
        other => Err(Fault::unsupported(format!(
            "Batch operation {other} is not supported."
        ))),
    }?;
    Ok((kind.name().to_string(), result))
}
