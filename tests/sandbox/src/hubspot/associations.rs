//! Associations v4: default and labelled associations between records (both directions kept in
//! step), per-record reads with paging, the batch endpoints and association labels.

use super::app::{App, AppState};
use super::assoc_types::{AssocType, Category};
use super::auth::authenticate;
use super::crm::{batch_response, object_type, Params, TypeSpec};
use super::error::{parse_json, ApiError, ApiResult};
use super::format::{iso, value_text};
use super::objects::ObjectType;
use super::store::Portal;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
            put(put_default),
        )
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}",
            put(put_labelled).delete(delete_all),
        )
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}",
            get(list_for_record),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
            post(batch_default),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            post(batch_read),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/archive",
            post(batch_archive),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/labels/archive",
            post(batch_labels_archive),
        );
    for prefix in ["/crm/v4/associations", "/crm/associations/v4"] {
        router = router
            .route(
                &format!("{prefix}/{{from_type}}/{{to_type}}/labels"),
                get(list_labels).post(create_label),
            )
            .route(
                &format!("{prefix}/{{from_type}}/{{to_type}}/labels/{{type_id}}"),
                delete(delete_label),
            );
    }
    router
}

fn id_value(app: &App, id: u64) -> Value {
    if app.policy().association_ids_as_strings {
        json!(id.to_string())
    } else {
        json!(id)
    }
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::validation(format!("{text} is not a valid object id")))
}

/// Authenticates for an association call between two types.
fn caller(
    app: &App,
    headers: &HeaderMap,
    from: ObjectType,
    to: ObjectType,
    write: bool,
) -> Result<u64, ApiError> {
    let caller = authenticate(app, headers)?;
    caller.require(&from.scopes(write))?;
    caller.require(&to.scopes(false))?;
    Ok(caller.portal_id)
}

fn types_json(types: &[&AssocType]) -> Vec<Value> {
    types
        .iter()
        .map(|t| json!({"category": t.category.as_str(), "typeId": t.id, "label": t.label}))
        .collect()
}

fn labels_between(
    app: &App,
    portal: &Portal,
    from: ObjectType,
    from_id: u64,
    to: ObjectType,
    to_id: u64,
) -> Value {
    let labels: Vec<String> = portal
        .associated(from, from_id, to)
        .into_iter()
        .filter(|(id, _)| *id == to_id)
        .flat_map(|(_, types)| {
            types
                .into_iter()
                .filter_map(|t| t.label.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let (f, t) = if app.policy().association_ids_as_strings {
        (json!(from_id.to_string()), json!(to_id.to_string()))
    } else {
        (json!(from_id), json!(to_id))
    };
    json!({"fromObjectTypeId": from.type_id(), "fromObjectId": f, "toObjectTypeId": to.type_id(),
           "toObjectId": t, "labels": labels})
}

async fn put_default(
    State(app): State<AppState>,
    Path((from_s, from_id, to_s, to_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let (from_id, to_id) = (parse_id(&from_id)?, parse_id(&to_id)?);
    let started = iso(app.services.clock.now());
    let source = app.source();
    app.write(portal_id, |portal, now| {
        let spec = portal
            .default_type(from, to)
            .cloned()
            .ok_or_else(|| ApiError::validation(format!("{} and {} cannot be associated", from.name(), to.name())))?;
        portal.associate(from, from_id, to, to_id, spec.category, spec.id, now, &source)?;
        let results = vec![
            json!({"from": {"id": from_id.to_string()}, "to": {"id": to_id.to_string()},
                   "associationSpec": {"associationCategory": spec.category.as_str(), "associationTypeId": spec.id}}),
            json!({"from": {"id": to_id.to_string()}, "to": {"id": from_id.to_string()},
                   "associationSpec": {"associationCategory": spec.category.as_str(), "associationTypeId": spec.inverse}}),
        ];
        Ok(batch_response(StatusCode::OK, results, Vec::new(), &started, &iso(now)))
    })
}

fn parse_specs(specs: &[TypeSpec]) -> Result<Vec<(Category, u32)>, ApiError> {
    specs
        .iter()
        .map(|s| {
            Category::parse(&s.association_category)
                .map(|c| (c, s.association_type_id))
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "Unknown associationCategory {}",
                        s.association_category
                    ))
                })
        })
        .collect()
}

async fn put_labelled(
    State(app): State<AppState>,
    Path((from_s, from_id, to_s, to_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let (from_id, to_id) = (parse_id(&from_id)?, parse_id(&to_id)?);
    let specs: Vec<TypeSpec> = parse_json(&body)?;
    let specs = parse_specs(&specs)?;
    let source = app.source();
    app.write(portal_id, |portal, now| {
        for (cat, id) in &specs {
            portal.associate(from, from_id, to, to_id, *cat, *id, now, &source)?;
        }
        Ok((
            StatusCode::CREATED,
            Json(labels_between(&app, portal, from, from_id, to, to_id)),
        )
            .into_response())
    })
}

async fn delete_all(
    State(app): State<AppState>,
    Path((from_s, from_id, to_s, to_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let (from_id, to_id) = (parse_id(&from_id)?, parse_id(&to_id)?);
    let source = app.source();
    app.write(portal_id, |portal, now| {
        portal.dissociate_all(from, from_id, to, to_id, now, &source);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// One page of a record's associations: (results, next cursor).
fn page(
    app: &App,
    portal: &Portal,
    from: ObjectType,
    from_id: u64,
    to: ObjectType,
    after: u64,
    limit: usize,
) -> (Vec<Value>, Option<u64>) {
    let mut all: Vec<(u64, Vec<&AssocType>)> = portal
        .associated(from, from_id, to)
        .into_iter()
        .filter(|(id, _)| *id >= after)
        .take(limit + 1)
        .collect();
    let next = if all.len() > limit {
        all.pop().map(|(id, _)| id)
    } else {
        None
    };
    let results = all
        .into_iter()
        .map(|(id, types)| json!({"toObjectId": id_value(app, id), "associationTypes": types_json(&types)}))
        .collect();
    (results, next)
}

async fn list_for_record(
    State(app): State<AppState>,
    Path((from_s, from_id, to_s)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, false)?;
    let from_id = parse_id(&from_id)?;
    let params = Params::from_uri(&uri);
    let limit = params
        .one("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(500)
        .clamp(1, 500);
    let after = params
        .one("after")
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    app.read(portal_id, |portal| {
        let (results, next) = page(&app, portal, from, from_id, to, after, limit);
        let mut body = json!({"results": results});
        if let (Some(n), Some(map)) = (next, body.as_object_mut()) {
            map.insert(
                "paging".into(),
                json!({"next": {"after": n.to_string(), "link": format!("?after={n}")}}),
            );
        }
        Ok(Json(body).into_response())
    })
}

#[derive(Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Value,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct Pair {
    from: IdOnly,
    to: IdOnly,
    #[serde(default)]
    types: Vec<TypeSpec>,
}

#[derive(Deserialize)]
struct MultiArchive {
    from: IdOnly,
    to: Vec<IdOnly>,
}

fn check_size<T>(app: &App, inputs: &[T]) -> Result<(), ApiError> {
    let limit = app.policy().association_batch_limit;
    if inputs.len() > limit {
        return Err(ApiError::validation(format!(
            "Batch input size {} exceeds the limit of {limit} inputs",
            inputs.len()
        )));
    }
    Ok(())
}

async fn batch_default(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let req: Inputs<Pair> = parse_json(&body)?;
    check_size(&app, &req.inputs)?;
    let started = iso(app.services.clock.now());
    let source = app.source();
    app.write(portal_id, |portal, now| {
        let spec = portal
            .default_type(from, to)
            .cloned()
            .ok_or_else(|| ApiError::validation(format!("{} and {} cannot be associated", from.name(), to.name())))?;
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for p in &req.inputs {
            let (f, t) = (value_text(&p.from.id), value_text(&p.to.id));
            match (parse_id(&f), parse_id(&t)) {
                (Ok(f_id), Ok(t_id)) => match portal.associate(from, f_id, to, t_id, spec.category, spec.id, now, &source) {
                    Ok(()) => results.push(json!({"from": {"id": f}, "to": {"id": t},
                        "associationSpec": {"associationCategory": spec.category.as_str(), "associationTypeId": spec.id}})),
                    Err(e) => errors.push(e.standard_error()),
                },
                (Err(e), _) | (_, Err(e)) => errors.push(e.standard_error()),
            }
        }
        Ok(batch_response(StatusCode::OK, results, errors, &started, &iso(now)))
    })
}

async fn batch_create(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let req: Inputs<Pair> = parse_json(&body)?;
    check_size(&app, &req.inputs)?;
    let started = iso(app.services.clock.now());
    let source = app.source();
    app.write(portal_id, |portal, now| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for p in &req.inputs {
            let outcome = (|| -> Result<Value, ApiError> {
                let f_id = parse_id(&value_text(&p.from.id))?;
                let t_id = parse_id(&value_text(&p.to.id))?;
                for (cat, id) in parse_specs(&p.types)? {
                    portal.associate(from, f_id, to, t_id, cat, id, now, &source)?;
                }
                Ok(labels_between(&app, portal, from, f_id, to, t_id))
            })();
            match outcome {
                Ok(v) => results.push(v),
                Err(e) => errors.push(e.standard_error()),
            }
        }
        Ok(batch_response(
            StatusCode::CREATED,
            results,
            errors,
            &started,
            &iso(now),
        ))
    })
}

async fn batch_read(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, false)?;
    let req: Inputs<IdOnly> = parse_json(&body)?;
    check_size(&app, &req.inputs)?;
    let started = iso(app.services.clock.now());
    app.read(portal_id, |portal| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for input in &req.inputs {
            let id_text = value_text(&input.id);
            let Ok(id) = parse_id(&id_text) else {
                errors.push(
                    ApiError::validation(format!("{id_text} is not a valid object id"))
                        .standard_error(),
                );
                continue;
            };
            if portal.live(from, id).is_none() {
                errors.push(
                    ApiError::not_found(format!(
                        "No {} is associated with {} {id}",
                        to.name(),
                        from.singular()
                    ))
                    .with_sub_category("crm.associations.NO_ASSOCIATIONS_FOUND")
                    .with_context(json!({"fromObjectId": [id_text]}))
                    .standard_error(),
                );
                continue;
            }
            let after = input
                .after
                .as_deref()
                .and_then(|a| a.parse::<u64>().ok())
                .unwrap_or(0);
            let (to_list, next) = page(&app, portal, from, id, to, after, 500);
            if to_list.is_empty() {
                errors.push(
                    ApiError::not_found(format!(
                        "No {} is associated with {} {id}",
                        to.name(),
                        from.singular()
                    ))
                    .with_sub_category("crm.associations.NO_ASSOCIATIONS_FOUND")
                    .with_context(json!({"fromObjectId": [id_text]}))
                    .standard_error(),
                );
                continue;
            }
            let mut item = json!({"from": {"id": id_text}, "to": to_list});
            if let (Some(n), Some(map)) = (next, item.as_object_mut()) {
                map.insert("paging".into(), json!({"next": {"after": n.to_string()}}));
            }
            results.push(item);
        }
        Ok(batch_response(
            StatusCode::OK,
            results,
            errors,
            &started,
            &iso(app.services.clock.now()),
        ))
    })
}

async fn batch_archive(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let req: Inputs<MultiArchive> = parse_json(&body)?;
    check_size(&app, &req.inputs)?;
    let source = app.source();
    app.write(portal_id, |portal, now| {
        for input in &req.inputs {
            let Ok(f_id) = parse_id(&value_text(&input.from.id)) else {
                continue;
            };
            for t in &input.to {
                if let Ok(t_id) = parse_id(&value_text(&t.id)) {
                    portal.dissociate_all(from, f_id, to, t_id, now, &source);
                }
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn batch_labels_archive(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let req: Inputs<Pair> = parse_json(&body)?;
    check_size(&app, &req.inputs)?;
    let source = app.source();
    app.write(portal_id, |portal, now| {
        for p in &req.inputs {
            let (Ok(f_id), Ok(t_id)) = (
                parse_id(&value_text(&p.from.id)),
                parse_id(&value_text(&p.to.id)),
            ) else {
                continue;
            };
            let ids: Vec<u32> = p.types.iter().map(|t| t.association_type_id).collect();
            portal.dissociate_labels(from, f_id, to, t_id, &ids, now, &source);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn list_labels(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, false)?;
    app.read(portal_id, |portal| {
        let results: Vec<Value> = portal
            .labels
            .iter()
            .filter(|l| l.from == from && l.to == to)
            .map(|l| json!({"category": l.category.as_str(), "typeId": l.id, "label": l.label}))
            .collect();
        Ok(Json(json!({"results": results})).into_response())
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelCreate {
    label: String,
    #[serde(default)]
    inverse_label: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

async fn create_label(
    State(app): State<AppState>,
    Path((from_s, to_s)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    let req: LabelCreate = parse_json(&body)?;
    app.write(portal_id, |portal, _| {
        if portal.default_type(from, to).is_none() {
            return Err(ApiError::validation(format!(
                "{} and {} cannot be associated",
                from.name(),
                to.name()
            )));
        }
        let id = portal.next_label_id;
        let inverse = id + 1;
        portal.next_label_id += 2;
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| req.label.to_lowercase().replace(' ', "_"));
        portal.labels.push(AssocType {
            from,
            to,
            category: Category::UserDefined,
            id,
            inverse,
            label: Some(req.label.clone()),
            default: false,
            name: name.clone(),
        });
        portal.labels.push(AssocType {
            from: to,
            to: from,
            category: Category::UserDefined,
            id: inverse,
            inverse: id,
            label: Some(
                req.inverse_label
                    .clone()
                    .unwrap_or_else(|| req.label.clone()),
            ),
            default: false,
            name: format!("{name}_inverse"),
        });
        let mut results =
            vec![json!({"category": "USER_DEFINED", "typeId": id, "label": req.label})];
        if let Some(inv) = &req.inverse_label {
            results.push(json!({"category": "USER_DEFINED", "typeId": inverse, "label": inv}));
        }
        Ok(Json(json!({"results": results})).into_response())
    })
}

async fn delete_label(
    State(app): State<AppState>,
    Path((from_s, to_s, type_id)): Path<(String, String, u32)>,
    headers: HeaderMap,
) -> ApiResult {
    let (from, to) = (object_type(&from_s)?, object_type(&to_s)?);
    let portal_id = caller(&app, &headers, from, to, true)?;
    app.write(portal_id, |portal, _| {
        let Some(label) = portal
            .labels
            .iter()
            .find(|l| {
                l.from == from
                    && l.to == to
                    && l.id == type_id
                    && l.category == Category::UserDefined
            })
            .cloned()
        else {
            return Err(ApiError::not_found(format!(
                "No user-defined label {type_id}"
            )));
        };
        portal
            .labels
            .retain(|l| l.id != label.id && l.id != label.inverse);
        for edges in portal.associations.values_mut() {
            for set in edges.values_mut() {
                set.retain(|(c, id)| {
                    !(*c == Category::UserDefined && (*id == label.id || *id == label.inverse))
                });
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}
