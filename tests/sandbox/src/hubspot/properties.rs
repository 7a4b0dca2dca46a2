//! Properties API v3: list/read/create/update/archive property definitions and groups, batch
//! create/read/archive, `hasUniqueValue`.

use super::app::{App, AppState};
use super::auth::authenticate;
use super::crm::{batch_response, object_type, Params};
use super::error::{parse_json, ApiError, ApiResult};
use super::format::iso;
use super::objects::{ObjectType, PropertyType};
use super::store::{GroupDef, OptionDef, Portal, PropertyDef};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/crm/v3/properties", "/crm/properties/2026-03"] {
        router = router
            .route(&format!("{prefix}/{{object_type}}"), get(list).post(create))
            .route(
                &format!("{prefix}/{{object_type}}/groups"),
                get(list_groups).post(create_group),
            )
            .route(
                &format!("{prefix}/{{object_type}}/groups/{{name}}"),
                get(read_group).patch(update_group).delete(archive_group),
            )
            .route(
                &format!("{prefix}/{{object_type}}/batch/{{op}}"),
                post(batch),
            )
            .route(
                &format!("{prefix}/{{object_type}}/{{name}}"),
                get(read).patch(update).delete(archive),
            );
    }
    router
}

fn caller(app: &App, headers: &HeaderMap, t: ObjectType, write: bool) -> Result<u64, ApiError> {
    let caller = authenticate(app, headers)?;
    if write {
        caller.require(&t.schema_write_scopes())?;
    } else {
        let mut any = t.scopes(false);
        any.extend(t.scopes(true));
        any.push(format!("crm.schemas.{}.read", t.name()));
        any.extend(t.schema_write_scopes());
        caller.require(&any)?;
    }
    Ok(caller.portal_id)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub ptype: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<OptionDef>,
    #[serde(default)]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub form_field: bool,
}

const FIELD_TYPES: &[&str] = &[
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
];

fn parse_type(text: &str) -> Result<PropertyType, ApiError> {
    serde_json::from_value(json!(text)).map_err(|_| {
        ApiError::validation(format!(
            "Invalid property type {text}; expected one of bool, date, datetime, enumeration, number, phone_number, string"
        ))
    })
}

/// Validates and stores a new custom property.
pub fn create_property(
    portal: &mut Portal,
    t: ObjectType,
    input: &PropertyCreate,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let ptype = parse_type(&input.ptype)?;
    if !FIELD_TYPES.contains(&input.field_type.as_str()) {
        return Err(ApiError::validation(format!(
            "Invalid fieldType {}",
            input.field_type
        )));
    }
    let valid_name = input
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && input
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(ApiError::validation(format!(
            "Property name {} is invalid: use lower-case letters, digits and underscores, starting with a letter",
            input.name
        )));
    }
    if ptype == PropertyType::Enumeration
        && input.options.is_empty()
        && input.field_type != "booleancheckbox"
    {
        return Err(ApiError::validation("Enumeration properties need options"));
    }
    let schema = portal.schema_mut(t);
    if schema
        .groups
        .get(&input.group_name)
        .is_none_or(|g| g.archived)
    {
        return Err(ApiError::validation(format!(
            "Property group {} does not exist",
            input.group_name
        )));
    }
    if schema.live(&input.name).is_some() {
        return Err(
            ApiError::conflict(format!("Property named '{}' already exists.", input.name))
                .with_sub_category("Properties.PROPERTY_EXISTS"),
        );
    }
    let def = PropertyDef {
        name: input.name.clone(),
        label: input.label.clone(),
        ptype,
        field_type: input.field_type.clone(),
        group_name: input.group_name.clone(),
        description: input.description.clone().unwrap_or_default(),
        options: input.options.clone(),
        has_unique_value: input.has_unique_value,
        hubspot_defined: false,
        read_only_value: false,
        hidden: input.hidden,
        form_field: input.form_field,
        display_order: input.display_order.unwrap_or(-1),
        created_at: now,
        updated_at: now,
        archived: false,
    };
    let json = def.to_json();
    schema.properties.insert(def.name.clone(), def);
    Ok(json)
}

async fn list(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, false)?;
    let archived = Params::from_uri(&uri).flag("archived");
    app.read(portal_id, |portal| {
        let results: Vec<Value> = portal
            .schema(t)
            .properties
            .values()
            .filter(|p| p.archived == archived)
            .map(PropertyDef::to_json)
            .collect();
        Ok(Json(json!({"results": results})).into_response())
    })
}

async fn create(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    let input: PropertyCreate = parse_json(&body)?;
    app.write(portal_id, |portal, now| {
        create_property(portal, t, &input, now)
            .map(|v| (StatusCode::CREATED, Json(v)).into_response())
    })
}

fn missing(t: ObjectType, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unable to find property {name} for object type {}",
        t.type_id()
    ))
    .with_sub_category("PropertyNotFound")
}

async fn read(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, false)?;
    let archived = Params::from_uri(&uri).flag("archived");
    app.read(portal_id, |portal| {
        portal
            .schema(t)
            .properties
            .get(&name)
            .filter(|p| p.archived == archived)
            .map(|p| Json(p.to_json()).into_response())
            .ok_or_else(|| missing(t, &name))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertyUpdate {
    label: Option<String>,
    description: Option<String>,
    group_name: Option<String>,
    options: Option<Vec<OptionDef>>,
    display_order: Option<i64>,
    hidden: Option<bool>,
    form_field: Option<bool>,
    field_type: Option<String>,
}

async fn update(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    let input: PropertyUpdate = parse_json(&body)?;
    app.write(portal_id, |portal, now| {
        let schema = portal.schema_mut(t);
        if let Some(g) = &input.group_name {
            if !schema.groups.contains_key(g) {
                return Err(ApiError::validation(format!(
                    "Property group {g} does not exist"
                )));
            }
        }
        let def = schema
            .properties
            .get_mut(&name)
            .filter(|p| !p.archived)
            .ok_or_else(|| missing(t, &name))?;
        if def.hubspot_defined {
            return Err(ApiError::validation(format!(
                "{name} is a HubSpot-defined property and its definition is read-only"
            )));
        }
        if let Some(v) = &input.label {
            def.label = v.clone();
        }
        if let Some(v) = &input.description {
            def.description = v.clone();
        }
        if let Some(v) = &input.group_name {
            def.group_name = v.clone();
        }
        if let Some(v) = &input.options {
            def.options = v.clone();
        }
        if let Some(v) = input.display_order {
            def.display_order = v;
        }
        if let Some(v) = input.hidden {
            def.hidden = v;
        }
        if let Some(v) = input.form_field {
            def.form_field = v;
        }
        if let Some(v) = &input.field_type {
            def.field_type = v.clone();
        }
        def.updated_at = now;
        Ok(Json(def.to_json()).into_response())
    })
}

async fn archive(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    app.write(portal_id, |portal, _| {
        let def = portal
            .schema_mut(t)
            .properties
            .get_mut(&name)
            .ok_or_else(|| missing(t, &name))?;
        if def.hubspot_defined {
            return Err(ApiError::validation(format!(
                "{name} is a HubSpot-defined property and cannot be archived"
            )));
        }
        def.archived = true;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Deserialize)]
struct NameInput {
    name: String,
}

async fn batch(
    State(app): State<AppState>,
    Path((segment, op)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let write = op != "read";
    let portal_id = caller(&app, &headers, t, write)?;
    let started = iso(app.services.clock.now());
    match op.as_str() {
        "create" => {
            #[derive(Deserialize)]
            struct In {
                inputs: Vec<PropertyCreate>,
            }
            let req: In = parse_json(&body)?;
            app.write(portal_id, |portal, now| {
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for input in &req.inputs {
                    match create_property(portal, t, input, now) {
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
        "read" => {
            #[derive(Deserialize)]
            struct In {
                inputs: Vec<NameInput>,
                #[serde(default)]
                archived: bool,
            }
            let req: In = parse_json(&body)?;
            app.read(portal_id, |portal| {
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for input in &req.inputs {
                    match portal
                        .schema(t)
                        .properties
                        .get(&input.name)
                        .filter(|p| p.archived == req.archived)
                    {
                        Some(p) => results.push(p.to_json()),
                        None => errors.push(missing(t, &input.name).standard_error()),
                    }
                }
                Ok(batch_response(
                    StatusCode::OK,
                    results,
                    errors,
                    &started,
                    &started,
                ))
            })
        }
        "archive" => {
            #[derive(Deserialize)]
            struct In {
                inputs: Vec<NameInput>,
            }
            let req: In = parse_json(&body)?;
            app.write(portal_id, |portal, _| {
                for input in &req.inputs {
                    if let Some(def) = portal.schema_mut(t).properties.get_mut(&input.name) {
                        if !def.hubspot_defined {
                            def.archived = true;
                        }
                    }
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            })
        }
        other => Err(ApiError::not_found(format!(
            "Unknown batch operation {other}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupInput {
    name: Option<String>,
    label: Option<String>,
    display_order: Option<i64>,
}

async fn list_groups(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, false)?;
    app.read(portal_id, |portal| {
        let results: Vec<Value> = portal
            .schema(t)
            .groups
            .values()
            .filter(|g| !g.archived)
            .map(GroupDef::to_json)
            .collect();
        Ok(Json(json!({"results": results})).into_response())
    })
}

async fn create_group(
    State(app): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    let input: GroupInput = parse_json(&body)?;
    let (Some(name), Some(label)) = (input.name.clone(), input.label.clone()) else {
        return Err(ApiError::validation("name and label are required"));
    };
    app.write(portal_id, |portal, _| {
        let schema = portal.schema_mut(t);
        if schema.groups.get(&name).is_some_and(|g| !g.archived) {
            return Err(ApiError::conflict(format!(
                "Property group '{name}' already exists."
            )));
        }
        let group = GroupDef {
            name: name.clone(),
            label,
            display_order: input.display_order.unwrap_or(-1),
            archived: false,
        };
        let json = group.to_json();
        schema.groups.insert(name, group);
        Ok((StatusCode::CREATED, Json(json)).into_response())
    })
}

async fn read_group(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, false)?;
    app.read(portal_id, |portal| {
        portal
            .schema(t)
            .groups
            .get(&name)
            .filter(|g| !g.archived)
            .map(|g| Json(g.to_json()).into_response())
            .ok_or_else(|| ApiError::not_found(format!("Property group {name} not found")))
    })
}

async fn update_group(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    let input: GroupInput = parse_json(&body)?;
    app.write(portal_id, |portal, _| {
        let group = portal
            .schema_mut(t)
            .groups
            .get_mut(&name)
            .filter(|g| !g.archived)
            .ok_or_else(|| ApiError::not_found(format!("Property group {name} not found")))?;
        if let Some(l) = input.label {
            group.label = l;
        }
        if let Some(d) = input.display_order {
            group.display_order = d;
        }
        Ok(Json(group.to_json()).into_response())
    })
}

async fn archive_group(
    State(app): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = object_type(&segment)?;
    let portal_id = caller(&app, &headers, t, true)?;
    app.write(portal_id, |portal, _| {
        let group = portal
            .schema_mut(t)
            .groups
            .get_mut(&name)
            .ok_or_else(|| ApiError::not_found(format!("Property group {name} not found")))?;
        group.archived = true;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}
