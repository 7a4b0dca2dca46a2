//! CRM objects v3: get, list with `after` paging, create, update, archive, and the batch
//! read/create/update/upsert/archive endpoints (100-input limit, 207 multi-status with per-item
//! errors) for every object type, by name or object type id.

use super::app::{App, AppState};
use super::assoc_types::Category;
use super::auth::{authenticate, Caller};
use super::error::{parse_json, ApiError, ApiResult};
use super::format::iso;
use super::objects::ObjectType;
use super::search;
use super::store::{Input, Portal, Record, Source};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/crm/v3/objects", "/crm/objects/2026-03"] {
        router = router
            .route(&format!("{prefix}/{{object_type}}"), get(list).post(create))
            .route(
                &format!("{prefix}/{{object_type}}/search"),
                post(search::search),
            )
            .route(&format!("{prefix}/{{object_type}}/merge"), post(merge))
            .route(
                &format!("{prefix}/{{object_type}}/batch/{{op}}"),
                post(batch),
            )
            .route(
                &format!("{prefix}/{{object_type}}/{{id}}"),
                get(read).patch(update).delete(archive),
            );
    }
    router
}

/// Query parameters, repeated keys kept (`properties=a&properties=b` or `properties=a,b`).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_uri(uri: &Uri) -> Self {
        Self(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        self.one(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

pub fn object_type(segment: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(segment).ok_or_else(|| ApiError::unknown_object_type(segment))
}

/// Authenticates and checks the read or write scope of `t`.
pub fn caller_for(
    app: &App,
    headers: &HeaderMap,
    t: ObjectType,
    write: bool,
) -> Result<Caller, ApiError> {
    let caller = authenticate(app, headers)?;
    caller.require(&t.scopes(write))?;
    Ok(caller)
}

fn not_found(t: ObjectType, id: &str) -> ApiError {
    ApiError::not_found("Object not found.  objectId are usually numeric.")
        .with_context(json!({"id": [id], "objectType": [t.name()]}))
}

/// The record JSON plus requested associations (v3 shape).
pub fn with_associations(
    portal: &Portal,
    t: ObjectType,
    r: &Record,
    props: Option<&[String]>,
    assoc: &[String],
    history: &[String],
) -> Value {
    let mut out = portal.record_json(t, r, props);
    if !history.is_empty() {
        let mut h = Map::new();
        for name in history {
            if let Some(v) = r.properties.get(name) {
                h.insert(
                    name.clone(),
                    json!([{"value": v, "timestamp": iso(r.updated_at), "sourceType": "API", "sourceId": null}]),
                );
            }
        }
        if let Some(map) = out.as_object_mut() {
            map.insert("propertiesWithHistory".into(), Value::Object(h));
        }
    }
    let mut associations = Map::new();
    for name in assoc {
        let Some(to) = ObjectType::parse(name) else {
            continue;
        };
        let results: Vec<Value> = portal
            .associated(t, r.id, to)
            .into_iter()
            .flat_map(|(id, types)| {
                types
                    .into_iter()
                    .map(move |ty| json!({"id": id.to_string(), "type": ty.name}))
            })
            .collect();
        if !results.is_empty() {
            associations.insert(to.name().to_string(), json!({"results": results}));
        }
    }
    if !associations.is_empty() {
        if let Some(map) = out.as_object_mut() {
            map.insert("associations".into(), Value::Object(associations));
        }
    }
    out
}

async fn list(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, false)?;
    let params = Params::from_uri(&uri);
    let policy = app.policy();
    let limit = match params.one("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::validation(format!("limit {l} is not a number")))?,
        None => 10,
    }
    .clamp(1, policy.list_max_limit.max(1));
    let after = match params.one("after") {
        Some(a) if !a.is_empty() => a
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("Invalid after token: {a}")))?,
        _ => 0,
    };
    let archived = params.flag("archived");
    let props = params.list("properties");
    let assoc = params.list("associations");
    let history = params.list("propertiesWithHistory");
    app.read(caller.portal_id, |portal| {
        let mut page: Vec<&Record> = portal
            .table(t)
            .filter(|r| r.archived == archived && r.merged_into.is_none() && r.id >= after)
            .take(limit + 1)
            .collect();
        let next = if page.len() > limit {
            page.pop().map(|r| r.id)
        } else {
            None
        };
        let results: Vec<Value> = page
            .into_iter()
            .map(|r| with_associations(portal, t, r, Some(&props), &assoc, &history))
            .collect();
        let mut body = json!({"results": results});
        if let (Some(next), Some(map)) = (next, body.as_object_mut()) {
            map.insert(
                "paging".into(),
                json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}}),
            );
        }
        Ok(Json(body).into_response())
    })
}

async fn read(
    State(app): State<AppState>,
    Path((segment, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, false)?;
    let params = Params::from_uri(&uri);
    let archived = params.flag("archived");
    let props = params.list("properties");
    let assoc = params.list("associations");
    let history = params.list("propertiesWithHistory");
    let id_property = params.one("idProperty");
    app.read(caller.portal_id, |portal| {
        let found = if archived && id_property.is_none() {
            id.parse::<u64>().ok()
        } else {
            portal.resolve(t, &id, id_property)?
        };
        let record = found
            .and_then(|n| portal.get(t, n))
            .filter(|r| r.archived == archived && r.merged_into.is_none())
            .ok_or_else(|| not_found(t, &id))?;
        Ok(Json(with_associations(
            portal,
            t,
            record,
            Some(&props),
            &assoc,
            &history,
        ))
        .into_response())
    })
}

#[derive(Deserialize)]
struct AssocInput {
    to: IdRef,
    #[serde(default)]
    types: Vec<TypeSpec>,
}

#[derive(Deserialize)]
struct IdRef {
    id: Value,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSpec {
    pub association_category: String,
    pub association_type_id: u32,
}

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    properties: Input,
    #[serde(default)]
    associations: Vec<AssocInput>,
    #[serde(default, rename = "objectWriteTraceId")]
    trace_id: Option<String>,
}

/// (to type, to id, category, type id) — resolved and checked before anything is written.
type PlannedAssoc = (ObjectType, u64, Category, u32);

fn plan_associations(
    portal: &Portal,
    t: ObjectType,
    inputs: &[AssocInput],
) -> Result<Vec<PlannedAssoc>, ApiError> {
    let mut out = Vec::new();
    for a in inputs {
        let to_id = super::format::value_text(&a.to.id);
        let to_id_num = to_id
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("{to_id} is not a valid object id")))?;
        for spec in &a.types {
            let category = Category::parse(&spec.association_category).ok_or_else(|| {
                ApiError::validation(format!(
                    "Unknown associationCategory {}",
                    spec.association_category
                ))
            })?;
            let ty = portal
                .labels
                .iter()
                .find(|x| x.from == t && x.id == spec.association_type_id && x.category == category)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "{} is not a valid association type id for {}",
                        spec.association_type_id,
                        t.name()
                    ))
                    .with_sub_category("InvalidAssociationTypeId")
                })?;
            if portal.live(ty.to, to_id_num).is_none() {
                return Err(ApiError::validation(format!(
                    "One or more associations are invalid: no {} with id {to_id}",
                    ty.to.singular()
                ))
                .with_sub_category("crm.associations.INVALID_OBJECT_IDS"));
            }
            out.push((ty.to, to_id_num, category, spec.association_type_id));
        }
    }
    Ok(out)
}

/// Validates, creates and associates one record; nothing is written on error.
fn create_one(
    portal: &mut Portal,
    t: ObjectType,
    input: &CreateInput,
    now: time::OffsetDateTime,
    source: &Source,
) -> Result<u64, ApiError> {
    let values = portal.validate(t, &input.properties, true, None)?;
    let planned = plan_associations(portal, t, &input.associations)?;
    if t == ObjectType::Invoices {
        let adding: Vec<ObjectType> = planned.iter().map(|p| p.0).collect();
        portal.check_invoice_opening(None, &values, &adding)?;
    }
    let id = portal.insert(t, values, now, source, None);
    for (to, to_id, category, type_id) in planned {
        portal.associate(t, id, to, to_id, category, type_id, now, source)?;
    }
    Ok(id)
}

async fn create(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, true)?;
    let input: CreateInput = parse_json(&body)?;
    let source = app.source();
    app.write(caller.portal_id, |portal, now| {
        let id = create_one(portal, t, &input, now, &source)?;
        let record = portal
            .get(t, id)
            .ok_or_else(|| not_found(t, &id.to_string()))?;
        let names = response_props(t, &input_names(&input.properties));
        Ok((
            StatusCode::CREATED,
            Json(portal.record_json(t, record, Some(&names))),
        )
            .into_response())
    })
}

/// Writes answer with the written properties plus the defaults.
fn input_names(input: &Input) -> Vec<String> {
    input.keys().cloned().collect()
}

fn response_props(t: ObjectType, written: &[String]) -> Vec<String> {
    let mut names: Vec<String> = t
        .default_properties()
        .into_iter()
        .map(str::to_string)
        .collect();
    for w in written {
        if !names.contains(w) {
            names.push(w.clone());
        }
    }
    names
}

#[derive(Deserialize)]
struct UpdateInput {
    #[serde(default)]
    properties: Input,
}

async fn update(
    State(app): State<AppState>,
    Path((segment, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, true)?;
    let params = Params::from_uri(&uri);
    let input: UpdateInput = parse_json(&body)?;
    let source = app.source();
    app.write(caller.portal_id, |portal, now| {
        let target = portal
            .resolve(t, &id, params.one("idProperty"))?
            .filter(|n| portal.live(t, *n).is_some())
            .ok_or_else(|| not_found(t, &id))?;
        let values = portal.validate(t, &input.properties, false, Some(target))?;
        if t == ObjectType::Invoices {
            portal.check_invoice_opening(Some(target), &values, &[])?;
        }
        portal.apply(t, target, values, now, &source);
        let record = portal.get(t, target).ok_or_else(|| not_found(t, &id))?;
        let names = response_props(t, &input_names(&input.properties));
        Ok(Json(portal.record_json(t, record, Some(&names))).into_response())
    })
}

async fn archive(
    State(app): State<AppState>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, true)?;
    let source = app.source();
    app.write(caller.portal_id, |portal, now| {
        if let Ok(n) = id.parse::<u64>() {
            portal.archive(t, n, now, &source);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeInput {
    primary_object_id: Value,
    object_id_to_merge: Value,
}

/// `POST /crm/v3/objects/{type}/merge`: contacts, companies and deals (HubSpot merges no
/// products or line items).
async fn merge(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let caller = caller_for(&app, &headers, t, true)?;
    if !matches!(
        t,
        ObjectType::Contacts | ObjectType::Companies | ObjectType::Deals
    ) {
        return Err(ApiError::validation(format!(
            "Merging is not supported for {}",
            t.name()
        )));
    }
    let input: MergeInput = parse_json(&body)?;
    let id = |v: &Value| {
        let text = super::format::value_text(v);
        text.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("{text} is not a valid object id")))
    };
    let (primary, secondary) = (
        id(&input.primary_object_id)?,
        id(&input.object_id_to_merge)?,
    );
    let new_id = app.policy().merge_creates_new_id;
    let source = app.source();
    app.write(caller.portal_id, |portal, now| {
        let survivor = portal.merge(t, primary, secondary, new_id, now, &source)?;
        let record = portal
            .get(t, survivor)
            .ok_or_else(|| not_found(t, &survivor.to_string()))?;
        Ok(Json(portal.record_json(t, record, None)).into_response())
    })
}

#[derive(Deserialize)]
struct BatchBody {
    inputs: Vec<Value>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default, rename = "propertiesWithHistory")]
    properties_with_history: Vec<String>,
    #[serde(default, rename = "idProperty")]
    id_property: Option<String>,
}

#[derive(Deserialize)]
struct BatchItem {
    id: Value,
    #[serde(default, rename = "idProperty")]
    id_property: Option<String>,
    #[serde(default)]
    properties: Input,
    #[serde(default, rename = "objectWriteTraceId")]
    trace_id: Option<String>,
}

/// Builds a batch answer: 200/201 when clean, 207 with `errors` otherwise.
pub fn batch_response(
    ok_status: StatusCode,
    results: Vec<Value>,
    errors: Vec<Value>,
    started: &str,
    completed: &str,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "requestedAt": started,
        "startedAt": started,
        "completedAt": completed,
        "links": {},
    });
    let status = if errors.is_empty() {
        ok_status
    } else {
        if let Some(map) = body.as_object_mut() {
            map.insert("numErrors".into(), json!(errors.len()));
            map.insert("errors".into(), Value::Array(errors));
        }
        StatusCode::MULTI_STATUS
    };
    (status, Json(body)).into_response()
}

/// True when every input has its own non-empty `objectWriteTraceId` (HubSpot then reports
/// per-item failures with 207 instead of failing the whole batch).
fn traced(items: &[Option<String>]) -> bool {
    let mut seen = BTreeSet::new();
    items.iter().all(|t| {
        t.as_ref()
            .is_some_and(|t| !t.is_empty() && seen.insert(t.clone()))
    })
}

fn item_error(err: &ApiError, trace: Option<&String>, id: Option<&str>) -> Value {
    let mut e = err.standard_error();
    if let Some(map) = e.as_object_mut() {
        let ctx = map.entry("context").or_insert_with(|| json!({}));
        if let Some(ctx) = ctx.as_object_mut() {
            if let Some(t) = trace {
                ctx.insert("objectWriteTraceId".into(), json!([t]));
            }
            if let Some(id) = id {
                ctx.entry("ids").or_insert_with(|| json!([id]));
            }
        }
        if let Some(t) = trace {
            map.insert("objectWriteTraceId".into(), json!(t));
        }
    }
    e
}

async fn batch(
    State(app): State<AppState>,
    Path((segment, op)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let write = op != "read";
    let caller = caller_for(&app, &headers, t, write)?;
    let params = Params::from_uri(&uri);
    let request: BatchBody = parse_json(&body)?;
    let policy = app.policy();
    if request.inputs.len() > policy.batch_limit {
        return Err(ApiError::validation(format!(
            "Batch input size {} exceeds the limit of {} inputs",
            request.inputs.len(),
            policy.batch_limit
        ))
        .with_sub_category("BATCH_SIZE_LIMIT_EXCEEDED")
        .with_context(json!({"limit": [policy.batch_limit.to_string()]})));
    }
    let started = iso(app.services.clock.now());
    let source = app.source();
    match op.as_str() {
        "read" => {
            let archived = params.flag("archived");
            let ids: Vec<String> = request
                .inputs
                .iter()
                .map(|i| super::format::value_text(&i["id"]))
                .collect();
            app.read(caller.portal_id, |portal| {
                let mut results = Vec::new();
                let mut missing = Vec::new();
                for id in &ids {
                    let found = portal
                        .resolve(t, id, request.id_property.as_deref())?
                        .and_then(|n| portal.get(t, n))
                        .filter(|r| r.archived == archived);
                    match found {
                        Some(r) => results.push(with_associations(portal, t, r, Some(&request.properties), &[], &request.properties_with_history)),
                        None => missing.push(id.clone()),
                    }
                }
                let errors = if missing.is_empty() {
                    Vec::new()
                } else {
                    vec![ApiError::not_found(format!(
                        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                        t.upper()
                    ))
                    .with_context(json!({"ids": missing}))
                    .standard_error()]
                };
                let done = iso(app.services.clock.now());
                Ok(batch_response(StatusCode::OK, results, errors, &started, &done))
            })
        }
        "create" => {
            let inputs: Vec<CreateInput> = request
                .inputs
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid_json(&e))?;
            let traces: Vec<Option<String>> = inputs.iter().map(|i| i.trace_id.clone()).collect();
            let partial = traced(&traces);
            app.write(caller.portal_id, |portal, now| {
                if !partial {
                    // All or nothing: dry-run on a copy first.
                    let mut trial = portal.clone();
                    for input in &inputs {
                        create_one(&mut trial, t, input, now, &source)?;
                    }
                }
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for input in &inputs {
                    match create_one(portal, t, input, now, &source) {
                        Ok(id) => {
                            if let Some(r) = portal.get(t, id) {
                                let mut json = portal.record_json(
                                    t,
                                    r,
                                    Some(&response_props(t, &input_names(&input.properties))),
                                );
                                if let (Some(trace), Some(map)) =
                                    (&input.trace_id, json.as_object_mut())
                                {
                                    map.insert("objectWriteTraceId".into(), json!(trace));
                                }
                                results.push(json);
                            }
                        }
                        Err(err) => errors.push(item_error(&err, input.trace_id.as_ref(), None)),
                    }
                }
                let done = iso(app.services.clock.now());
                Ok(batch_response(
                    StatusCode::CREATED,
                    results,
                    errors,
                    &started,
                    &done,
                ))
            })
        }
        "update" | "upsert" => {
            let upsert = op == "upsert";
            let items: Vec<BatchItem> = request
                .inputs
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid_json(&e))?;
            let mut seen = BTreeSet::new();
            let dupes: Vec<String> = items
                .iter()
                .map(|i| super::format::value_text(&i.id))
                .filter(|id| !seen.insert(id.clone()))
                .collect();
            if !dupes.is_empty() {
                return Err(ApiError::validation(format!(
                    "Duplicate IDs found in batch input: {dupes:?}. IDs must be unique"
                ))
                .with_context(json!({"ids": dupes})));
            }
            let traces: Vec<Option<String>> = items.iter().map(|i| i.trace_id.clone()).collect();
            let partial = traced(&traces);
            app.write(caller.portal_id, |portal, now| {
                let run = |portal: &mut Portal, item: &BatchItem| -> Result<(u64, bool), ApiError> {
                    let id = super::format::value_text(&item.id);
                    let id_property = item.id_property.clone().or_else(|| request.id_property.clone());
                    if upsert && id_property.as_deref().is_none_or(|p| p.is_empty() || p == "hs_object_id") {
                        return Err(ApiError::validation("Upsert requires an idProperty with unique values (e.g. email)"));
                    }
                    match portal.resolve(t, &id, id_property.as_deref())?.filter(|n| portal.live(t, *n).is_some()) {
                        Some(target) => {
                            let values = portal.validate(t, &item.properties, false, Some(target))?;
                            if t == ObjectType::Invoices {
                                portal.check_invoice_opening(Some(target), &values, &[])?;
                            }
                            portal.apply(t, target, values, now, &source);
                            Ok((target, false))
                        }
                        None if upsert => {
                            let mut props = item.properties.clone();
                            if let Some(p) = &id_property {
                                props.insert(p.clone(), Value::String(id.clone()));
                            }
                            let values = portal.validate(t, &props, true, None)?;
                            if t == ObjectType::Invoices {
                                portal.check_invoice_opening(None, &values, &[])?;
                            }
                            Ok((portal.insert(t, values, now, &source, None), true))
                        }
                        None => Err(not_found(t, &id)),
                    }
                };
                if !partial {
                    let mut trial = portal.clone();
                    for item in &items {
                        match run(&mut trial, item) {
                            Ok(_) => {}
                            Err(e) if e.category == "OBJECT_NOT_FOUND" => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                let mut results = Vec::new();
                let mut errors = Vec::new();
                let mut missing = Vec::new();
                for item in &items {
                    match run(portal, item) {
                        Ok((id, new)) => {
                            if let Some(r) = portal.get(t, id) {
                                let mut written = input_names(&item.properties);
                                if let Some(p) = item.id_property.as_ref().or(request.id_property.as_ref()) {
                                    written.push(p.clone());
                                }
                                let mut json = portal.record_json(t, r, Some(&response_props(t, &written)));
                                if let Some(map) = json.as_object_mut() {
                                    if upsert {
                                        map.insert("new".into(), json!(new));
                                    }
                                    if let Some(trace) = &item.trace_id {
                                        map.insert("objectWriteTraceId".into(), json!(trace));
                                    }
                                }
                                results.push(json);
                            }
                        }
                        Err(err) if err.category == "OBJECT_NOT_FOUND" && item.trace_id.is_none() => {
                            missing.push(super::format::value_text(&item.id));
                        }
                        Err(err) => errors.push(item_error(&err, item.trace_id.as_ref(), Some(&super::format::value_text(&item.id)))),
                    }
                }
                if !missing.is_empty() {
                    errors.push(
                        ApiError::not_found(format!(
                            "Could not update some {} objects, they may be deleted or not exist. Check that ids are valid.",
                            t.upper()
                        ))
                        .with_context(json!({"ids": missing}))
                        .standard_error(),
                    );
                }
                let done = iso(app.services.clock.now());
                Ok(batch_response(StatusCode::OK, results, errors, &started, &done))
            })
        }
        "archive" => {
            let ids: Vec<String> = request
                .inputs
                .iter()
                .map(|i| super::format::value_text(&i["id"]))
                .collect();
            app.write(caller.portal_id, |portal, now| {
                for id in &ids {
                    if let Ok(n) = id.parse::<u64>() {
                        portal.archive(t, n, now, &source);
                    }
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            })
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unknown batch operation {other}"),
        )),
    }
}

/// Used by the control API and seeds: values by name, unvalidated (seeds may set read-only ones).
pub fn raw_values(input: &Input) -> BTreeMap<String, String> {
    input
        .iter()
        .map(|(k, v)| (k.clone(), super::format::value_text(v)))
        .collect()
}
