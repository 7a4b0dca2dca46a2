//! Change data capture: `/cdc?entities=A,B&changedSince=…` — full objects changed since then,
//! deleted ones as `status: "Deleted"` stubs, at most 1,000 objects, one QueryResponse per entity.

use super::entity::EntityKind;
use super::fault::Fault;
use super::format::{meta_time, parse_datetime};
use super::store::Realm;
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime, UtcOffset};

pub const MAX_OBJECTS: usize = 1000;
pub const MAX_LOOKBACK_DAYS: i64 = 30;

pub fn execute(
    realm: &Realm,
    entities: &str,
    changed_since: &str,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Result<Value, Fault> {
    if entities.trim().is_empty() {
        return Err(Fault::required("entities"));
    }
    let mut kinds = Vec::new();
    for name in entities.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = EntityKind::from_name(name).ok_or_else(|| {
            Fault::query_validation(format!("invalid entity name for CDC: {name}"))
        })?;
        if !kind.supports_cdc() {
            return Err(Fault::unsupported(format!(
                "Change data capture is not supported for {}.",
                kind.name()
            )));
        }
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if changed_since.trim().is_empty() {
        return Err(Fault::required("changedSince"));
    }
    let since = parse_datetime(changed_since, offset).ok_or_else(|| {
        Fault::invalid_property(
            "changedSince",
            format!("Invalid changedSince value: {changed_since}"),
        )
    })?;
    if since < now - Duration::days(MAX_LOOKBACK_DAYS) {
        return Err(Fault::validation(
            "4000",
            "Invalid changedSince",
            format!("changedSince must be within the last {MAX_LOOKBACK_DAYS} days."),
            Some("changedSince"),
        ));
    }

    // Oldest changes first, so a capped answer can be continued from its last timestamp.
    let mut changes: Vec<(OffsetDateTime, EntityKind, Value)> = Vec::new();
    for &kind in &kinds {
        for (_, record) in realm.records(kind) {
            if record.changed_at >= since {
                changes.push((record.changed_at, kind, record.value.clone()));
            }
        }
        for tomb in realm
            .tombstones
            .iter()
            .filter(|t| t.kind == kind && t.at >= since)
        {
            let stub = json!({
                "domain": "QBO",
                "status": "Deleted",
                "Id": tomb.id.to_string(),
                "MetaData": {"LastUpdatedTime": meta_time(tomb.at, offset)}
            });
            changes.push((tomb.at, kind, stub));
        }
    }
    changes.sort_by_key(|(at, _, _)| *at);
    changes.truncate(MAX_OBJECTS);

    let mut responses = Vec::new();
    for &kind in &kinds {
        let objects: Vec<Value> = changes
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, v)| v.clone())
            .collect();
        if objects.is_empty() {
            continue;
        }
        let mut response = Map::new();
        response.insert("startPosition".into(), Value::from(1));
        response.insert("maxResults".into(), Value::from(objects.len()));
        response.insert(kind.name().into(), Value::Array(objects));
        responses.push(Value::Object(response));
    }
    if responses.is_empty() {
        responses.push(json!({}));
    }
    Ok(json!({"CDCResponse": [{"QueryResponse": responses}]}))
}
