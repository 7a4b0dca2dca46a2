//! In-memory state of the HubSpot simulator: portals (accounts) with their CRM records, property
//! definitions, association edges and user-defined labels, and the change feed that drives
//! webhooks.

use super::assoc_types::{builtin_types, AssocType, Category};
use super::error::ApiError;
use super::format::{epoch_ms, format_date, iso, parse_decimal, parse_instant, value_text};
use super::objects::{builtin_properties, ObjectType, PropertyType};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionDef {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default, rename = "displayOrder")]
    pub display_order: i64,
    #[serde(default)]
    pub description: String,
}

/// A property definition (built-in or custom).
#[derive(Clone, Debug)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    pub ptype: PropertyType,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<OptionDef>,
    pub has_unique_value: bool,
    pub hubspot_defined: bool,
    pub read_only_value: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub display_order: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub archived: bool,
}

impl PropertyDef {
    pub fn to_json(&self) -> Value {
        let ptype = serde_json::to_value(self.ptype).unwrap_or(Value::Null);
        json!({
            "name": self.name,
            "label": self.label,
            "type": ptype,
            "fieldType": self.field_type,
            "groupName": self.group_name,
            "description": self.description,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "formField": self.form_field,
            "archived": self.archived,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
        })
    }
}

#[derive(Clone, Debug)]
pub struct GroupDef {
    pub name: String,
    pub label: String,
    pub display_order: i64,
    pub archived: bool,
}

impl GroupDef {
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": self.archived})
    }
}

/// Property definitions and groups of one object type in one portal.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub properties: BTreeMap<String, PropertyDef>,
    pub groups: BTreeMap<String, GroupDef>,
}

impl Schema {
    pub fn builtin(t: ObjectType, now: OffsetDateTime) -> Self {
        let (group, props) = builtin_properties(t);
        let mut schema = Schema::default();
        schema.groups.insert(
            group.to_string(),
            GroupDef {
                name: group.into(),
                label: format!("{} information", t.singular().replace('_', " ")),
                display_order: -1,
                archived: false,
            },
        );
        for (i, (name, ptype, read_only, unique)) in props.into_iter().enumerate() {
            schema.properties.insert(
                name.to_string(),
                PropertyDef {
                    name: name.into(),
                    label: name.replace('_', " "),
                    ptype,
                    field_type: ptype.default_field_type().into(),
                    group_name: group.into(),
                    description: String::new(),
                    options: Vec::new(),
                    has_unique_value: unique,
                    hubspot_defined: true,
                    read_only_value: read_only,
                    hidden: false,
                    form_field: false,
                    display_order: i64::try_from(i).unwrap_or(0),
                    created_at: now,
                    updated_at: now,
                    archived: false,
                },
            );
        }
        schema
    }

    pub fn live(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.get(name).filter(|p| !p.archived)
    }
}

/// One CRM record.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub archived: bool,
    pub archived_at: Option<OffsetDateTime>,
    /// Merged into this record: it is no longer listed or searched, and its id reads as the
    /// record it was merged into.
    pub merged_into: Option<u64>,
}

/// Who made a change (webhook `changeSource`/`sourceId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    pub change_source: String,
    pub source_id: Option<String>,
}

impl Source {
    pub fn integration(app_id: u64) -> Self {
        Self {
            change_source: "INTEGRATION".into(),
            source_id: Some(app_id.to_string()),
        }
    }

    pub fn crm_ui(user_id: u64) -> Self {
        Self {
            change_source: "CRM_UI".into(),
            source_id: Some(format!("userId:{user_id}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    Creation,
    Deletion,
    PropertyChange {
        name: String,
        value: String,
    },
    /// Two records merged into `object_id` (a new record, or the primary).
    Merge {
        primary: u64,
        merged: Vec<u64>,
    },
    AssociationChange {
        to_type: ObjectType,
        to_id: u64,
        type_id: u32,
        removed: bool,
        primary: bool,
    },
}

/// One change, as webhooks see it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub portal_id: u64,
    pub object_type: ObjectType,
    pub object_id: u64,
    pub kind: ChangeKind,
    pub at: OffsetDateTime,
    pub source: Source,
}

/// Edges from one record to records of one type: to-id → set of (category, type id).
pub type Edges = BTreeMap<u64, BTreeSet<(Category, u32)>>;

/// One HubSpot account.
#[derive(Clone, Debug)]
pub struct Portal {
    pub id: u64,
    pub domain: String,
    pub user: String,
    pub user_id: u64,
    pub records: BTreeMap<ObjectType, BTreeMap<u64, Record>>,
    pub schemas: BTreeMap<ObjectType, Schema>,
    pub associations: BTreeMap<(ObjectType, u64, ObjectType), Edges>,
    pub labels: Vec<AssocType>,
    pub next_id: u64,
    pub next_label_id: u32,
    pub changes: Vec<Change>,
    /// A seed is loading: derived invoice amounts are settled once at its end.
    pub seeding: bool,
    /// Live records by the value of each unique property (emails in lower case), so that
    /// lookups and uniqueness checks do not read every record.
    unique: HashMap<(ObjectType, String), HashMap<String, u64>>,
}

/// Property values as written: JSON values that become strings.
pub type Input = Map<String, Value>;

impl Portal {
    pub fn new(id: u64, now: OffsetDateTime) -> Self {
        Self {
            id,
            domain: format!("portal-{id}.hubspot.com"),
            user: format!("admin@portal-{id}.example.com"),
            user_id: 1_000_000 + id % 1_000_000,
            records: ObjectType::ALL
                .iter()
                .map(|t| (*t, BTreeMap::new()))
                .collect(),
            schemas: ObjectType::ALL
                .iter()
                .map(|t| (*t, Schema::builtin(*t, now)))
                .collect(),
            associations: BTreeMap::new(),
            labels: builtin_types(),
            next_id: 10_001,
            next_label_id: 1_000,
            changes: Vec::new(),
            seeding: false,
            unique: HashMap::new(),
        }
    }

    pub fn schema(&self, t: ObjectType) -> &Schema {
        static EMPTY: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        self.schemas
            .get(&t)
            .unwrap_or_else(|| EMPTY.get_or_init(Schema::default))
    }

    pub fn schema_mut(&mut self, t: ObjectType) -> &mut Schema {
        self.schemas.entry(t).or_default()
    }

    pub fn table(&self, t: ObjectType) -> impl Iterator<Item = &Record> {
        self.records.get(&t).into_iter().flat_map(|m| m.values())
    }

    pub fn get(&self, t: ObjectType, id: u64) -> Option<&Record> {
        self.records.get(&t).and_then(|m| m.get(&id))
    }

    /// A live (not archived) record.
    pub fn live(&self, t: ObjectType, id: u64) -> Option<&Record> {
        self.get(t, id).filter(|r| !r.archived)
    }

    pub(crate) fn get_mut(&mut self, t: ObjectType, id: u64) -> Option<&mut Record> {
        self.records.get_mut(&t).and_then(|m| m.get_mut(&id))
    }

    /// Indexes a live record's unique values.
    fn index_unique(&mut self, t: ObjectType, id: u64) {
        let Some(record) = self.live(t, id) else {
            return;
        };
        let entries: Vec<(String, String)> = record
            .properties
            .iter()
            .filter(|(name, value)| !value.is_empty() && self.is_unique(t, name))
            .map(|(name, value)| (name.clone(), unique_value(name, value)))
            .collect();
        for (name, value) in entries {
            self.unique.entry((t, name)).or_default().insert(value, id);
        }
    }

    /// Forgets a record's unique values (those still naming it).
    fn unindex_unique(&mut self, t: ObjectType, id: u64) {
        let Some(record) = self.get(t, id) else {
            return;
        };
        let entries: Vec<(String, String)> = record
            .properties
            .iter()
            .map(|(name, value)| (name.clone(), unique_value(name, value)))
            .collect();
        for (name, value) in entries {
            if let Some(values) = self.unique.get_mut(&(t, name)) {
                if values.get(&value) == Some(&id) {
                    values.remove(&value);
                }
            }
        }
    }

    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Properties whose values are unique per record: custom `hasUniqueValue` ones, and contact
    /// `email`.
    pub fn is_unique(&self, t: ObjectType, name: &str) -> bool {
        (t == ObjectType::Contacts && name == "email")
            || self
                .schema(t)
                .live(name)
                .is_some_and(|p| p.has_unique_value)
    }

    /// The live record whose `prop` equals `value` (case-insensitive for email).
    pub fn find_by(&self, t: ObjectType, prop: &str, value: &str) -> Option<u64> {
        if self.is_unique(t, prop) {
            return self
                .unique
                .get(&(t, prop.to_owned()))
                .and_then(|values| values.get(&unique_value(prop, value)))
                .copied()
                .filter(|id| self.live(t, *id).is_some());
        }
        self.table(t)
            .filter(|r| !r.archived)
            .find(|r| {
                r.properties.get(prop).is_some_and(|v| {
                    if prop == "email" {
                        v.eq_ignore_ascii_case(value)
                    } else {
                        v == value
                    }
                })
            })
            .map(|r| r.id)
    }

    /// Resolves a path/batch id: the record id, or a unique-property value with `idProperty`.
    /// `Ok(None)` means "no such record".
    pub fn resolve(
        &self,
        t: ObjectType,
        id: &str,
        id_property: Option<&str>,
    ) -> Result<Option<u64>, ApiError> {
        match id_property {
            None | Some("") | Some("hs_object_id") => {
                Ok(id.trim().parse::<u64>().ok().map(|n| self.survivor(t, n)))
            }
            Some(prop) => {
                if !self.is_unique(t, prop) {
                    return Err(ApiError::validation(format!(
                        "Property {prop} is not a unique identifier property for object type {}",
                        t.type_id()
                    ))
                    .with_sub_category("ObjectIdValidationError.INVALID_ID_PROPERTY"));
                }
                Ok(self.find_by(t, prop, id))
            }
        }
    }

    /// The record an id reads as: itself, or the record it was merged into.
    pub fn survivor(&self, t: ObjectType, mut id: u64) -> u64 {
        for _ in 0..16 {
            match self.get(t, id).and_then(|r| r.merged_into) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    /// Merges `secondary` into `primary`. With `new_id` the result is a new record (HubSpot's
    /// behaviour for contacts since 2024), else the primary keeps its id. The primary's values
    /// win, the secondary fills what the primary lacks, the secondary's email becomes an
    /// additional email, the associations of both move over, and `hs_merged_object_ids` lists
    /// every id merged in.
    pub fn merge(
        &mut self,
        t: ObjectType,
        primary: u64,
        secondary: u64,
        new_id: bool,
        now: OffsetDateTime,
        source: &Source,
    ) -> Result<u64, ApiError> {
        let (Some(first), Some(second)) = (self.live(t, primary), self.live(t, secondary)) else {
            return Err(ApiError::validation(format!(
                "Could not merge {} {primary} with {secondary}: both must exist and not be deleted",
                t.singular()
            )));
        };
        if primary == secondary {
            return Err(ApiError::validation(
                "A record cannot be merged with itself",
            ));
        }
        let (first, second) = (first.clone(), second.clone());
        let mut values = second.properties.clone();
        for (name, value) in &first.properties {
            values.insert(name.clone(), value.clone());
        }
        let mut merged_ids: Vec<String> = Vec::new();
        for record in [&first, &second] {
            if let Some(list) = record.properties.get("hs_merged_object_ids") {
                merged_ids.extend(list.split(';').filter(|s| !s.is_empty()).map(str::to_owned));
            }
        }
        if new_id {
            merged_ids.push(primary.to_string());
        }
        merged_ids.push(secondary.to_string());
        values.insert("hs_merged_object_ids".into(), merged_ids.join(";"));
        if t == ObjectType::Contacts {
            if let (Some(kept), Some(other)) = (
                first.properties.get("email"),
                second.properties.get("email"),
            ) {
                if !kept.eq_ignore_ascii_case(other) {
                    let mut extra: Vec<String> = first
                        .properties
                        .get("hs_additional_emails")
                        .map(|l| l.split(';').map(str::to_owned).collect())
                        .unwrap_or_default();
                    extra.push(other.clone());
                    values.insert("hs_additional_emails".into(), extra.join(";"));
                }
            }
        }
        let created = first.created_at.min(second.created_at);
        values.insert(t.create_date_property().into(), iso(created));
        let survivor = if new_id {
            self.insert(t, values, now, source, None)
        } else {
            self.apply(t, primary, values, now, source);
            primary
        };
        let gone: Vec<u64> = if new_id {
            vec![primary, secondary]
        } else {
            vec![secondary]
        };
        for id in &gone {
            self.unindex_unique(t, *id);
            if let Some(record) = self.get_mut(t, *id) {
                record.merged_into = Some(survivor);
                record.archived = true;
                record.archived_at = Some(now);
                record.updated_at = now;
            }
            self.move_associations(t, *id, survivor);
        }
        self.changes.push(Change {
            portal_id: self.id,
            object_type: t,
            object_id: survivor,
            kind: ChangeKind::Merge {
                primary,
                merged: vec![primary, secondary],
            },
            at: now,
            source: source.clone(),
        });
        Ok(survivor)
    }

    /// Moves every association of `from` to `to` (both directions).
    fn move_associations(&mut self, t: ObjectType, from: u64, to: u64) {
        let keys: Vec<(ObjectType, u64, ObjectType)> = self
            .associations
            .keys()
            .filter(|(a, id, _)| *a == t && *id == from)
            .copied()
            .collect();
        for key in keys {
            let Some(edges) = self.associations.remove(&key) else {
                continue;
            };
            let target = self.associations.entry((t, to, key.2)).or_default();
            for (other, types) in &edges {
                target
                    .entry(*other)
                    .or_default()
                    .extend(types.iter().copied());
            }
            for other in edges.keys() {
                if let Some(back) = self.associations.get_mut(&(key.2, *other, t)) {
                    if let Some(types) = back.remove(&from) {
                        back.entry(to).or_default().extend(types);
                    }
                }
            }
        }
    }

    /// Validates and normalises written property values. `creating` also enforces required ones.
    pub fn validate(
        &self,
        t: ObjectType,
        input: &Input,
        creating: bool,
        exclude: Option<u64>,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let schema = self.schema(t);
        let mut problems = Vec::new();
        let mut out = BTreeMap::new();
        for (name, raw) in input {
            let text = value_text(raw);
            let Some(def) = schema.live(name) else {
                problems.push(json!({"isValid": false, "message": format!("Property \"{name}\" does not exist"),
                    "error": "PROPERTY_DOESNT_EXIST", "name": name, "localizedErrorMessage": format!("Property \"{name}\" does not exist")}));
                continue;
            };
            if def.read_only_value {
                problems.push(json!({"isValid": false, "message": format!("{name} is a read only property; its value cannot be set."),
                    "error": "READ_ONLY_VALUE", "name": name}));
                continue;
            }
            match normalise(def, &text) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err((code, message)) => problems.push(
                    json!({"isValid": false, "message": message, "error": code, "name": name}),
                ),
            }
        }
        if problems.is_empty() && creating {
            for req in t.required_on_create() {
                if out.get(*req).is_none_or(|v| v.is_empty()) {
                    problems.push(
                        json!({"isValid": false, "message": format!("{req} is required"),
                        "error": "REQUIRED_PROPERTY", "name": req}),
                    );
                }
            }
        }
        if !problems.is_empty() {
            let names: Vec<Value> = problems.iter().map(|p| p["name"].clone()).collect();
            let error_codes: Vec<String> = problems
                .iter()
                .filter_map(|p| p["error"].as_str().map(str::to_string))
                .collect();
            let details: Vec<Value> = problems
                .iter()
                .map(|p| json!({"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}))
                .collect();
            let message = format!(
                "Property values were not valid: {}",
                Value::Array(problems.clone())
            );
            let sub = if error_codes.iter().all(|c| c == "PROPERTY_DOESNT_EXIST") {
                "PROPERTY_DOESNT_EXIST"
            } else {
                "INVALID_PROPERTY_VALUE"
            };
            return Err(ApiError::validation(message)
                .with_context(json!({"propertyName": names}))
                .with_errors(details)
                .with_sub_category(sub));
        }
        for (name, value) in &out {
            if !value.is_empty() && self.is_unique(t, name) {
                if let Some(existing) = self.find_by(t, name, value) {
                    if Some(existing) != exclude {
                        let message = if name == "email" {
                            format!("Contact already exists. Existing ID: {existing}")
                        } else {
                            format!(
                                "A {} with {name} \"{value}\" already exists. Existing ID: {existing}",
                                t.singular()
                            )
                        };
                        return Err(ApiError::conflict(message)
                            .with_context(json!({"existingId": [existing.to_string()]})));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates a record from validated values.
    pub fn insert(
        &mut self,
        t: ObjectType,
        mut values: BTreeMap<String, String>,
        now: OffsetDateTime,
        source: &Source,
        id: Option<u64>,
    ) -> u64 {
        let id = match id {
            Some(id) => {
                self.next_id = self.next_id.max(id + 1);
                id
            }
            None => self.allocate_id(),
        };
        values.retain(|_, v| !v.is_empty());
        let created = values
            .get(t.create_date_property())
            .and_then(|v| parse_instant(v))
            .unwrap_or(now);
        values.insert(t.create_date_property().into(), iso(created));
        if t == ObjectType::Invoices {
            values
                .entry("hs_invoice_status".into())
                .or_insert_with(|| "draft".into());
            values
                .entry("hs_invoice_date".into())
                .or_insert_with(|| iso(now));
            values
                .entry("hs_due_date".into())
                .or_insert_with(|| iso(now + time::Duration::days(30)));
        }
        if t == ObjectType::LineItems {
            // A line item made from a product copies its name, price, SKU and description;
            // what the create gives itself wins.
            let product = values
                .get("hs_product_id")
                .and_then(|p| p.parse::<u64>().ok())
                .and_then(|p| self.live(ObjectType::Products, p))
                .map(|p| p.properties.clone());
            for (name, value) in product.into_iter().flatten() {
                if ["name", "price", "hs_sku", "description"].contains(&name.as_str()) {
                    values.entry(name).or_insert(value);
                }
            }
        }
        if t == ObjectType::Quotes {
            values
                .entry("hs_status".into())
                .or_insert_with(|| "DRAFT".into());
            values
                .entry("hs_public_url_key".into())
                .or_insert_with(|| uuid::Uuid::new_v4().simple().to_string());
        }
        let mut record = Record {
            id,
            properties: values,
            created_at: created,
            updated_at: now,
            archived: false,
            archived_at: None,
            merged_into: None,
        };
        derive(t, &mut record, now);
        self.records.entry(t).or_default().insert(id, record);
        self.index_unique(t, id);
        self.settle_invoices_around(t, id, now, source);
        self.changes.push(Change {
            portal_id: self.id,
            object_type: t,
            object_id: id,
            kind: ChangeKind::Creation,
            at: now,
            source: source.clone(),
        });
        let props: Vec<(String, String)> = self
            .get(t, id)
            .map(|r| {
                r.properties
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, value) in props {
            self.changes.push(Change {
                portal_id: self.id,
                object_type: t,
                object_id: id,
                kind: ChangeKind::PropertyChange { name, value },
                at: now,
                source: source.clone(),
            });
        }
        id
    }

    /// Applies validated values to a live record. Empty strings clear a value.
    pub fn apply(
        &mut self,
        t: ObjectType,
        id: u64,
        values: BTreeMap<String, String>,
        now: OffsetDateTime,
        source: &Source,
    ) -> bool {
        let portal_id = self.id;
        if self.live(t, id).is_none() {
            return false;
        }
        self.unindex_unique(t, id);
        let Some(record) = self.get_mut(t, id) else {
            return false;
        };
        let mut changed = Vec::new();
        for (name, value) in values {
            let old = record.properties.get(&name).cloned().unwrap_or_default();
            if old == value {
                continue;
            }
            if value.is_empty() {
                record.properties.remove(&name);
            } else {
                record.properties.insert(name.clone(), value.clone());
            }
            changed.push((name, value));
        }
        record.updated_at = now;
        derive(t, record, now);
        self.index_unique(t, id);
        self.settle_invoices_around(t, id, now, source);
        for (name, value) in changed {
            self.changes.push(Change {
                portal_id,
                object_type: t,
                object_id: id,
                kind: ChangeKind::PropertyChange { name, value },
                at: now,
                source: source.clone(),
            });
        }
        true
    }

    /// Moves a record to the recycling bin. False when there is no live record.
    pub fn archive(
        &mut self,
        t: ObjectType,
        id: u64,
        now: OffsetDateTime,
        source: &Source,
    ) -> bool {
        let portal_id = self.id;
        if self.live(t, id).is_none() {
            return false;
        }
        self.unindex_unique(t, id);
        let Some(record) = self.get_mut(t, id) else {
            return false;
        };
        record.archived = true;
        record.archived_at = Some(now);
        record.updated_at = now;
        self.changes.push(Change {
            portal_id,
            object_type: t,
            object_id: id,
            kind: ChangeKind::Deletion,
            at: now,
            source: source.clone(),
        });
        self.settle_invoices_around(t, id, now, source);
        true
    }

    /// The association type with this id from `from` to `to`.
    pub fn assoc_type(&self, from: ObjectType, to: ObjectType, id: u32) -> Option<&AssocType> {
        self.labels
            .iter()
            .find(|a| a.from == from && a.to == to && a.id == id)
    }

    pub fn default_type(&self, from: ObjectType, to: ObjectType) -> Option<&AssocType> {
        self.labels
            .iter()
            .find(|a| a.from == from && a.to == to && a.default)
    }

    /// Adds an association (and its inverse, and the unlabeled default both ways).
    #[allow(clippy::too_many_arguments)]
    pub fn associate(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        category: Category,
        type_id: u32,
        now: OffsetDateTime,
        source: &Source,
    ) -> Result<(), ApiError> {
        let Some(spec) = self.assoc_type(from, to, type_id).cloned() else {
            return Err(ApiError::validation(format!(
                "{} is not a valid association type between {} and {}",
                type_id,
                from.name(),
                to.name()
            ))
            .with_sub_category("InvalidAssociationTypeId"));
        };
        if spec.category != category {
            return Err(ApiError::validation(format!(
                "association type {type_id} has category {}, not {}",
                spec.category.as_str(),
                category.as_str()
            )));
        }
        if self.live(from, from_id).is_none() {
            return Err(ApiError::not_found(format!(
                "No {} with ID {from_id} exists",
                from.singular()
            ))
            .with_context(json!({"id": [from_id.to_string()]})));
        }
        if self.live(to, to_id).is_none() {
            return Err(ApiError::not_found(format!(
                "No {} with ID {to_id} exists",
                to.singular()
            ))
            .with_context(json!({"id": [to_id.to_string()]})));
        }
        let mut wanted = vec![(spec.category, spec.id, spec.inverse)];
        if !spec.default {
            if let Some(d) = self.default_type(from, to) {
                wanted.push((d.category, d.id, d.inverse));
            }
        }
        // Primary company / deal-company: one per record; the old primary stays unlabeled.
        if spec.label.as_deref() == Some("Primary") {
            let existing: Vec<u64> = self
                .associations
                .get(&(from, from_id, to))
                .map(|e| {
                    e.iter()
                        .filter(|(id, set)| {
                            **id != to_id && set.contains(&(spec.category, spec.id))
                        })
                        .map(|(id, _)| *id)
                        .collect()
                })
                .unwrap_or_default();
            for old in existing {
                self.remove_types(
                    from,
                    from_id,
                    to,
                    old,
                    &[(spec.category, spec.id, spec.inverse)],
                );
            }
        }
        let mut added = false;
        for (cat, id, inverse) in wanted {
            added |= self
                .associations
                .entry((from, from_id, to))
                .or_default()
                .entry(to_id)
                .or_default()
                .insert((cat, id));
            self.associations
                .entry((to, to_id, from))
                .or_default()
                .entry(from_id)
                .or_default()
                .insert((cat, inverse));
        }
        if added {
            self.touch_association(
                from,
                from_id,
                to,
                to_id,
                spec.id,
                false,
                spec.label.is_some(),
                now,
                source,
            );
        }
        if from == ObjectType::Contacts
            && to == ObjectType::Companies
            && spec.label.as_deref() == Some("Primary")
        {
            if let Some(r) = self.get_mut(from, from_id) {
                r.properties
                    .insert("associatedcompanyid".into(), to_id.to_string());
            }
        }
        self.settle_invoices_around(from, from_id, now, source);
        self.settle_invoices_around(to, to_id, now, source);
        Ok(())
    }

    fn remove_types(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        types: &[(Category, u32, u32)],
    ) {
        for (cat, id, inverse) in types {
            if let Some(set) = self
                .associations
                .get_mut(&(from, from_id, to))
                .and_then(|e| e.get_mut(&to_id))
            {
                set.remove(&(*cat, *id));
            }
            if let Some(set) = self
                .associations
                .get_mut(&(to, to_id, from))
                .and_then(|e| e.get_mut(&from_id))
            {
                set.remove(&(*cat, *inverse));
            }
        }
        self.prune(from, from_id, to, to_id);
    }

    fn prune(&mut self, from: ObjectType, from_id: u64, to: ObjectType, to_id: u64) {
        for (a, a_id, b, b_id) in [(from, from_id, to, to_id), (to, to_id, from, from_id)] {
            if let Some(edges) = self.associations.get_mut(&(a, a_id, b)) {
                if edges.get(&b_id).is_some_and(BTreeSet::is_empty) {
                    edges.remove(&b_id);
                }
            }
        }
    }

    /// Removes every association between two records (both directions). True if any existed.
    pub fn dissociate_all(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        now: OffsetDateTime,
        source: &Source,
    ) -> bool {
        let removed = self
            .associations
            .get_mut(&(from, from_id, to))
            .and_then(|e| e.remove(&to_id));
        if let Some(e) = self.associations.get_mut(&(to, to_id, from)) {
            e.remove(&from_id);
        }
        let Some(types) = removed else { return false };
        if from == ObjectType::Contacts && to == ObjectType::Companies {
            self.clear_primary_company(from_id, to_id);
        } else if to == ObjectType::Contacts && from == ObjectType::Companies {
            self.clear_primary_company(to_id, from_id);
        }
        if let Some((_, id)) = types.iter().next() {
            self.touch_association(from, from_id, to, to_id, *id, true, false, now, source);
        }
        self.settle_invoices_around(from, from_id, now, source);
        self.settle_invoices_around(to, to_id, now, source);
        true
    }

    /// Removes some labels (type ids in the `from → to` direction); removing the default type
    /// removes everything.
    #[allow(clippy::too_many_arguments)]
    pub fn dissociate_labels(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        type_ids: &[u32],
        now: OffsetDateTime,
        source: &Source,
    ) {
        let default = self.default_type(from, to).map(|d| d.id);
        if type_ids.iter().any(|t| Some(*t) == default) {
            self.dissociate_all(from, from_id, to, to_id, now, source);
            return;
        }
        let types: Vec<(Category, u32, u32)> = type_ids
            .iter()
            .filter_map(|id| {
                self.assoc_type(from, to, *id)
                    .map(|a| (a.category, a.id, a.inverse))
            })
            .collect();
        self.remove_types(from, from_id, to, to_id, &types);
        if from == ObjectType::Contacts && to == ObjectType::Companies && type_ids.contains(&1) {
            self.clear_primary_company(from_id, to_id);
        }
        if let Some(id) = type_ids.first() {
            self.touch_association(from, from_id, to, to_id, *id, true, true, now, source);
        }
        self.settle_invoices_around(from, from_id, now, source);
        self.settle_invoices_around(to, to_id, now, source);
    }

    fn clear_primary_company(&mut self, contact: u64, company: u64) {
        if let Some(r) = self.get_mut(ObjectType::Contacts, contact) {
            if r.properties.get("associatedcompanyid") == Some(&company.to_string()) {
                r.properties.remove("associatedcompanyid");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn touch_association(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        type_id: u32,
        removed: bool,
        primary: bool,
        now: OffsetDateTime,
        source: &Source,
    ) {
        self.changes.push(Change {
            portal_id: self.id,
            object_type: from,
            object_id: from_id,
            kind: ChangeKind::AssociationChange {
                to_type: to,
                to_id,
                type_id,
                removed,
                primary,
            },
            at: now,
            source: source.clone(),
        });
    }

    /// Live associated records of `to` type with their association types, by to-id.
    pub fn associated(
        &self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
    ) -> Vec<(u64, Vec<&AssocType>)> {
        self.associations
            .get(&(from, from_id, to))
            .map(|edges| {
                edges
                    .iter()
                    .filter(|(id, set)| !set.is_empty() && self.live(to, **id).is_some())
                    .map(|(id, set)| {
                        let types = set
                            .iter()
                            .filter_map(|(_, t)| self.assoc_type(from, to, *t))
                            .collect();
                        (*id, types)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The JSON of a record as the objects API returns it.
    pub fn record_json(&self, t: ObjectType, r: &Record, properties: Option<&[String]>) -> Value {
        let schema = self.schema(t);
        let mut props = Map::new();
        // Requested properties plus the bookkeeping ones HubSpot always returns.
        let mut names: Vec<String> = match properties {
            Some(list) if !list.is_empty() => list.to_vec(),
            _ => t
                .default_properties()
                .into_iter()
                .map(str::to_string)
                .collect(),
        };
        for always in [
            t.create_date_property(),
            t.last_modified_property(),
            "hs_object_id",
        ] {
            if !names.iter().any(|n| n == always) {
                names.push(always.to_string());
            }
        }
        for name in names {
            if schema.properties.contains_key(&name) {
                let value = r
                    .properties
                    .get(&name)
                    .map_or(Value::Null, |v| Value::String(v.clone()));
                props.insert(name, value);
            }
        }
        let mut out = json!({
            "id": r.id.to_string(),
            "properties": props,
            "createdAt": iso(r.created_at),
            "updatedAt": iso(r.updated_at),
            "archived": r.archived,
        });
        if let (Some(at), Some(map)) = (r.archived_at, out.as_object_mut()) {
            map.insert("archivedAt".into(), Value::String(iso(at)));
        }
        out
    }

    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// Normalises one written value for its property type. Empty clears.
fn normalise(def: &PropertyDef, text: &str) -> Result<String, (&'static str, String)> {
    if text.is_empty() {
        return Ok(String::new());
    }
    match def.ptype {
        // Numbers keep the text as written (money stays exact: "10.50" stays "10.50").
        PropertyType::Number => parse_decimal(text)
            .map(|_| text.trim().to_string())
            .ok_or(("INVALID_DECIMAL", format!("{text} was not a valid number."))),
        PropertyType::Datetime => parse_instant(text).map(iso).ok_or((
            "INVALID_DATE",
            format!("{text} was not a valid date-time (use epoch milliseconds or ISO 8601)."),
        )),
        PropertyType::Date => {
            let instant = parse_instant(text)
                .ok_or(("INVALID_DATE", format!("{text} was not a valid date.")))?;
            if instant.time() != time::Time::MIDNIGHT {
                return Err((
                    "INVALID_DATE",
                    format!(
                        "{} is at {} UTC, not midnight",
                        epoch_ms(instant),
                        instant.time()
                    ),
                ));
            }
            Ok(format_date(instant.date()))
        }
        PropertyType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(text.to_ascii_lowercase()),
            _ => Err((
                "INVALID_BOOLEAN",
                format!("{text} was not a valid boolean."),
            )),
        },
        PropertyType::Enumeration if !def.options.is_empty() => {
            let valid = text
                .split(';')
                .all(|part| def.options.iter().any(|o| o.value == part));
            if valid {
                Ok(text.to_string())
            } else {
                Err((
                    "INVALID_OPTION",
                    format!(
                        "{text} was not one of the allowed options: [{}]",
                        def.options
                            .iter()
                            .map(|o| o.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
        _ => Ok(text.to_string()),
    }
}

/// Keeps calculated and bookkeeping properties in step after a write.
fn derive(t: ObjectType, record: &mut Record, now: OffsetDateTime) {
    let p = &mut record.properties;
    p.insert("hs_object_id".into(), record.id.to_string());
    p.insert(t.last_modified_property().into(), iso(now));
    if t == ObjectType::CommercePayments {
        derive_payment(p);
    }
    if t == ObjectType::LineItems {
        let num = |p: &BTreeMap<String, String>, k: &str| p.get(k).and_then(|v| parse_decimal(v));
        if let (Some(q), Some(price)) = (num(p, "quantity"), num(p, "price")) {
            let gross = q * price;
            let mut discount = Decimal::ZERO;
            if let Some(per_unit) = num(p, "discount") {
                discount += per_unit * q;
            }
            if let Some(pct) = num(p, "hs_discount_percentage") {
                discount += gross * pct / Decimal::ONE_HUNDRED;
            }
            p.insert("hs_total_discount".into(), money_text(discount));
            p.insert("amount".into(), money_text(gross - discount));
        }
    }
}

/// A payment's fees, net amount and refund status follow its amounts: refunds up to the amount
/// are `partially_refunded`, the whole amount `refunded`.
fn derive_payment(p: &mut BTreeMap<String, String>) {
    let num = |p: &BTreeMap<String, String>, k: &str| {
        p.get(k)
            .and_then(|v| parse_decimal(v))
            .unwrap_or(Decimal::ZERO)
    };
    let amount = num(p, "hs_initial_amount");
    let fees = num(p, "hs_processing_fee") + num(p, "hs_platform_fee");
    let refunds = num(p, "hs_refunds_amount");
    if fees > Decimal::ZERO {
        p.insert("hs_fees_amount".into(), money_text(fees));
    }
    p.insert("hs_net_amount".into(), money_text(amount - fees - refunds));
    if refunds > Decimal::ZERO {
        let status = if refunds >= amount {
            "refunded"
        } else {
            "partially_refunded"
        };
        p.insert("hs_latest_status".into(), status.into());
    } else {
        p.entry("hs_latest_status".into())
            .or_insert_with(|| "succeeded".into());
    }
}

/// How a unique value is looked up: emails without case.
fn unique_value(property: &str, value: &str) -> String {
    if property == "email" {
        value.to_lowercase()
    } else {
        value.to_owned()
    }
}

/// A computed amount: exact, at least two decimals, no trailing zeros beyond them.
pub(crate) fn money_text(d: Decimal) -> String {
    let mut n = d.normalize();
    if n.scale() < 2 {
        n.rescale(2);
    }
    n.to_string()
}
