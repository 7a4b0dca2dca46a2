//! CRM search: `POST /crm/v3/objects/{type}/search` — filter groups (AND inside a group, OR
//! across groups), the documented operators, one sort, free-text `query`, `limit` ≤ 200, offset
//! `after` paging, `total`, and the 10,000-result paging cap (configurable).

use super::app::AppState;
use super::crm::{caller_for, object_type};
use super::error::{parse_json, ApiError, ApiResult};
use super::format::{epoch_ms, parse_decimal, parse_instant, value_text};
use super::objects::{ObjectType, PropertyType};
use super::store::{Portal, Record};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
use std::cmp::Ordering;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    pub sorts: Vec<Value>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub limit: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FilterGroup {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub high_value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// A comparable value of a property, by its type.
#[derive(Debug, PartialEq)]
enum Key {
    Num(Decimal),
    Time(i64),
    Text(String),
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b),
            (Key::Time(a), Key::Time(b)) => a.partial_cmp(b),
            (Key::Text(a), Key::Text(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

fn key(ptype: Option<PropertyType>, text: &str) -> Option<Key> {
    match ptype {
        Some(PropertyType::Number) => parse_decimal(text).map(Key::Num),
        Some(PropertyType::Datetime | PropertyType::Date) => {
            parse_instant(text).map(|t| Key::Time(epoch_ms(t)))
        }
        _ => Some(Key::Text(text.to_lowercase())),
    }
}

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn wildcard(pattern: &str, text: &str) -> bool {
    crate::common::faults::glob_match(pattern, text)
}

fn contains_token(value: &str, wanted: &str) -> bool {
    let value_l = value.to_lowercase();
    let wanted_l = wanted.to_lowercase();
    if wanted_l.contains('*') {
        return wildcard(&wanted_l, &value_l)
            || tokens(value).iter().any(|t| wildcard(&wanted_l, t));
    }
    value_l == wanted_l || tokens(value).contains(&wanted_l) || {
        let wt = tokens(wanted);
        !wt.is_empty() && wt.iter().all(|w| tokens(value).contains(w))
    }
}

fn ptype_of(portal: &Portal, t: ObjectType, name: &str) -> Option<PropertyType> {
    portal.schema(t).properties.get(name).map(|p| p.ptype)
}

fn matches(portal: &Portal, t: ObjectType, r: &Record, f: &Filter) -> bool {
    let ptype = ptype_of(portal, t, &f.property_name);
    let actual = r.properties.get(&f.property_name).filter(|v| !v.is_empty());
    let wanted = f.value.as_ref().map(value_text).unwrap_or_default();
    let cmp = |want: &str| -> Option<Ordering> {
        let a = key(ptype, actual?)?;
        let w = key(ptype, want)?;
        a.partial_cmp(&w)
    };
    let eq = |want: &str| cmp(want) == Some(Ordering::Equal);
    let in_list = || {
        f.values
            .as_ref()
            .is_some_and(|vs| vs.iter().any(|v| eq(&value_text(v))))
    };
    match f.operator.as_str() {
        "EQ" => eq(&wanted),
        "NEQ" => !eq(&wanted),
        "LT" => cmp(&wanted) == Some(Ordering::Less),
        "LTE" => matches!(cmp(&wanted), Some(Ordering::Less | Ordering::Equal)),
        "GT" => cmp(&wanted) == Some(Ordering::Greater),
        "GTE" => matches!(cmp(&wanted), Some(Ordering::Greater | Ordering::Equal)),
        "BETWEEN" => {
            let high = f.high_value.as_ref().map(value_text).unwrap_or_default();
            matches!(cmp(&wanted), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(&high), Some(Ordering::Less | Ordering::Equal))
        }
        "IN" => in_list(),
        "NOT_IN" => !in_list(),
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        "CONTAINS_TOKEN" => actual.is_some_and(|a| contains_token(a, &wanted)),
        "NOT_CONTAINS_TOKEN" => !actual.is_some_and(|a| contains_token(a, &wanted)),
        _ => false,
    }
}

fn validate(
    portal: &Portal,
    t: ObjectType,
    req: &SearchRequest,
    limits: &super::app::Policy,
) -> Result<(), ApiError> {
    let total: usize = req.filter_groups.iter().map(|g| g.filters.len()).sum();
    if req.filter_groups.len() > limits.max_filter_groups
        || req
            .filter_groups
            .iter()
            .any(|g| g.filters.len() > limits.max_filters_per_group)
        || total > limits.max_filters_total
    {
        return Err(ApiError::validation(format!(
            "Too many filters: at most {} filterGroups with {} filters each and {} filters in total",
            limits.max_filter_groups, limits.max_filters_per_group, limits.max_filters_total
        ))
        .with_sub_category("TOO_MANY_FILTERS"));
    }
    for f in req.filter_groups.iter().flat_map(|g| &g.filters) {
        if !OPERATORS.contains(&f.operator.as_str()) {
            return Err(ApiError::validation(format!(
                "Invalid operator {}; expected one of {}",
                f.operator,
                OPERATORS.join(", ")
            )));
        }
        if !portal.schema(t).properties.contains_key(&f.property_name) {
            return Err(ApiError::validation(format!(
                "There was a problem with the request: property {} does not exist",
                f.property_name
            ))
            .with_context(json!({"propertyName": [f.property_name]})));
        }
        let needs_value = !matches!(
            f.operator.as_str(),
            "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
        );
        if needs_value && f.value.is_none() {
            return Err(ApiError::validation(format!(
                "Filter on {} with operator {} needs a value",
                f.property_name, f.operator
            )));
        }
        if matches!(f.operator.as_str(), "IN" | "NOT_IN")
            && f.values.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(ApiError::validation(format!(
                "Filter on {} with operator {} needs values",
                f.property_name, f.operator
            )));
        }
        if f.operator == "BETWEEN" && f.high_value.is_none() {
            return Err(ApiError::validation(format!(
                "BETWEEN on {} needs highValue",
                f.property_name
            )));
        }
    }
    if req.query.as_ref().is_some_and(|q| q.chars().count() > 3000) {
        return Err(ApiError::validation(
            "query must be at most 3000 characters",
        ));
    }
    Ok(())
}

/// (property, descending) of the first sort; strings may be `"prop"` or `"-prop"`.
fn sort_of(req: &SearchRequest) -> Option<(String, bool)> {
    let s = req.sorts.first()?;
    match s {
        Value::String(text) => match text.strip_prefix('-') {
            Some(name) => Some((name.to_string(), true)),
            None => Some((text.clone(), false)),
        },
        Value::Object(map) => {
            let name = map.get("propertyName")?.as_str()?.to_string();
            let desc = map.get("direction").and_then(Value::as_str) == Some("DESCENDING");
            Some((name, desc))
        }
        _ => None,
    }
}

fn number(v: &Option<Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let text = value_text(v);
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::validation(format!("{name} {text} is not a valid number")))
        }
    }
}

/// Runs a search over one portal; returns the response body.
pub fn run(
    portal: &Portal,
    t: ObjectType,
    req: &SearchRequest,
    policy: &super::app::Policy,
    now: time::OffsetDateTime,
) -> Result<Value, ApiError> {
    validate(portal, t, req, policy)?;
    let limit = number(&req.limit, "limit")?.unwrap_or(10);
    if limit > policy.search_max_limit {
        return Err(ApiError::validation(format!(
            "limit {limit} is too large; the maximum is {}",
            policy.search_max_limit
        )));
    }
    let offset = number(&req.after, "after")?.unwrap_or(0);
    if offset >= policy.search_result_cap {
        return Err(ApiError::validation(format!(
            "Paging past {} results is not supported for a single search. Narrow the search (e.g. by hs_lastmodifieddate) instead.",
            policy.search_result_cap
        ))
        .with_sub_category("SEARCH_RESULT_LIMIT_EXCEEDED"));
    }
    let lag = time::Duration::milliseconds(i64::try_from(policy.search_index_lag_ms).unwrap_or(0));
    let words: Vec<String> = req.query.as_deref().map(tokens).unwrap_or_default();
    let mut hits: Vec<&Record> = portal
        .table(t)
        .filter(|r| !r.archived && r.updated_at + lag <= now)
        .filter(|r| {
            req.filter_groups.is_empty()
                || req
                    .filter_groups
                    .iter()
                    .any(|g| g.filters.iter().all(|f| matches(portal, t, r, f)))
        })
        .filter(|r| {
            if words.is_empty() {
                return true;
            }
            let text: Vec<String> = t
                .text_search_properties()
                .iter()
                .filter_map(|p| r.properties.get(*p))
                .flat_map(|v| tokens(v))
                .collect();
            words
                .iter()
                .all(|w| text.iter().any(|t| t.starts_with(w.as_str())))
        })
        .collect();
    if let Some((name, desc)) = sort_of(req) {
        let ptype = ptype_of(portal, t, &name);
        hits.sort_by(|a, b| {
            let ka = a.properties.get(&name).and_then(|v| key(ptype, v));
            let kb = b.properties.get(&name).and_then(|v| key(ptype, v));
            let ord = match (&ka, &kb) {
                (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let ord = if desc { ord.reverse() } else { ord };
            ord.then(a.id.cmp(&b.id))
        });
    }
    let total = hits.len();
    let props = if req.properties.is_empty() {
        None
    } else {
        Some(req.properties.as_slice())
    };
    let results: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| portal.record_json(t, r, props))
        .collect();
    let mut body = json!({"total": total, "results": results});
    let next = offset + limit;
    if next < total {
        if let Some(map) = body.as_object_mut() {
            map.insert(
                "paging".into(),
                json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}}),
            );
        }
    }
    Ok(body)
}

pub async fn search(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, false)?;
    let req: SearchRequest = parse_json(&body)?;
    let policy = app.policy();
    let now = app.services.clock.now();
    app.read(caller.portal_id, |portal| {
        run(portal, t, &req, &policy, now).map(|b| Json(b).into_response())
    })
}
